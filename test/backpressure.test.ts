// A stalled reader against three healthy ones: the healthy get every frame in order, the stalled
// one is closed (or skipped) and what the server buffers for it stays under the high-water mark
// plus one frame, whatever the policy.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { once } from 'node:events';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, type TestClient } from './helpers/client.ts';
import { within } from './helpers/wait.ts';
import type { ManagerOptions } from '../src/index.ts';

assertNoLeaks();

const MESSAGES = 1500;
const PAD = 'x'.repeat(32 * 1024);
const WINDOW = 8; // frames a healthy client may lag behind: 256 KiB, well under the 1 MiB mark
const HWM = 1024 * 1024;

interface Reader {
  client: TestClient;
  got: number;
  /** seq of every frame, checked in order as they arrive */
  outOfOrder: number[];
  last: number;
}

const seqOf = (frame: string): number => Number(/"seq":(\d+)/.exec(frame.slice(0, 100))?.[1] ?? -1);

/** Counts `tick` frames and checks their order without keeping them. */
function reader(client: TestClient, onFrame: () => void): Reader {
  const r: Reader = { client, got: 0, outOfOrder: [], last: -1 };
  client.ws.on('message', (data: Buffer) => {
    const seq = seqOf(data.toString('latin1', 0, 100));
    if (seq < 0) return;
    if (seq <= r.last) r.outOfOrder.push(seq);
    r.last = seq;
    r.got++;
    // TestClient's own listener ran first and queued the frame; ticks are counted here instead.
    if (seqOf(client.frames.at(-1) ?? '') === seq) client.frames.pop();
    onFrame();
  });
  return r;
}

async function scenario(t: TestContext, backpressure: ManagerOptions['backpressure']) {
  const { hub, server, url } = await startHub(t, {
    heartbeat: false,
    ...(backpressure && { backpressure }),
  });
  const sockets: Socket[] = []; // server side, in connection order
  server.on('connection', (s) => sockets.push(s));
  let progress: (() => void) | undefined;
  const onFrame = (): void => {
    progress?.();
    progress = undefined;
  };
  const stalled = await connect(t, url);
  const stalledSocket = sockets[0]!;
  const healthy: Reader[] = [];
  for (let i = 0; i < 3; i++) healthy.push(reader(await connect(t, url), onFrame));
  const drops: string[] = [];
  hub.on('drop', (client, reason) => drops.push(`${client.id} ${reason}`));
  const stalledId = [...hub.clients.keys()][0]!;
  stalled.ws.pause(); // stops reading: the kernel buffers fill, then the server's

  const frameBytes =
    Buffer.byteLength(
      JSON.stringify({
        code: 0,
        msg: 'success',
        actioncode: 'tick',
        data: { seq: MESSAGES, pad: PAD },
      }),
    ) + 4;
  let maxBuffered = 0;
  let sent = 0;
  while (sent < MESSAGES) {
    const slowest = Math.min(...healthy.map((h) => h.got));
    if (sent - slowest < WINDOW) {
      hub.broadcast('tick', { seq: sent++, pad: PAD });
      maxBuffered = Math.max(maxBuffered, stalledSocket.writableLength);
      continue;
    }
    await within(
      new Promise<void>((r) => (progress = r)),
      5000,
      `healthy clients to pass ${slowest} of ${MESSAGES}`,
    );
  }
  await within(
    (async () => {
      while (healthy.some((h) => h.got < MESSAGES)) await new Promise<void>((r) => (progress = r));
    })(),
    5000,
    'healthy clients to get every frame',
  );
  for (const h of healthy) {
    assert.equal(h.got, MESSAGES);
    assert.deepEqual(h.outOfOrder, []);
  }
  assert.ok(maxBuffered > HWM, `the stalled client did back up (${maxBuffered} bytes)`);
  assert.ok(
    maxBuffered <= HWM + frameBytes,
    `buffered for the stalled client: ${maxBuffered} > ${HWM} + one ${frameBytes}-byte frame`,
  );
  return { hub, stalled, stalledId, stalledSocket, drops, healthy };
}

test("policy 'close': a stalled reader is closed with 1013 while three others get 1,500 frames of 32 KiB in order", async (t) => {
  const { hub, stalled, stalledId, drops, healthy } = await scenario(t, undefined);
  assert.equal(hub.clients.has(stalledId), false);
  assert.deepEqual(
    drops,
    [`${stalledId} backpressure`],
    'one drop: the frame that crossed the mark',
  );
  assert.equal(hub.stats().dropped, 1);
  // Reading again, it gets what was queued before the mark, in order, then the close.
  const r = reader(stalled, () => {});
  stalled.ws.resume();
  assert.deepEqual(await stalled.closed('1013 on the stalled client'), {
    code: 1013,
    reason: 'backpressure',
  });
  assert.ok(r.got > 0 && r.got < MESSAGES, `stalled client got ${r.got}`);
  assert.deepEqual(r.outOfOrder, []);
  assert.equal(r.last, r.got - 1, 'no gap before the close');
  assert.equal(hub.clients.size, 3);
  for (const h of healthy) assert.equal((await h.client.request('heart_beat')).data, true);
});

test("policy 'drop': a stalled reader stays open, every skipped frame is a drop event and counted in stats().dropped", async (t) => {
  const { hub, stalled, stalledId, stalledSocket, drops } = await scenario(t, { policy: 'drop' });
  assert.equal(hub.clients.has(stalledId), true);
  assert.ok(drops.length > 0);
  assert.equal(hub.stats().dropped, drops.length);
  assert.ok(drops.every((d) => d === `${stalledId} backpressure`));
  const r = reader(stalled, () => {});
  stalled.ws.resume();
  // Replies are subject to the policy too: ask only once the server's buffer has drained.
  if (stalledSocket.writableLength > 0)
    await within(once(stalledSocket, 'drain'), 5000, 'server buffer to drain');
  const dropped = drops.length;
  await stalled.barrier(); // everything queued for it has arrived
  assert.equal(drops.length, dropped);
  assert.deepEqual(r.outOfOrder, []);
  assert.equal(r.got + drops.length, MESSAGES, 'every frame was either delivered or dropped');
  assert.equal(hub.stats().dropped, drops.length);
});
