import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Manager, ManagerEvents } from '../src/index.ts';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, idFromQuery, push, refusedStatus } from './helpers/client.ts';
import { times, within } from './helpers/wait.ts';

assertNoLeaks();

/** The arguments of the next `event` the hub emits. */
function next<E extends keyof ManagerEvents<undefined>>(
  hub: Manager<undefined>,
  event: E,
  what: string = event,
) {
  type Args = Parameters<ManagerEvents<undefined>[E]>;
  return within(
    new Promise<Args>((resolve) => hub.once(event, ((...args: Args) => resolve(args)) as never)),
    5000,
    what,
  );
}

test('emits connection with the client and the upgrade request, and lists the client', async (t) => {
  const { hub, url } = await startHub(t);
  const connected = next(hub, 'connection');
  await connect(t, `${url}?room=1`);
  const [client, req] = await connected;
  assert.match(client.id, /^[A-Za-z0-9_-]{21}$/, 'a nanoid');
  assert.equal(req?.url, '/ws?room=1');
  assert.deepEqual(
    [client.remoteAddress, client.protocol, client.data, client.connected, [...client.rooms]],
    ['127.0.0.1', '', undefined, true, []],
  );
  assert.equal(hub.clients.size, 1);
  assert.equal(hub.clients.get(client.id), client);
  assert.equal(hub.clients.has(client.id), true);
  assert.equal(hub.clients.get('nobody'), undefined);
  assert.deepEqual([...hub.clients], [client]);
  assert.deepEqual([...hub.clients.keys()], [client.id]);
  assert.deepEqual([...hub.clients.values()], [client]);
});

test('gives each client a distinct nanoid by default', async (t) => {
  const { hub, url } = await startHub(t);
  await Promise.all(Array.from({ length: 20 }, () => connect(t, url)));
  assert.equal(new Set(hub.clients.keys()).size, 20);
});

test('a connection listener can greet its client, or turn it away', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  hub.on('connection', (client) => {
    if (client.id === 'banned') hub.unregister(client, 4003, 'banned');
    else client.send('welcome', { id: client.id });
  });
  const a = await connect(t, `${url}?id=a`);
  assert.deepEqual(await a.next('welcome'), push('welcome', { id: 'a' }));
  const banned = await connect(t, `${url}?id=banned`);
  assert.deepEqual(await banned.closed(), { code: 4003, reason: 'banned' });
  assert.deepEqual([...hub.clients.keys()], ['a']);
});

test("hub.cluster reports this node's presence with the in-memory adapter", async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  await connect(t, `${url}?id=a`);
  await connect(t, `${url}?id=b`);
  assert.equal(await hub.cluster.size(), 2);
  assert.deepEqual([await hub.cluster.has('a'), await hub.cluster.has('z')], [true, false]);
});

test('options.id supplies the client id; a taken id is refused with 409, a failing one with 500', async (t) => {
  const { hub, url } = await startHub(t, {
    id(req) {
      const id = idFromQuery(req);
      if (id === 'throw') throw new Error('id lookup failed');
      return id === 'empty' ? '' : id;
    },
  });
  const errors: string[] = [];
  hub.on('error', (err) => errors.push(err.message));
  await connect(t, `${url}?id=alice`);
  assert.deepEqual([...hub.clients.keys()], ['alice']);
  assert.equal(await refusedStatus(`${url}?id=alice`), 409);
  assert.equal(await refusedStatus(`${url}?id=throw`), 500);
  assert.equal(await refusedStatus(`${url}?id=empty`), 500);
  assert.deepEqual(errors, [
    'id lookup failed',
    'options.id must return a non-empty string, got string',
  ]);
  assert.deepEqual([...hub.clients.keys()], ['alice']);
});

test('unregister closes the client with code and reason, emits disconnect, and is idempotent', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  const a = await connect(t, `${url}?id=a`);
  const b = await connect(t, `${url}?id=b`);
  const client = hub.clients.get('a')!;
  const disconnected = next(hub, 'disconnect');
  assert.equal(hub.unregister('a', 4000, 'bye'), true);
  assert.equal(hub.unregister('a', 4000, 'bye'), false);
  assert.equal(hub.unregister(client), false);
  assert.equal(hub.unregister('ghost'), false);
  assert.deepEqual(await disconnected, [client, 4000, 'bye']);
  assert.deepEqual(await a.closed(), { code: 4000, reason: 'bye' });
  assert.equal(client.connected, false);
  assert.equal(hub.clients.size, 1);
  // By Client object, with the default code.
  const bClient = hub.clients.get('b')!;
  assert.equal(hub.unregister(bClient), true);
  assert.deepEqual(await b.closed(), { code: 1000, reason: '' });
  assert.equal(hub.clients.size, 0);
});

