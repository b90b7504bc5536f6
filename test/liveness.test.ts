// Liveness: one timer for every client, dead peers terminated within two intervals, and nothing
// left behind after thousands of connections come and go.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, TestClient, okReply } from './helpers/client.ts';
import { times, within } from './helpers/wait.ts';

assertNoLeaks();

/**
 * Watches setInterval/clearInterval for the duration of a test: the real timers run, and the test
 * can see how many were created and which are still live. The hub looks both up at call time.
 */
function watchIntervals(t: TestContext): { created: () => number; live: Set<unknown> } {
  const live = new Set<unknown>();
  let created = 0;
  const realSet = globalThis.setInterval;
  const realClear = globalThis.clearInterval;
  globalThis.setInterval = ((...args: Parameters<typeof realSet>) => {
    const timer = realSet(...args);
    created++;
    live.add(timer);
    return timer;
  }) as unknown as typeof setInterval;
  globalThis.clearInterval = ((timer: Parameters<typeof realClear>[0]) => {
    live.delete(timer);
    realClear(timer);
  }) as typeof clearInterval;
  t.after(() => {
    globalThis.setInterval = realSet;
    globalThis.clearInterval = realClear;
  });
  return { created: () => created, live };
}

const pings = (c: TestClient, n: number, what: string) =>
  within(
    new Promise<void>((r) => {
      let seen = 0;
      c.ws.on('ping', () => ++seen === n && r());
    }),
    5000,
    what,
  );

test('a peer that never answers pings is terminated and unregistered within two intervals; a live one stays', async (t) => {
  const interval = 100;
  const { hub, url } = await startHub(t, { heartbeat: { interval } });
  const live = await connect(t, url);
  const started = performance.now();
  const dead = await connect(t, url, { autoPong: false });
  let deadPings = 0;
  dead.ws.on('ping', () => deadPings++);
  const deadId = [...hub.clients.keys()][1]!;
  const gone = new Promise<[string, number, string]>((r) =>
    hub.once('disconnect', (c, code, reason) => r([c.id, code, reason])),
  );
  assert.deepEqual(await within(gone, 2 * interval + 500, 'the dead peer to be dropped'), [
    deadId,
    1006,
    'heartbeat timeout',
  ]);
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= interval - 5, `dropped after ${elapsed.toFixed(0)} ms, before one interval`);
  assert.equal((await dead.closed()).code, 1006);
  // Rounds, not wall time: one unanswered ping, then terminated at the next round.
  assert.equal(deadPings, 1);
  assert.equal(hub.clients.has(deadId), false);
  // The live peer answers every round and stays.
  await pings(live, 3, 'three more pings to the live peer');
  assert.equal(hub.clients.size, 1);
  assert.deepEqual(await live.request('heart_beat'), okReply('heart_beat', true, 1));
});

test('an application heart_beat keeps a peer alive that does not answer protocol pings', async (t) => {
  const { hub, url } = await startHub(t, { heartbeat: { interval: 50 } });
  const c = await connect(t, url, { autoPong: false });
  c.ws.on('ping', () => c.raw(JSON.stringify({ actioncode: 'heart_beat' })));
  await pings(c, 5, 'five rounds answered with heart_beat');
  assert.equal(hub.clients.size, 1);
  assert.equal(c.ws.readyState, WebSocket.OPEN);
});

test('heartbeat: false runs no timer', async (t) => {
  const intervals = watchIntervals(t);
  const { hub, url } = await startHub(t, { heartbeat: false });
  await connect(t, url);
  assert.equal(hub.clients.size, 1);
  assert.equal(intervals.created(), 0);
});

test('2,000 connections opened, then half closed and half terminated, leave no client and no timer behind', async (t) => {
  const N = 2000;
  const intervals = watchIntervals(t);
  const { hub, url } = await startHub(t, { heartbeat: { interval: 1000 } });
  const disconnects = times(N, 'disconnect');
  hub.on('disconnect', disconnects.hit);
  const clients: TestClient[] = [];
  for (let i = 0; i < N; i += 250) {
    const batch = Array.from({ length: Math.min(250, N - i) }, () => new TestClient(url));
    clients.push(...batch);
    await within(
      Promise.all(batch.map((c) => c.opened)),
      10_000,
      `connections ${i}..${i + batch.length}`,
    );
  }
  t.after(() => clients.forEach((c) => c.close()));
  assert.equal(hub.clients.size, N);
  assert.equal(hub.stats().clients, N);
  assert.equal(intervals.created(), 1, 'one heartbeat timer for every client');
  assert.equal(intervals.live.size, 1);
  clients.forEach((c, i) => (i % 2 === 0 ? c.ws.close(1000) : c.ws.terminate()));
  await within(disconnects.done, 15_000, `${N} disconnects`);
  assert.equal(hub.clients.size, 0);
  assert.equal(hub.stats().clients, 0);
  assert.equal(intervals.live.size, 0, 'the heartbeat timer stops with the last client');
  assert.equal([...hub.clients].length, 0);
});
