// Partly slow consumers beside a healthy one: a client that reads at half the publish rate is
// handled by the backpressure policy (each frame it misses is a counted `drop`), and one that
// stalls for a while, then catches up while still under the high-water mark, loses nothing.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, type TestClient } from './helpers/client.ts';
import { tcp, upgradeRequest } from './helpers/raw.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

const KiB = 1024;
const seqOf = (text: string): number =>
  Number(/"seq":(-?\d+)/.exec(text.slice(0, 100))?.[1] ?? NaN);

/** Seqs of `tick` frames as a client receives them; resolves `marker` when seq -1 arrives. */
function ticks(client: TestClient) {
  const seqs: number[] = [];
  let waiter: (() => void) | undefined;
  let done = false;
  client.ws.on('message', (data: Buffer) => {
    const seq = seqOf(data.toString('latin1', 0, 100));
    if (Number.isNaN(seq)) return;
    client.frames.pop(); // TestClient's own listener ran first and kept it; counted here instead
    if (seq === -1) done = true;
    else seqs.push(seq);
    waiter?.();
  });
  const until = (test: () => boolean, what: string) =>
    within(
      (async () => {
        while (!test()) await new Promise<void>((r) => (waiter = r));
      })(),
      5000,
      what,
    );
  return { seqs, until, marker: () => until(() => done, 'the end marker') };
}

/**
 * A raw WebSocket reader that reads only when told: `take(n)` consumes up to n bytes the kernel
 * has for it, `drain()` reads everything from then on. Frames are parsed as they complete.
 */
async function pacedReader(t: TestContext, port: number) {
  const socket: Socket = await tcp(t, port);
  socket.write(upgradeRequest(port));
  await within(once(socket, 'readable'), 5000, 'the 101 response');
  let buf = Buffer.alloc(0);
  let head = true;
  const seqs: number[] = [];
  let marker = false;
  const feed = (chunk: Buffer | null): void => {
    if (!chunk) return;
    buf = Buffer.concat([buf, chunk]);
    if (head) {
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      buf = buf.subarray(end + 4);
      head = false;
    }
    for (;;) {
      if (buf.length < 2) return;
      const len7 = buf[1]! & 0x7f;
      const hl = len7 < 126 ? 2 : len7 === 126 ? 4 : 10;
      if (buf.length < hl) return;
      const len =
        len7 < 126 ? len7 : len7 === 126 ? buf.readUInt16BE(2) : Number(buf.readBigUInt64BE(2));
      if (buf.length < hl + len) return;
      const seq = seqOf(buf.toString('latin1', hl, hl + 100));
      if (seq === -1) marker = true;
      else seqs.push(seq);
      buf = buf.subarray(hl + len);
    }
  };
  feed(socket.read());
  return {
    seqs,
    take: (n: number) => feed(socket.read(Math.min(n, socket.readableLength)) as Buffer | null),
    drain: () => {
      feed(socket.read() as Buffer | null);
      socket.on('data', feed);
    },
    marker: () => marker,
  };
}

test("a client reading at half the publish rate is handled by policy 'drop': every frame it misses is a counted drop", async (t) => {
  const highWaterMark = 64 * KiB;
  const { hub, server, port, url } = await startHub(t, {
    heartbeat: false,
    backpressure: { highWaterMark, policy: 'drop' },
  });
  const sockets: Socket[] = [];
  server.on('connection', (s) => sockets.push(s));
  const slow = await pacedReader(t, port);
  const slowSocket = sockets[0]!;
  const fast = ticks(await connect(t, url));
  const slowId = [...hub.clients.keys()][0]!;
  const drops: string[] = [];
  hub.on('drop', (client) => drops.push(client.id));

  const pad = 'x'.repeat(16 * KiB);
  const frameBytes =
    Buffer.byteLength(
      JSON.stringify({ code: 0, msg: 'success', actioncode: 'tick', data: { seq: 9999, pad } }),
    ) + 4;
  const ROUNDS = 1500;
  let seq = 0;
  for (let round = 0; round < ROUNDS; round++) {
    // Two frames out per round, one frame's worth of bytes read by the slow client.
    hub.broadcast('tick', { seq: seq++, pad });
    hub.broadcast('tick', { seq: seq++, pad });
    await fast.until(() => fast.seqs.length === seq, `the fast client to get frame ${seq}`);
    slow.take(frameBytes);
  }
  t.diagnostic(`half-rate reader: ${drops.length} of ${seq} frames dropped`);
  slow.drain();
  if (slowSocket.writableLength > 0)
    await within(once(slowSocket, 'drain'), 5000, 'the server buffer to drain');
  hub.broadcast('tick', { seq: -1 });
  await within(
    (async () => {
      while (!slow.marker()) await new Promise((r) => setImmediate(r));
    })(),
    5000,
    'the end marker at the slow client',
  );
  assert.deepEqual(
    fast.seqs,
    Array.from({ length: seq }, (_, i) => i),
    'the fast client gets every frame in order',
  );
  assert.ok(drops.length > 0, 'the slow client fell behind past the high-water mark');
  assert.ok(drops.every((id) => id === slowId));
  assert.equal(
    slow.seqs.length + drops.length,
    seq,
    'every frame is delivered whole or counted as a drop',
  );
  assert.ok(
    slow.seqs.every((s, i) => i === 0 || s > slow.seqs[i - 1]!),
    'in order',
  );
  assert.equal(hub.stats().dropped, drops.length);
  assert.equal(hub.clients.has(slowId), true);
});

test('a client that stalls, then reads again before the high-water mark, loses nothing', async (t) => {
  const { hub, server, url } = await startHub(t, { heartbeat: false });
  const sockets: Socket[] = [];
  server.on('connection', (s) => sockets.push(s));
  const stalled = await connect(t, url);
  const stalledSocket = sockets[0]!;
  const healthy = ticks(await connect(t, url));
  const late = ticks(stalled);
  const drops: string[] = [];
  hub.on('drop', (client) => drops.push(client.id));
  stalled.ws.pause();
  // The stall lasts until the kernel's buffers for it are full and the hub holds half the
  // 1 MiB mark in its own; bounded at 2 s, as a phone that loses signal for a moment.
  const pad = 'x'.repeat(16 * KiB);
  let seq = 0;
  await within(
    (async () => {
      while (stalledSocket.writableLength < 512 * KiB) {
        hub.broadcast('tick', { seq: seq++, pad });
        await healthy.until(
          () => healthy.seqs.length === seq,
          `the healthy client to get frame ${seq}`,
        );
      }
    })(),
    2000,
    'the hub to hold 512 KiB for the stalled client',
  );
  stalled.ws.resume();
  hub.broadcast('tick', { seq: -1 });
  await late.marker();
  const all = Array.from({ length: seq }, (_, i) => i);
  assert.deepEqual(late.seqs, all, 'every frame, in order, after the stall');
  assert.deepEqual(healthy.seqs, all);
  assert.deepEqual(drops, []);
  assert.equal(hub.stats().dropped, 0);
  assert.equal(hub.clients.size, 2);
});
