// Bounds on what one client can make the hub echo, fan out or keep: request ids, action codes,
// client_ids lists, room names and rooms per client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createManager } from '../src/index.ts';
import {
  MAX_ACTIONCODE_LENGTH,
  MAX_CLIENT_IDS,
  MAX_ID_LENGTH,
  parseInbound,
} from '../src/core/protocol.ts';
import { MAX_ROOM_LENGTH } from '../src/core/manager.ts';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, type Reply, idFromQuery, okReply } from './helpers/client.ts';

assertNoLeaks();

const invalid = (msg: string, actioncode: string, id?: string | number): Reply => ({
  code: 1,
  msg,
  actioncode,
  data: null,
  ...(id !== undefined && { id }),
});

test('the caps are 64-character ids, 128-character action codes and 1,000 client_ids', () => {
  assert.deepEqual(
    [MAX_ID_LENGTH, MAX_ACTIONCODE_LENGTH, MAX_CLIENT_IDS, MAX_ROOM_LENGTH],
    [64, 128, 1000, 256],
  );
  const at = parseInbound(
    JSON.stringify({
      actioncode: 'a'.repeat(128),
      id: 'i'.repeat(64),
      client_ids: Array(1000).fill('x'),
    }),
  );
  assert.ok(!('fault' in at), 'exactly at each cap is accepted');
});

test('an id over 64 characters, an actioncode over 128 and more than 1,000 client_ids get code 1, echoing nothing long', async (t) => {
  let calls = 0;
  const { url } = await startHub(t, {
    clientFanout: true,
    actions: { echo: (data: unknown) => (calls++, data) },
  });
  const c = await connect(t, url);
  const send = async (message: Record<string, unknown>) => {
    c.raw(JSON.stringify(message));
    return c.next(`reply to ${JSON.stringify(message).slice(0, 60)}`);
  };
  assert.deepEqual(
    await send({ actioncode: 'echo', id: 'x'.repeat(65) }),
    invalid('id must be at most 64 characters', 'echo'),
  );
  assert.deepEqual(
    await send({ actioncode: 'e'.repeat(129), id: 3 }),
    invalid('actioncode must be at most 128 characters', '', 3),
  );
  assert.deepEqual(
    await send({
      actioncode: 'echo',
      id: 4,
      client_ids: Array.from({ length: 1001 }, (_, i) => `c${i}`),
    }),
    invalid('client_ids must have at most 1000 entries', 'echo', 4),
  );
  // A long actioncode is not echoed in any fault.
  assert.deepEqual(
    await send({ actioncode: 'e'.repeat(129), id: {} }),
    invalid('id must be a string or a finite number', ''),
  );
  assert.equal(calls, 0);
  assert.deepEqual(await c.request('echo', 'ok'), okReply('echo', 'ok', 1));
});

test('a 900 KiB id on a fanned-out heart_beat is refused and reaches no other client', async (t) => {
  const { url } = await startHub(t, { clientFanout: true, id: idFromQuery });
  const sender = await connect(t, `${url}?id=sender`);
  const others = await Promise.all(['a', 'b', 'c'].map((n) => connect(t, `${url}?id=${n}`)));
  sender.raw(
    JSON.stringify({ actioncode: 'heart_beat', id: 'x'.repeat(900 * 1024), is_broadcast: true }),
  );
  assert.deepEqual(
    await sender.next('refusal'),
    invalid('id must be at most 64 characters', 'heart_beat'),
  );
  for (const other of others) assert.deepEqual(await other.barrier(), [], 'nothing fanned out');
});

test('createManager refuses an action whose wire code is longer than 128 characters', () => {
  const key = 'a' + 'B'.repeat(64); // wire code: "a" + 64 × "_b" = 129 characters
  assert.throws(
    () => createManager({ actions: { [key]: () => 1 } }),
    /^RangeError: action key "aB+" is too long: its wire code has 129 characters, at most 128$/,
  );
  const fine = 'a' + 'B'.repeat(63);
  void createManager({ actions: { [fine]: () => 1 } }).close();
});

test('room names over 256 characters throw a RangeError at join, leave and broadcast', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  await connect(t, `${url}?id=a`);
  const long = 'r'.repeat(257);
  const message = /^RangeError: room name must be at most 256 characters, got 257$/;
  assert.throws(() => hub.join('a', long), message);
  assert.throws(() => hub.leave('a', long), message);
  assert.throws(() => hub.broadcast('x', 1, { rooms: ['ok', long] }), message);
  assert.equal(hub.join('a', 'r'.repeat(256)), true);
  assert.deepEqual([...hub.clients.get('a')!.rooms], ['r'.repeat(256)]);
});

test('joining past maxRoomsPerClient throws a RangeError naming the cap; rejoining a room is fine', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery, maxRoomsPerClient: 3 });
  await connect(t, `${url}?id=a`);
  for (const room of ['r1', 'r2', 'r3', 'r3']) assert.equal(hub.join('a', room), true);
  assert.throws(
    () => hub.join('a', 'r4'),
    /^RangeError: client "a" is already in 3 rooms, the most options.maxRoomsPerClient allows$/,
  );
  assert.equal(hub.join('a', 'r1'), true, 'a room it is in already');
  hub.leave('a', 'r2');
  assert.equal(hub.join('a', 'r4'), true);
  assert.deepEqual([...hub.clients.get('a')!.rooms], ['r1', 'r3', 'r4']);
});

test('a handler joining rooms in a loop stops at the default cap of 1,000', async (t) => {
  const { hub, url } = await startHub(t, {
    actions: {
      greedy(_data: unknown, ctx) {
        let n = 0;
        try {
          for (; n < 1_000_000; n++) ctx.hub.join(ctx.client.id, `room-${n}`);
        } catch (err) {
          return { joined: n, error: (err as Error).name };
        }
        return { joined: n };
      },
    },
  });
  const c = await connect(t, url);
  assert.deepEqual((await c.request('greedy')).data, { joined: 1000, error: 'RangeError' });
  assert.equal([...hub.clients][0]!.rooms.size, 1000);
});
