import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, idFromQuery, push } from './helpers/client.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

test('join and leave return whether the client is on this node and update client.rooms', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  await connect(t, `${url}?id=a`);
  const a = hub.clients.get('a')!;
  assert.equal(hub.join('a', 'lobby'), true);
  assert.equal(hub.join('a', 'lobby'), true, 'joining twice is harmless');
  assert.equal(hub.join('a', 'games'), true);
  assert.deepEqual([...a.rooms], ['lobby', 'games']);
  assert.equal(hub.leave('a', 'lobby'), true);
  assert.equal(hub.leave('a', 'never-joined'), true);
  assert.deepEqual([...a.rooms], ['games']);
  assert.equal(hub.join('ghost', 'lobby'), false);
  assert.equal(hub.leave('ghost', 'lobby'), false);
  assert.equal(hub.broadcast('x', 1, { rooms: ['lobby'] }), 0);
  assert.equal(hub.broadcast('x', 1, { rooms: ['games'] }), 1);
});

test('join and leave throw a TypeError for a room that is not a non-empty string', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  await connect(t, `${url}?id=a`);
  assert.throws(() => hub.join('a', ''), /^TypeError: room must be a non-empty string, got ""$/);
  assert.throws(
    () => hub.join('a', 5 as never),
    /^TypeError: room must be a non-empty string, got 5$/,
  );
  assert.throws(
    () => hub.leave('a', undefined as never),
    /^TypeError: room must be a non-empty string, got undefined$/,
  );
  assert.deepEqual([...hub.clients.get('a')!.rooms], []);
});

test("a handler can put its client in a room and talk to the room (the seed's Group)", async (t) => {
  const { hub, url } = await startHub(t, {
    id: idFromQuery,
    actions: {
      enter(room: string, ctx) {
        return ctx.hub.join(ctx.client.id, room);
      },
      exit(room: string, ctx) {
        return ctx.hub.leave(ctx.client.id, room);
      },
      say(data: { room: string; text: string }, ctx) {
        return ctx.hub.broadcast(
          'said',
          { from: ctx.client.id, text: data.text },
          { rooms: [data.room], except: [ctx.client.id] },
        );
      },
    },
  });
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => connect(t, `${url}?id=${n}`)));
  for (const x of [a!, b!]) assert.equal((await x.request('enter', 'r')).data, true);
  assert.equal((await a!.request('say', { room: 'r', text: 'hi' })).data, 1);
  assert.deepEqual(await b!.barrier(), [push('said', { from: 'a', text: 'hi' })]);
  assert.deepEqual(await c!.barrier(), []);
  assert.equal((await b!.request('exit', 'r')).data, true);
  assert.equal((await a!.request('say', { room: 'r', text: 'anyone?' })).data, 0);
  assert.deepEqual(await b!.barrier(), []);
  assert.deepEqual([...hub.clients.get('a')!.rooms], ['r']);
});

test('a client that disconnects leaves its rooms', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  const a = await connect(t, `${url}?id=a`);
  const b = await connect(t, `${url}?id=b`);
  const client = hub.clients.get('a')!;
  hub.join('a', 'r');
  hub.join('a', 's');
  hub.join('b', 'r');
  const gone = new Promise((resolve) => hub.once('disconnect', resolve));
  a.ws.close(1000);
  await within(gone, 5000, 'disconnect of a');
  assert.deepEqual([...client.rooms], []);
  assert.equal(hub.broadcast('x', 1, { rooms: ['r', 's'] }), 1);
  assert.deepEqual(await b.barrier(), [push('x', 1)]);
  // The same id reconnecting starts with no rooms.
  await connect(t, `${url}?id=a`);
  assert.deepEqual([...hub.clients.get('a')!.rooms], []);
  assert.equal(hub.broadcast('x', 2, { rooms: ['s'] }), 0);
});
