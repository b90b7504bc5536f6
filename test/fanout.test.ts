import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import type { ManagerOptions } from '../src/index.ts';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, type Reply, type TestClient, push, idFromQuery } from './helpers/client.ts';

assertNoLeaks();

/** A hub and clients named by id (`?id=a` → client id `a`). */
async function clients<S>(
  t: TestContext,
  names: string[],
  options: ManagerOptions<S, undefined> = {},
) {
  const started = await startHub(t, { id: idFromQuery, ...options });
  const list = await Promise.all(names.map((n) => connect(t, `${started.url}?id=${n}`)));
  const by = Object.fromEntries(names.map((n, i) => [n, list[i]!])) as Record<string, TestClient>;
  return { ...started, c: by };
}

/** Asserts `who` received exactly `frames` (in order) before the barrier. */
async function received(who: TestClient, frames: Reply[], label: string): Promise<void> {
  assert.deepEqual(await who.barrier(), frames, label);
}

test('broadcast with no target reaches every client once and returns the count', async (t) => {
  const { hub, c } = await clients(t, ['a', 'b', 'c']);
  assert.equal(hub.broadcast('news', { n: 1 }), 3);
  for (const name of ['a', 'b', 'c']) await received(c[name]!, [push('news', { n: 1 })], name);
  assert.equal(hub.broadcast('news', null, {}), 3, 'an empty target is everyone');
  for (const name of ['a', 'b', 'c']) await received(c[name]!, [push('news', null)], name);
});

test('broadcast to ids reaches only those connected, each once', async (t) => {
  const { hub, c } = await clients(t, ['a', 'b', 'c']);
  assert.equal(hub.broadcast('dm', 'x', { to: ['a', 'c', 'a', 'ghost'] }), 2);
  await received(c.a!, [push('dm', 'x')], 'a');
  await received(c.b!, [], 'b');
  await received(c.c!, [push('dm', 'x')], 'c');
  assert.equal(hub.broadcast('dm', 'y', { to: [] }), 0, 'an empty list is nobody');
  await received(c.a!, [], 'a after empty to');
});

test('broadcast to rooms reaches their members once, even across several rooms', async (t) => {
  const { hub, c } = await clients(t, ['a', 'b', 'c']);
  hub.join('a', 'r1');
  hub.join('a', 'r2');
  hub.join('b', 'r2');
  assert.equal(hub.broadcast('room', 1, { rooms: ['r1'] }), 1);
  assert.equal(hub.broadcast('room', 2, { rooms: ['r1', 'r2'] }), 2);
  assert.equal(hub.broadcast('room', 3, { rooms: ['empty'] }), 0);
  await received(c.a!, [push('room', 1), push('room', 2)], 'a');
  await received(c.b!, [push('room', 2)], 'b');
  await received(c.c!, [], 'c');
});

test('broadcast except leaves out the listed ids, whatever the target', async (t) => {
  const { hub, c } = await clients(t, ['a', 'b', 'c']);
  hub.join('a', 'r');
  hub.join('b', 'r');
  assert.equal(hub.broadcast('x', 1, { except: ['b'] }), 2);
  assert.equal(hub.broadcast('x', 2, { rooms: ['r'], except: ['a'] }), 1);
  assert.equal(hub.broadcast('x', 3, { to: ['a', 'c'], except: ['c', 'ghost'] }), 1);
  assert.equal(hub.broadcast('x', 4, { to: ['a'], rooms: ['r'], except: ['a', 'b'] }), 0);
  await received(c.a!, [push('x', 1), push('x', 3)], 'a');
  await received(c.b!, [push('x', 2)], 'b');
  await received(c.c!, [push('x', 1)], 'c');
});

test('broadcast to rooms and ids together reaches their union, each client once', async (t) => {
  const { hub, c } = await clients(t, ['a', 'b', 'c', 'd']);
  hub.join('a', 'r');
  hub.join('b', 'r');
  assert.equal(hub.broadcast('u', 1, { rooms: ['r'], to: ['a', 'c'] }), 3);
  await received(c.a!, [push('u', 1)], 'a');
  await received(c.b!, [push('u', 1)], 'b');
  await received(c.c!, [push('u', 1)], 'c');
  await received(c.d!, [], 'd');
});

test('frames to one client arrive in the order they were queued', async (t) => {
  const { hub, c } = await clients(t, ['a', 'b']);
  const want: Reply[] = [];
  for (let i = 0; i < 200; i++) {
    if (i % 3 === 0) hub.send('a', 'seq', i);
    else if (i % 3 === 1) hub.broadcast('seq', i);
    else hub.broadcast('seq', i, { to: ['a'] });
    want.push(push('seq', i));
  }
  await received(c.a!, want, 'a');
});