test('unregister throws a RangeError for a code or reason ws cannot send and keeps the client', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  const a = await connect(t, `${url}?id=a`);
  for (const code of [999, 1004, 1005, 1006, 1015, 2000, 5000, 4000.5]) {
    assert.throws(
      () => hub.unregister('a', code),
      new RegExp(`^RangeError: invalid close code ${code}: use 1000, 1001-1014 or 3000-4999$`),
    );
  }
  assert.throws(
    () => hub.unregister('a', 4000, 'x'.repeat(124)),
    /^RangeError: close reason must be at most 123 bytes$/,
  );
  assert.equal(hub.clients.size, 1);
  assert.equal((await a.request('heart_beat')).code, 0);
});

test('client.close() unregisters like hub.unregister()', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  const [client] = hub.clients;
  const disconnected = next(hub, 'disconnect');
  client!.close(4001, 'kicked');
  assert.deepEqual(await disconnected, [client, 4001, 'kicked']);
  assert.deepEqual(await c.closed(), { code: 4001, reason: 'kicked' });
  assert.equal(hub.clients.size, 0);
});

test('a client that closes emits disconnect with its code and reason and leaves the registry', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  const [client] = hub.clients;
  const disconnected = next(hub, 'disconnect');
  c.ws.close(4002, 'see you');
  assert.deepEqual(await disconnected, [client, 4002, 'see you']);
  assert.equal(hub.clients.size, 0);
  assert.equal(client!.connected, false);
  assert.equal(hub.send(client!.id, 'x', 1), false);
  assert.equal(client!.send('x', 1), false);
});

test('send() pushes to one client and returns false for an unknown id', async (t) => {
  const { hub, url } = await startHub(t, { id: idFromQuery });
  const a = await connect(t, `${url}?id=a`);
  const b = await connect(t, `${url}?id=b`);
  assert.equal(hub.send('a', 'note', { n: 1 }), true);
  assert.equal(hub.clients.get('a')!.send('note', { n: 2 }), true);
  assert.equal(hub.send('nobody', 'note', 1), false);
  assert.deepEqual(await a.barrier(), [push('note', { n: 1 }), push('note', { n: 2 })]);
  assert.deepEqual(await b.barrier(), []);
});

test('stats() counts clients, messages and bytes each way, and errors', async (t) => {
  const { hub, url } = await startHub(t, {
    id: idFromQuery,
    actions: {
      boom() {
        throw new Error('x');
      },
    },
  });
  assert.deepEqual(hub.stats(), {
    clients: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    errors: 0,
  });
  const a = await connect(t, `${url}?id=a`);
  await connect(t, `${url}?id=b`);
  const sent = ['{"actioncode":"heart_beat","id":1}', '{"actioncode":"boom","id":2}', 'not json'];
  const replies = [
    '{"code":0,"msg":"success","actioncode":"heart_beat","data":true,"id":1}',
    '{"code":4,"msg":"server error","actioncode":"boom","data":null,"id":2}',
    '{"code":1,"msg":"invalid JSON","actioncode":"","data":null}',
  ];
  for (const frame of sent) {
    a.raw(frame);
    await a.next();
  }
  const push = '{"code":0,"msg":"success","actioncode":"all","data":1}';
  hub.broadcast('all', 1); // one frame each for a and b
  const bytes = (s: string) => Buffer.byteLength(s);
  const wire = (s: string) => 2 + bytes(s); // every frame here is under 126 bytes
  assert.deepEqual(hub.stats(), {
    clients: 2,
    messagesIn: 3,
    messagesOut: 5,
    bytesIn: sent.map(bytes).reduce((x, y) => x + y),
    bytesOut: replies.map(wire).reduce((x, y) => x + y) + 2 * wire(push),
    dropped: 0,
    errors: 1,
  });
});

test('close() delivers what was queued just before it, then closes everyone with 1001 and empties the registry', async (t) => {
  const { hub, server, url } = await startHub(t);
  const clients = await Promise.all([connect(t, url), connect(t, url), connect(t, url)]);
  const disconnects = times(3, 'disconnect');
  const codes: number[] = [];
  hub.on('disconnect', (_c, code) => (codes.push(code), disconnects.hit()));
  const big = 'x'.repeat(200_000);
  assert.equal(hub.broadcast('last', big), 3);
  const closing = hub.close();
  assert.equal(hub.close(), closing, 'a second call returns the same promise');
  for (const c of clients) {
    assert.deepEqual(await c.next('the last message'), push('last', big));
    assert.deepEqual(await c.closed(), { code: 1001, reason: 'server shutting down' });
  }
  await within(closing, 5000, 'close()');
  await within(disconnects.done, 5000, 'disconnects');
  assert.deepEqual(codes, [1001, 1001, 1001]);
  assert.equal(hub.clients.size, 0);
  assert.equal(hub.stats().clients, 0);
  assert.throws(() => hub.broadcast('late', 1), /^Error: broadcast\(\) called after close\(\)$/);
  assert.equal(server.listenerCount('upgrade'), 0, 'detached from the server');
});

