// Sockets the hub has let go of (kicked, closed for backpressure or the rate limit, shut down):
// nothing they send reaches a handler or a counter, a peer that ignores the close is terminated
// within closeTimeout, and until its TCP connection is gone a closing socket counts toward
// maxClients.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createManager } from '../src/index.ts';
import { startHub, assertNoLeaks, listen, closeServer } from './helpers/hub.ts';
import { connect, refusedStatus, okReply } from './helpers/client.ts';
import { clientFrame, rawPeer, type RawPeer } from './helpers/raw.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

const text = (value: unknown) => clientFrame(0x1, Buffer.from(JSON.stringify(value)));
const closeFrame = () => clientFrame(0x8, Buffer.from([0x03, 0xe8])); // 1000

/** The reply frames a raw peer has received, decoded, up to and including the close frame. */
async function framesUntilClose(peer: RawPeer): Promise<unknown[]> {
  const seen: unknown[] = [];
  for (;;) {
    const f = await peer.frames();
    if (f.opcode === 0x8)
      return [
        ...seen,
        { close: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() },
      ];
    seen.push(JSON.parse(f.payload.toString()));
  }
}

/**
 * Barrier for a socket the server is closing: the peer sends its close frame after `frames`;
 * once the server has read it, it ends TCP, so every frame before it has been through the hub.
 */
async function sendThenClose(peer: RawPeer, frames: Buffer[], what: string): Promise<void> {
  peer.socket.write(Buffer.concat([...frames, closeFrame()]));
  await within(peer.ended, 5000, what);
}

test('a kicked client that keeps sending never reaches a handler or a counter again', async (t) => {
  let calls = 0;
  const { hub, port } = await startHub(t, {
    actions: {
      shout(_data: unknown, ctx) {
        calls++;
        ctx.hub.broadcast('shouted', ctx.client.connected);
        return true;
      },
    },
  });
  const peer = await rawPeer(t, port);
  peer.socket.write(text({ actioncode: 'shout', id: 1 }));
  const decoded = async () => JSON.parse((await peer.frames()).payload.toString()) as unknown;
  assert.deepEqual(await decoded(), { code: 0, msg: 'success', actioncode: 'shouted', data: true });
  assert.deepEqual(await decoded(), okReply('shout', true, 1));
  hub.unregister([...hub.clients][0]!, 4000, 'kicked');
  const before = hub.stats();
  assert.deepEqual(await framesUntilClose(peer), [{ close: 4000, reason: 'kicked' }]);
  // It ignores the close and sends 200 more requests, valid and not, then finally answers.
  const flood = Array.from({ length: 200 }, (_, i) =>
    i % 2 ? text({ actioncode: 'shout', id: i }) : clientFrame(0x1, Buffer.from('not json')),
  );
  await sendThenClose(peer, flood, 'the kicked peer to be let go');
  assert.equal(calls, 1, 'handler runs after the kick');
  assert.deepEqual(hub.stats(), { ...before, clients: 0 });
});

test('a client closed by the rate limit runs no handler in the windows after its 1008', async (t) => {
  let calls = 0;
  const interval = 30;
  const { hub, port } = await startHub(t, {
    rateLimit: { messages: 2, interval },
    actions: { count: () => ++calls },
  });
  const peer = await rawPeer(t, port);
  const ask = (id: number) => text({ actioncode: 'count', id });
  peer.socket.write(Buffer.concat([1, 2, 3, 4, 5].map(ask)));
  assert.deepEqual(await framesUntilClose(peer), [
    okReply('count', 1, 1),
    okReply('count', 2, 2),
    { code: 429, msg: 'rate limited', actioncode: 'count', data: null, id: 3 },
    { close: 1008, reason: 'rate limited' },
  ]);
  const before = hub.stats();
  // It ignores the close and keeps asking for three more windows, then answers.
  const until = performance.now() + 3 * interval;
  let id = 6;
  while (performance.now() < until) {
    peer.socket.write(ask(id++));
    await new Promise((r) => setImmediate(r));
  }
  await sendThenClose(peer, [], 'the rate-limited peer to be let go');
  assert.equal(calls, 2);
  assert.deepEqual(hub.stats(), { ...before, clients: 0 });
});

test('a peer that never answers the close is terminated within closeTimeout', async (t) => {
  const closeTimeout = 200;
  const { hub, port } = await startHub(t, { closeTimeout });
  const peer = await rawPeer(t, port);
  hub.unregister([...hub.clients][0]!, 4000, 'bye');
  assert.equal((await peer.frames()).opcode, 0x8);
  // ws alone would keep the socket for 30 s.
  assert.deepEqual(
    await within(peer.ended, closeTimeout + 2000, 'termination of a peer ignoring the close'),
    {
      code: 4000,
      reason: 'bye',
    },
  );
});

/** A ws server of the test's own (30 s close timeout) whose sockets the hub adopts with register(). */
async function adoptingServer(
  t: TestContext,
  hub: ReturnType<typeof createManager>,
): Promise<number> {
  const server = createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws: WebSocket) => hub.register(ws));
  await listen(server);
  t.after(async () => {
    await within(hub.close({ timeout: 500 }), 5000, 'hub.close()');
    wss.close();
    await closeServer(server);
  });
  return (server.address() as AddressInfo).port;
}

test('an adopted socket that never answers the close is terminated within closeTimeout too', async (t) => {
  const closeTimeout = 200;
  const hub = createManager({ closeTimeout, heartbeat: false });
  const port = await adoptingServer(t, hub);
  const peer = await rawPeer(t, port, '/');
  await within(
    new Promise<void>((r) => (hub.clients.size ? r() : hub.once('connection', () => r()))),
    5000,
    'adoption',
  );
  hub.unregister([...hub.clients][0]!, 1013, 'backpressure');
  assert.equal((await peer.frames()).opcode, 0x8);
  await within(
    peer.ended,
    closeTimeout + 2000,
    'termination of an adopted peer ignoring the close',
  );
  assert.equal(hub.clients.size, 0);
});

test('closing sockets count toward maxClients until their TCP connection is gone', async (t) => {
  const closeTimeout = 300;
  const { hub, port, url } = await startHub(t, {
    maxClients: 2,
    closeTimeout,
    actions: {
      leave: (_data: unknown, ctx) => void ctx.client.close(4000, 'go away'),
    },
  });
  // An attacker holds two sockets that it makes the hub close, and never answers the close.
  const held = [await rawPeer(t, port), await rawPeer(t, port)];
  for (const peer of held) {
    peer.socket.write(text({ actioncode: 'leave' }));
    assert.equal((await peer.frames()).opcode, 0x8);
  }
  assert.equal(hub.clients.size, 0, 'both are unregistered');
  assert.equal(await refusedStatus(url), 503, 'the closing sockets still hold their slots');
  await Promise.all(
    held.map((peer) => within(peer.ended, closeTimeout + 2000, 'termination of a held socket')),
  );
  const c = await connect(t, url);
  assert.deepEqual(await c.request('heart_beat'), okReply('heart_beat', true, 1));
});
