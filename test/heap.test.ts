// Heap one hostile peer can pin through ws's message bookkeeping, measured in a hub running in its
// own process (test/helpers/hub-process.ts, with --expose-gc) against many raw TCP peers.
// The peers keep their side open after the server's close (allowHalfOpen), so the figures are
// what a connection pins for as long as it may linger (closeTimeout is raised to keep them all).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tcpConnect, type Socket } from 'node:net';
import { assertNoLeaks } from './helpers/hub.ts';
import { clientFrame, upgradeRequest } from './helpers/raw.ts';
import { http, run } from './helpers/child.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

const KiB = 1024;
const HUB = 'test/helpers/hub-process.ts';
const NODE = ['--expose-gc', '--import', 'tsx'];

interface Memory {
  heapUsed: number;
  rss: number;
  clients: number;
  stats: { errors: number };
}

interface Hostile {
  socket: Socket;
  /** The first close code the server sends (1006 if TCP ended without one), or 0 for a pong. */
  answer: Promise<number>;
  /** Whether the server has answered yet. */
  answered(): boolean;
}

/** A raw peer that completes the handshake, then reads only enough to see a close or a pong. */
async function hostile(t: TestContext, port: number): Promise<Hostile> {
  const socket = tcpConnect({ port, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let done = false;
  let onUpgrade!: () => void;
  const opened = new Promise<void>((r) => (onUpgrade = r));
  const answer = new Promise<number>((resolve) => {
    socket.once('close', () => resolve(1006));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        upgraded = true;
        buf = buf.subarray(end + 4);
        onUpgrade();
      }
      if (buf.length >= 2 && (buf[0]! & 0x0f) === 0xa) resolve(0);
      if (buf.length >= 4 && (buf[0]! & 0x0f) === 0x8) resolve(buf.readUInt16BE(2));
    });
  }).finally(() => (done = true));
  socket.write(upgradeRequest(port, '/ws'));
  await within(opened, 5000, 'handshake of a hostile peer');
  return { socket, answer, answered: () => done };
}

async function memory(port: number): Promise<Memory> {
  return JSON.parse((await http(`http://127.0.0.1:${port}/mem`)).body) as Memory;
}

test('a peer holding an unfinished message of 16,000 one-byte fragments pins under 192 KiB of heap', async (t) => {
  const hub = await run(
    t,
    HUB,
    { HUB_OPTIONS: JSON.stringify({ closeTimeout: 60_000 }) },
    10_000,
    NODE,
  );
  const peers = await Promise.all(Array.from({ length: 40 }, () => hostile(t, hub.port)));
  const before = await memory(hub.port);
  // A non-final text frame, 15,999 continuations (ws alone allows 16,384), never a final one,
  // then a ping: the pong (or the close) says the server has read everything before it.
  const one = Buffer.from('x');
  const attack = Buffer.concat([
    clientFrame(0x1, one, false),
    ...Array.from({ length: 15_999 }, () => clientFrame(0x0, one, false)),
    clientFrame(0x9, Buffer.alloc(0)),
  ]);
  for (const peer of peers) peer.socket.write(attack);
  const answers = await within(
    Promise.all(peers.map((p) => p.answer)),
    15_000,
    'every fragment flood to be read',
  );
  const after = await memory(hub.port);
  const perPeer = (after.heapUsed - before.heapUsed) / peers.length;
  t.diagnostic(`heap pinned per fragment-flooding peer: ${(perPeer / KiB).toFixed(1)} KiB`);
  assert.deepEqual(new Set(answers), new Set([1008]), 'each is closed with 1008 past maxFragments');
  assert.equal(after.clients, 0);
  assert.ok(perPeer < 192 * KiB, `${(perPeer / KiB).toFixed(1)} KiB of heap per peer`);
});

test('a peer dribbling a frame one byte per TCP segment pins under 640 KiB of heap', async (t) => {
  const hub = await run(
    t,
    HUB,
    { HUB_OPTIONS: JSON.stringify({ closeTimeout: 60_000 }) },
    10_000,
    NODE,
  );
  const peers = await Promise.all(Array.from({ length: 10 }, () => hostile(t, hub.port)));
  const before = await memory(hub.port);
  // A text frame announcing 1 MiB (within maxPayload), then its payload one byte per write.
  const header = Buffer.alloc(14);
  header[0] = 0x81;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(1024 * KiB), 2);
  for (const peer of peers) peer.socket.write(header);
  // Yielding between rounds lets most bytes reach the server as reads of their own. 40,000 bytes
  // is ~20 times what the server may hold with the default maxBufferedChunks (2,048).
  for (let sent = 0; sent < 40_000 && !peers.every((p) => p.answered()); sent++) {
    for (const peer of peers) if (!peer.answered()) peer.socket.write('a');
    if (sent % 4 === 3) await new Promise((r) => setImmediate(r));
  }
  const answers = peers.map((p) => (p.answered() ? p.answer : Promise.resolve(-1)));
  const after = await memory(hub.port);
  const perPeer = (after.heapUsed - before.heapUsed) / peers.length;
  t.diagnostic(`heap pinned per dribbling peer: ${(perPeer / KiB).toFixed(1)} KiB`);
  assert.deepEqual(
    new Set(await Promise.all(answers)),
    new Set([1008]),
    'each is closed with 1008 past maxBufferedChunks',
  );
  assert.ok(perPeer < 640 * KiB, `${(perPeer / KiB).toFixed(1)} KiB of heap per peer`);
});