test('close() takes a code and reason, and refuses bad ones', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  assert.throws(
    () => hub.close({ code: 1006 }),
    /^RangeError: invalid close code 1006: use 1000, 1001-1014 or 3000-4999$/,
  );
  assert.throws(
    () => hub.close({ timeout: -1 }),
    /^RangeError: close timeout must be a finite number of ms >= 0, got -1$/,
  );
  assert.equal(hub.clients.size, 1, 'a refused close() changes nothing');
  await within(hub.close({ code: 4100, reason: 'maintenance' }), 5000, 'close()');
  assert.deepEqual(await c.closed(), { code: 4100, reason: 'maintenance' });
});

test('while close() waits for a peer, upgrades get 503; after timeout the peer is terminated', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  const disconnected = next(hub, 'disconnect');
  c.ws.pause(); // never reads the close frame, so never answers it
  const closing = hub.close({ timeout: 300 });
  assert.deepEqual((await disconnected).slice(1), [1001, 'server shutting down']);
  assert.equal(await refusedStatus(url), 503);
  await within(closing, 5000, 'close() after its timeout');
  assert.equal(hub.clients.size, 0);
  c.ws.resume();
  await c.closed();
});

test('a throwing event listener does not break the registry or the connection', async (t) => {
  const logged: string[] = [];
  const { hub, url } = await startHub(t, {
    logger: { error: (_obj: unknown, msg: unknown) => logged.push(String(msg)) },
  });
  hub.on('connection', () => {
    throw new Error('listener bug');
  });
  hub.on('disconnect', () => {
    throw new Error('listener bug');
  });
  const c = await connect(t, url);
  assert.equal((await c.request('heart_beat')).code, 0);
  assert.equal(hub.clients.size, 1);
  const [client] = hub.clients;
  assert.equal(hub.unregister(client!), true);
  assert.equal(hub.clients.size, 0);
  assert.deepEqual(logged, ['wshub: an event listener threw', 'wshub: an event listener threw']);
  assert.equal((await connect(t, url)).ws.readyState, 1, 'still accepting');
});

test('a handler error with no error listener is still answered and logged', async (t) => {
  const logged: unknown[] = [];
  const { hub, url } = await startHub(t, {
    logger: { error: (obj: unknown) => logged.push(obj) },
    actions: {
      boom() {
        throw new Error('x');
      },
    },
  });
  const c = await connect(t, url);
  assert.equal((await c.request('boom')).code, 4);
  assert.equal(logged.length, 1);
  assert.equal(hub.stats().errors, 1);
});

test('a logger that throws cannot break a reply, an event or the process; this is kept for pino', async (t) => {
  let calls = 0;
  const logger = {
    prefix: 'kept',
    error(this: { prefix: string }, ..._args: unknown[]) {
      calls++;
      assert.equal(this.prefix, 'kept', 'called as a method of the logger');
      throw new Error('logger down');
    },
  };
  const { hub, url } = await startHub(t, {
    logger,
    actions: {
      boom() {
        throw new Error('x');
      },
    },
  });
  const errors = times(1, 'error event');
  hub.on('error', errors.hit);
  const c = await connect(t, url);
  assert.equal((await c.request('boom')).code, 4);
  await within(errors.done, 5000, 'the error event after the logger threw');
  assert.equal(calls, 1);
  assert.equal((await c.request('heart_beat')).data, true);
});

test('once close() has returned, broadcast, send, join and leave throw like handle and register; its own disconnect listeners may still push', async (t) => {
  const { hub, server, url } = await startHub(t, { id: idFromQuery });
  const [a, b] = [await connect(t, `${url}?id=a`), await connect(t, `${url}?id=b`)];
  // close() disconnects a, then b: a's listener still reaches b, whose close frame comes after.
  const pushed: number[] = [];
  hub.on('disconnect', (client) => {
    if (client.id === 'a') pushed.push(hub.broadcast('left', client.id));
  });
  const closing = hub.close({ timeout: 500 });
  assert.deepEqual(pushed, [1]);
  assert.deepEqual(await b.next('the push from a disconnect listener'), push('left', 'a'));
  assert.deepEqual(await b.closed(), { code: 1001, reason: 'server shutting down' });
  assert.equal((await a.closed()).code, 1001);
  const calls: [string, () => unknown][] = [
    ['broadcast', () => hub.broadcast('late', 1)],
    ['send', () => hub.send('b', 'late', 1)],
    ['join', () => hub.join('b', 'red')],
    ['leave', () => hub.leave('b', 'red')],
    ['handle', () => hub.handle(server, '/other')],
    ['register', () => hub.register(a.ws)],
  ];
  for (const [name, call] of calls) {
    assert.throws(call, new RegExp(`^Error: ${name}\\(\\) called after close\\(\\)$`));
  }
  await within(closing, 5000, 'close()');
  for (const [, call] of calls) assert.throws(call, /called after close\(\)$/);
  // What keeps working: unregister (nothing left), stats, the views, close.
  assert.equal(hub.unregister('b'), false);
  assert.equal(hub.stats().clients, 0);
  assert.equal(hub.clients.size, 0);
  assert.equal(await hub.cluster.size(), 0);
  assert.equal(hub.close(), closing);
});