test('broadcast throws a TypeError for a malformed target, actioncode or data and queues nothing', async (t) => {
  const { hub, c } = await clients(t, ['a']);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(
    () => hub.broadcast('x', 1, { to: 'a' } as never),
    /^TypeError: broadcast target\.to must be an array of strings$/,
  );
  assert.throws(
    () => hub.broadcast('x', 1, { rooms: [1] } as never),
    /^TypeError: broadcast target\.rooms must be an array of strings$/,
  );
  assert.throws(
    () => hub.broadcast('x', 1, { except: null } as never),
    /^TypeError: broadcast target\.except must be an array of strings$/,
  );
  assert.throws(
    () => hub.broadcast('x', 1, 'a' as never),
    /^TypeError: broadcast target must be an object$/,
  );
  assert.throws(
    () => hub.broadcast('', 1),
    /^TypeError: actioncode must be a non-empty string, got ""$/,
  );
  assert.throws(
    () => hub.broadcast('x', 1n),
    /^TypeError: data for "x" cannot be encoded as JSON: Do not know how to serialize a BigInt$/,
  );
  assert.throws(
    () => hub.send('a', 'x', cyclic),
    /^TypeError: data for "x" cannot be encoded as JSON: Converting circular structure to JSON/,
  );
  await received(c.a!, [], 'a');
});

const fanoutActions = {
  say: { handler: (data: string) => data, fanout: true },
  checked: { schema: z.string(), handler: (data: string) => data.toUpperCase(), fanout: true },
  quiet: (data: string) => data,
};

test('refuses is_broadcast and client_ids with code 9 unless the action allows fan-out', async (t) => {
  const { c } = await clients(t, ['a', 'b'], { actions: fanoutActions });
  const denied = (actioncode: string, id: number): Reply => ({
    code: 9,
    msg: 'fan-out not allowed for this action',
    actioncode,
    data: null,
    id,
  });
  assert.deepEqual(await c.a!.request('quiet', 'x', { is_broadcast: true }), denied('quiet', 1));
  assert.deepEqual(await c.a!.request('quiet', 'x', { client_ids: ['b'] }), denied('quiet', 2));
  assert.deepEqual(
    await c.a!.request('heart_beat', null, { is_broadcast: true }),
    denied('heart_beat', 3),
  );
  // The seed's clients send these fields empty; that is no fan-out.
  assert.deepEqual(await c.a!.request('quiet', 'x', { is_broadcast: false, client_ids: [] }), {
    ...push('quiet', 'x'),
    id: 4,
  });
  await received(c.b!, [], 'b');
});

test('is_broadcast on an action with fanout: true sends the reply to every client, the request id to the sender only', async (t) => {
  const { c } = await clients(t, ['a', 'b', 'c'], { actions: fanoutActions });
  assert.deepEqual(await c.a!.request('say', 'hi', { is_broadcast: true, client_ids: ['b'] }), {
    ...push('say', 'hi'),
    id: 1,
  });
  await received(c.a!, [], 'a gets it once');
  await received(c.b!, [push('say', 'hi')], 'b');
  await received(c.c!, [push('say', 'hi')], 'c');
  const checked = await c.a!.request('checked', 'yo', { is_broadcast: true });
  assert.deepEqual(checked, { ...push('checked', 'YO'), id: checked.id });
  await received(c.b!, [push('checked', 'YO')], 'b, schema action');
});

test("a fanned-out reply never resolves a recipient's own pending request with the same id", async (t) => {
  const { c } = await clients(t, ['a', 'b'], {
    actions: { ...fanoutActions, slow: () => new Promise((r) => setTimeout(() => r('late'), 50)) },
  });
  const mine = c.b!.request('slow', null); // b's request id 1, pending
  assert.deepEqual(await c.a!.request('say', 'from a', { is_broadcast: true }), {
    ...push('say', 'from a'),
    id: 1,
  });
  assert.deepEqual(
    await mine,
    { ...push('slow', 'late'), id: 1 },
    "b's id 1 resolves with its own reply",
  );
  await received(c.b!, [push('say', 'from a')], 'b got the push without an id');
});

test('client_ids sends the reply to those ids and the sender, once even if the sender lists itself', async (t) => {
  const { c } = await clients(t, ['a', 'b', 'c'], { actions: fanoutActions });
  assert.deepEqual(await c.a!.request('say', 'hey', { client_ids: ['b', 'a', 'a', 'ghost'] }), {
    ...push('say', 'hey'),
    id: 1,
  });
  await received(c.a!, [], 'a gets it once');
  await received(c.b!, [push('say', 'hey')], 'b');
  await received(c.c!, [], 'c');
});

test('clientFanout: true allows fan-out for every action unless it says fanout: false', async (t) => {
  const { c } = await clients(t, ['a', 'b'], {
    clientFanout: true,
    actions: { quiet: (data: string) => data, never: { handler: () => 1, fanout: false } },
  });
  assert.deepEqual(await c.a!.request('quiet', 'q', { client_ids: ['b'] }), {
    ...push('quiet', 'q'),
    id: 1,
  });
  await received(c.b!, [push('quiet', 'q')], 'b, quiet');
  const beat = await c.a!.request('heart_beat', null, { is_broadcast: true });
  assert.deepEqual(beat, { ...push('heart_beat', true), id: beat.id });
  await received(c.b!, [push('heart_beat', true)], 'b, heart_beat');
  const never = await c.a!.request('never', null, { is_broadcast: true });
  assert.deepEqual(never, {
    code: 9,
    msg: 'fan-out not allowed for this action',
    actioncode: 'never',
    data: null,
    id: never.id,
  });
  await received(c.b!, [], 'b, never');
});

test('an error reply to a fan-out request goes to the sender only', async (t) => {
  const { c } = await clients(t, ['a', 'b'], { actions: fanoutActions });
  const reply = await c.a!.request('checked', 5, { is_broadcast: true });
  assert.equal(reply.code, 1);
  await received(c.b!, [], 'b');
});
