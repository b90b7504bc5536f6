import { test, before, after } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { nanoid } from 'nanoid';
import { assertNoLeaks, startHub } from './helpers/hub.ts';
import { connect } from './helpers/client.ts';
import { startRedis, type RedisServer } from './helpers/redis.ts';
import {
  HEARTBEAT,
  clientsOn,
  expectOnly,
  push,
  startCluster as start,
  startNode,
  type Node,
  type NodeOptions,
} from './helpers/redis-hubs.ts';
import { within } from './helpers/wait.ts';
import { run, http } from './helpers/child.ts';
import { createRedisAdapter } from '../src/redis.ts';
import { Frame, type Adapter } from '../src/index.ts';

// Any unhandled rejection in this file (adapter, broker client, test) fails it.
const rejections: unknown[] = [];
const trap = (reason: unknown): void => void rejections.push(reason);
process.on('unhandledRejection', trap);
after(() => {
  process.off('unhandledRejection', trap);
  assert.deepEqual(rejections, [], 'unhandled rejections');
});

let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(() => redis.close());
assertNoLeaks();

const startCluster = (
  t: TestContext,
  n: number,
  server = redis,
  options: NodeOptions = {},
): Promise<Node[]> => start(t, server, n, options);

test('broadcast reaches every client on every node once, and except leaves ids out on any node', async (t) => {
  const nodes = await startCluster(t, 3);
  const c = await clientsOn(t, nodes, 2);
  assert.equal(await nodes[0]!.hub.cluster.size(), 6);

  assert.equal(nodes[1]!.hub.broadcast('news', 1), 2);
  const everyone = Object.fromEntries(Object.keys(c).map((id) => [id, [push('news', 1)]]));
  await expectOnly(nodes[1]!, c, everyone);

  nodes[0]!.hub.broadcast('news', 2, { except: ['b0', 'c1', 'a0'] });
  await expectOnly(nodes[0]!, c, {
    a1: [push('news', 2)],
    b1: [push('news', 2)],
    c0: [push('news', 2)],
  });
  assert.deepEqual(
    nodes.flatMap((n) => n.errors),
    [],
  );
});

test('send and join reach an id on another node; presence is cluster-wide', async (t) => {
  const nodes = await startCluster(t, 3);
  const c = await clientsOn(t, nodes, 2);
  const [a, b, cc] = nodes as [Node, Node, Node];
  assert.equal(a.hub.send('c1', 'dm', { text: 'hi' }), false);
  assert.equal(a.hub.send('a1', 'dm', { text: 'local' }), true);
  assert.equal(b.hub.send('nobody', 'dm', {}), false);
  await expectOnly(a, c, { c1: [push('dm', { text: 'hi' })], a1: [push('dm', { text: 'local' })] });

  assert.equal(await a.hub.cluster.has('c1'), true);
  assert.equal(await a.hub.cluster.has('a0'), true);
  assert.equal(await a.hub.cluster.has('nobody'), false);
  c.b1!.close();
  await within(
    new Promise((resolve) => b.hub.once('disconnect', resolve)),
    5000,
    'b1 disconnect on node b',
  );
  assert.equal(await cc.hub.cluster.size(), 5);
  assert.equal(await cc.hub.cluster.has('b1'), false);
});

test('rooms span nodes: members anywhere get a room message once, nodes without members do not subscribe', async (t) => {
  const nodes = await startCluster(t, 3);
  const c = await clientsOn(t, nodes, 2);
  const [a, b, cc] = nodes as [Node, Node, Node];
  assert.equal((await c.a0!.request('join', { room: 'red' })).data, true);
  assert.equal(a.hub.join('b0', 'red'), false); // remote: forwarded to node b
  assert.equal((await c.c0!.request('join', { room: 'red' })).data, true);
  assert.equal((await c.c0!.request('join', { room: 'blue' })).data, true);
  assert.equal(cc.hub.join('b1', 'blue'), false);
  // Barriers: a node's question follows its own forwarded joins, and is answered once they are subscribed.
  assert.equal(await cc.hub.cluster.size(), 6);
  assert.equal(await a.hub.cluster.size(), 6);

  const prefix = (await b.pub.pubSubChannels('*:room:red'))[0]!.slice(0, -':room:red'.length);
  assert.deepEqual(
    await a.pub.pubSubNumSub([`${prefix}:room:red`, `${prefix}:room:blue`, `${prefix}:room:none`]),
    {
      [`${prefix}:room:red`]: 3,
      [`${prefix}:room:blue`]: 2,
      [`${prefix}:room:none`]: 0,
    },
  );

  b.hub.broadcast('paint', 'rb', { rooms: ['red', 'blue'], except: ['a0'] });
  await expectOnly(b, c, {
    b0: [push('paint', 'rb')],
    c0: [push('paint', 'rb')],
    b1: [push('paint', 'rb')],
  });

  a.hub.broadcast('mix', 1, { to: ['c1', 'b0', 'a1'], rooms: ['blue'] });
  await expectOnly(a, c, {
    a1: [push('mix', 1)],
    b0: [push('mix', 1)],
    b1: [push('mix', 1)],
    c0: [push('mix', 1)],
    c1: [push('mix', 1)],
  });

  assert.equal(a.hub.leave('b1', 'blue'), false);
  assert.equal(await a.hub.cluster.size(), 6);
  assert.deepEqual(await a.pub.pubSubNumSub(`${prefix}:room:blue`), { [`${prefix}:room:blue`]: 1 });
  cc.hub.broadcast('paint', 'b', { rooms: ['blue'] });
  await expectOnly(cc, c, { c0: [push('paint', 'b')] });
});

test("clients' client_ids and is_broadcast fan-out reach ids on other nodes once", async (t) => {
  const nodes = await startCluster(t, 3);
  const c = await clientsOn(t, nodes, 2);
  const reply = await c.a0!.request('echo', 'x', { client_ids: ['b0', 'c1', 'a0'] });
  assert.deepEqual(reply, { ...push('echo', 'x'), id: 1 });
  const fanned = push('echo', 'x'); // copies to others are pushes: the request id is the sender's
  await expectOnly(nodes[0]!, c, { b0: [fanned], c1: [fanned] });

  const all = await c.b1!.request('echo', 'y', { is_broadcast: true });
  assert.deepEqual(all, { ...push('echo', 'y'), id: 1 });
  const y = push('echo', 'y');
  await expectOnly(nodes[1]!, c, { a0: [y], a1: [y], b0: [y], c0: [y], c1: [y] });
});

test('1,000 messages from one node arrive in order over every kind of channel', async (t) => {
  const nodes = await startCluster(t, 3);
  const c = await clientsOn(t, nodes, 1);
  const [a, b] = nodes as [Node, Node];
  await c.b0!.request('join', { room: 'red' });
  await c.c0!.request('join', { room: 'red' });
  assert.equal(await a.hub.cluster.size(), 3);

  const N = 1000;
  for (let n = 0; n < N; n++) {
    if (n % 4 === 0) a.hub.broadcast('seq', n);
    else if (n % 4 === 1) a.hub.broadcast('seq', n, { rooms: ['red'] });
    else if (n % 4 === 2) a.hub.broadcast('seq', n, { to: ['b0', 'c0'], rooms: ['red'] });
    else a.hub.send('b0', 'seq', n);
  }
  const got: number[] = [];
  for (let n = 0; n < N; n++) got.push((await c.b0!.next(`b0 message ${n}`)).data as number);
  assert.deepEqual(
    got,
    Array.from({ length: N }, (_, n) => n),
  );
  const toC: number[] = [];
  for (let n = 0; n < N; n++)
    if (n % 4 !== 3) toC.push((await c.c0!.next(`c0 message ${n}`)).data as number);
  assert.deepEqual(
    toC,
    Array.from({ length: N }, (_, n) => n).filter((n) => n % 4 !== 3),
  );
  assert.deepEqual(await c.b0!.barrier(), []);
  assert.deepEqual(b.errors, []);
});

test('a node killed with SIGKILL leaves cluster.size() within heartbeatTimeout + heartbeatInterval', async (t) => {
  const prefix = nanoid();
  const parent = await startNode(t, redis, prefix);
  const local = await connect(t, `${parent.url}?id=p0`);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(new URL('./helpers/redis-node.ts', import.meta.url))],
    {
      env: { ...process.env, REDIS_URL: redis.url, PREFIX: prefix, HEARTBEAT: String(HEARTBEAT) },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(() => void child.kill('SIGKILL'));
  const [line] = (await within(once(child.stdout!, 'data'), 15_000, 'child node URL')) as [Buffer];
  const url = line.toString().trim();
  const remote = [];
  for (const id of ['k0', 'k1', 'k2']) remote.push(await connect(t, `${url}?id=${id}`));
  assert.equal(await parent.hub.cluster.size(), 4);
  assert.equal(await parent.hub.cluster.has('k1'), true);
  const uid = parent.log.lines.find((l) => l.msg === 'wshub: cluster node up')!.node!;

  const killed = performance.now();
  child.kill('SIGKILL');
  await within(
    parent.log.about('wshub: cluster node expired', uid),
    5000,
    'expiry of the killed node',
  );
  const elapsed = performance.now() - killed;
  const bound = 3 * HEARTBEAT + HEARTBEAT;
  t.diagnostic(`killed node expired after ${Math.round(elapsed)} ms (bound ${bound} ms)`);
  // Timers on a loaded CI machine fire late: allow 500 ms of lateness, no more.
  assert.ok(elapsed <= bound + 500, `expired after ${Math.round(elapsed)} ms, bound ${bound} ms`);
  assert.equal(await parent.hub.cluster.size(), 1);
  assert.equal(await parent.hub.cluster.has('k1'), false);
  assert.deepEqual(await local.barrier(), []);
});

test('a Redis outage never stops local delivery, is reported, and cross-node delivery resumes', async (t) => {
  const server = await startRedis();
  t.after(() => server.close());
  const nodes = await startCluster(t, 2, server);
  const [a, b] = nodes as [Node, Node];
  const c = await clientsOn(t, nodes, 1);

  // A steady stream from node a, across the outage: a load generator, not a wait.
  let n = 0;
  const stream = setInterval(() => a.hub.broadcast('tick', n++), 5);
  t.after(() => clearInterval(stream));
  const ticks = { a0: [] as number[], b0: [] as number[] };
  const upTo = async (id: 'a0' | 'b0', pred: (v: number) => boolean, what: string) => {
    for (;;) {
      const v = (await c[id]!.next(what)).data as number;
      ticks[id].push(v);
      if (pred(v)) return v;
    }
  };
  await upTo('b0', (v) => v >= 10, 'ticks on b0 before the outage');

  const reported = Promise.all(
    [a, b].map((node) => new Promise<Error>((resolve) => node.hub.once('error', resolve))),
  );
  await server.stop();
  const [errA] = await within(reported, 5000, 'outage reported on both nodes');
  assert.match(errA!.message, /^wshub: redis unreachable; delivering locally only$/);
  const down = n;
  assert.equal(b.hub.join('b0', 'during'), true); // its subscription waits for Redis
  await upTo('a0', (v) => v >= down + 20, 'local ticks during the outage');
  assert.equal(a.pub.isReady, false, 'the outage lasted while local ticks flowed');

  await server.restart();
  const restarted = n;
  await upTo('b0', (v) => v > restarted, 'ticks on b0 after Redis returned');
  clearInterval(stream);
  const last = n - 1;
  await upTo('a0', (v) => v === last, 'the last tick on a0');

  // a0 (local) saw every tick; b0 saw them in order, with a gap for the outage and no replay.
  assert.deepEqual(
    ticks.a0,
    Array.from({ length: last + 1 }, (_, i) => i),
  );
  assert.ok(
    ticks.b0.every((v, i) => i === 0 || v > ticks.b0[i - 1]!),
    'b0 ticks in order',
  );
  assert.ok(ticks.b0.length < ticks.a0.length, 'messages published during the outage are dropped');

  // b0's ticks prove a's pub and b's sub are back; the other two connections may still be reconnecting.
  for (const client of [a.sub, b.pub])
    if (!client.isReady) await within(once(client, 'ready'), 5000, 'redis client ready');
  // Presence resyncs too: any message from b (its hello, this broadcast) makes a know b again.
  b.hub.broadcast('back', true);
  for (;;) if ((await c.a0!.next('back on a0')).actioncode === 'back') break;
  assert.equal(await a.hub.cluster.size(), 2);
  assert.equal(await a.hub.cluster.has('b0'), true);
  a.hub.broadcast('room', 'during', { rooms: ['during'] });
  for (;;) if ((await c.b0!.next('room message on b0')).actioncode === 'room') break;
  assert.equal(a.errors.length, 1, `errors on a: ${a.errors.map((e) => e.message).join(', ')}`);
});

test('sharded: true carries broadcasts, rooms, sends and presence over SPUBLISH/SSUBSCRIBE', async (t) => {
  const nodes = await startCluster(t, 3, redis, { sharded: true });
  const c = await clientsOn(t, nodes, 1);
  const [a, b, cc] = nodes as [Node, Node, Node];
  await c.b0!.request('join', { room: 'red' });
  assert.equal(a.hub.join('c0', 'red'), false);
  assert.equal(await a.hub.cluster.size(), 3);
  const prefix = (await a.pub.pubSubShardChannels('*:room:red'))[0]!.slice(0, -':room:red'.length);
  assert.deepEqual(await a.pub.pubSubShardNumSub(`${prefix}:room:red`), {
    [`${prefix}:room:red`]: 2,
  });
  assert.deepEqual(await a.pub.pubSubNumSub(`${prefix}:all`), { [`${prefix}:all`]: 0 }); // nothing on classic pub/sub

  a.hub.broadcast('all', 1);
  await expectOnly(a, c, { a0: [push('all', 1)], b0: [push('all', 1)], c0: [push('all', 1)] });
  b.hub.broadcast('room', 2, { rooms: ['red'], to: ['c0', 'a0'] });
  cc.hub.send('a0', 'dm', 3);
  await expectOnly(b, c, { a0: [push('room', 2)], b0: [push('room', 2)], c0: [push('room', 2)] });
  await expectOnly(cc, c, { a0: [push('dm', 3)] });
  assert.equal(await b.hub.cluster.has('c0'), true);
});

test('a frame over maxFrameSize, or an id or room over 1,024 characters, stays on its node and is reported once', async (t) => {
  const nodes = await startCluster(t, 2, redis, { maxFrameSize: 64 * 1024 });
  const c = await clientsOn(t, nodes, 1);
  const [a, b] = nodes as [Node, Node];
  const big = 'x'.repeat(64 * 1024);
  assert.equal(a.hub.broadcast('big', big), 1);
  const refused = await a.reported(
    /^wshub cluster: a frame of \d+ bytes exceeds maxFrameSize \(65536\); not sent to other nodes$/,
    'refusal of the big frame',
  );
  assert.equal((await c.a0!.next('the big frame, locally')).data, big);
  assert.equal(a.hub.send('b0', 'big', big), false);
  // A room name past the hub's own cap (256) is refused at the API, before any adapter (#9 item 9).
  const longRoom = /^RangeError: room name must be at most 256 characters, got 1025$/;
  assert.throws(() => a.hub.join('b0', 'r'.repeat(1025)), longRoom);
  assert.throws(() => a.hub.broadcast('long', 1, { rooms: ['r'.repeat(1025)] }), longRoom);
  // Multi-byte text: under the limit in characters, over it in UTF-8 bytes.
  a.hub.broadcast('wide', 'é'.repeat(40 * 1024));
  await expectOnly(a, c, { a0: [push('wide', 'é'.repeat(40 * 1024))] });
  assert.deepEqual(a.errors, [refused], 'one report per 10 s');
  b.hub.broadcast('small', 1);
  await expectOnly(b, c, { a0: [push('small', 1)], b0: [push('small', 1)] });
});

test('createRedisAdapter rejects missing or shared clients, bad durations, short secrets and bad bounds at the call', async (t) => {
  const pub = await redis.client();
  const sub = await redis.client();
  t.after(() => {
    pub.destroy();
    sub.destroy();
  });
  assert.throws(
    () => createRedisAdapter({ pub, sub: undefined as never }),
    /^TypeError: createRedisAdapter: options.sub must be a node-redis client$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub: pub }),
    /^TypeError: createRedisAdapter: options.sub must be a separate connection from options.pub \(pub.duplicate\(\)\)$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, heartbeatInterval: 0 }),
    /^RangeError: options.heartbeatInterval must be a positive number of ms, got 0$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, prefix: '' }),
    /^TypeError: options.prefix must be a non-empty string, got $/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, secret: 'short' }),
    /^RangeError: options.secret must be at least 16 bytes, got 5$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, secret: 42 as never }),
    /^TypeError: options.secret must be a string or a Uint8Array$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, maxFrameSize: 1.5 }),
    /^RangeError: options.maxFrameSize must be a positive integer, got 1.5$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, maxPendingMessages: 0 }),
    /^RangeError: options.maxPendingMessages must be a positive integer, got 0$/,
  );
  assert.throws(
    () => createRedisAdapter({ pub, sub, maxPendingBytes: Infinity }),
    /^RangeError: options.maxPendingBytes must be a positive integer, got Infinity$/,
  );
});

test('examples/cluster: two chat nodes with WSHUB_SECRET share one chat and one online count through Redis', async (t) => {
  const env = { REDIS_URL: redis.url, WSHUB_SECRET: 'the example nodes share this key' };
  const a = await run(t, 'examples/cluster/server.js', env);
  const b = await run(t, 'examples/cluster/server.js', env);
  await Promise.all([a.line(/cluster node up/, 'a sees b'), b.line(/cluster node up/, 'b sees a')]);
  const page = await http(`http://127.0.0.1:${b.port}/`);
  assert.deepEqual([page.status, page.type], [200, 'text/html; charset=utf-8']);

  const ca = await connect(t, `ws://127.0.0.1:${a.port}/ws`);
  assert.equal((await ca.next('welcome on a')).actioncode, 'welcome');
  assert.deepEqual(await ca.next('online on a'), push('online', { count: 1 }));
  const cb = await connect(t, `ws://127.0.0.1:${b.port}/ws`);
  assert.equal((await cb.next('welcome on b')).actioncode, 'welcome');
  // a's broadcast of ca's arrival may still be on its way to b: cb can get it after connecting.
  let online = await cb.next('online on b');
  if ((online.data as { count: number }).count === 1)
    online = await cb.next('online on b, after a');
  assert.deepEqual(online, push('online', { count: 2 }));
  assert.deepEqual(await ca.next('online on a, from b'), push('online', { count: 2 }));

  assert.deepEqual(await cb.request('chat_send', { text: 'across' }), {
    ...push('chat_send', { ok: true }),
    id: 1,
  });
  const message = await ca.next('chat message on a');
  assert.deepEqual(
    message,
    push('chat_message', {
      from: 'guest',
      text: 'across',
      at: (message.data as { at: number }).at,
    }),
  );
  ca.close();
  cb.close();
  for (const program of [a, b]) assert.deepEqual(await program.stop(), { code: 0, signal: null });
});

test('a closed node never publishes again, and other nodes do not take it back for a late message', async (t) => {
  const prefix = nanoid();
  const [a] = await start(t, redis, 1, { prefix });
  // b's adapter kept by hand, to call it as nothing in the hub may after close().
  const pub = await redis.client();
  const sub = await redis.client();
  t.after(() => {
    pub.destroy();
    sub.destroy();
  });
  let adapter!: Adapter;
  const factory = createRedisAdapter({ pub, sub, prefix, heartbeatInterval: HEARTBEAT });
  const b = await startHub(t, { adapter: (host) => (adapter = factory(host)), heartbeat: false });
  await within(a!.log.count('wshub: cluster node up', 1), 5000, 'a sees b');
  const uid = a!.log.lines.find((l) => l.msg === 'wshub: cluster node up')!.node!;

  const monitor = await redis.client();
  const heard: string[] = [];
  const marker = new EventEmitter();
  await monitor.pSubscribe(`${prefix}:*`, (message, channel) => {
    if (channel === `${prefix}:marker`) marker.emit('marker');
    else if (message.startsWith(`{"f":"${uid}"`)) heard.push(JSON.parse(message.split('\n')[0]!).k);
  });
  const left = a!.log.about('wshub: cluster node left', uid);
  await within(b.hub.close({ timeout: 100 }), 5000, 'b closes');
  await within(left, 5000, "a hears b's bye");

  for (const call of [
    () => b.hub.broadcast('news', 1),
    () => b.hub.send('x', 'dm', 1),
    () => b.hub.join('x', 'red'),
    () => b.hub.leave('x', 'red'),
  ]) {
    assert.throws(call, /^Error: (broadcast|send|join|leave)\(\) called after close\(\)$/);
  }
  // What the manager no longer does, done to the adapter itself: nothing reaches Redis.
  adapter.broadcast(
    new Frame('{"code":0,"msg":"success","actioncode":"news","data":1}'),
    undefined,
  );
  adapter.broadcast(new Frame('{"code":0,"msg":"success","actioncode":"news","data":2}'), {
    rooms: ['red', 'blue'],
  });
  adapter.send('x', new Frame('{"code":0,"msg":"success","actioncode":"dm","data":1}'));
  adapter.join('x', 'red');
  assert.equal(await adapter.size(), 0);
  // Barrier: b's own connection publishes a marker; whatever b published before it came first.
  const marked = once(marker, 'marker');
  await pub.publish(`${prefix}:marker`, 'x');
  await within(marked, 5000, 'the marker after b closed');
  // The monitor may have heard b's heartbeats and its bye; nothing after the bye.
  assert.deepEqual(heard.slice(heard.indexOf('bye')), ['bye'], `b published ${heard.join(' ')}`);

  // A late message in b's name (a replay, or a copy that crossed the bye) does not bring b back:
  // then a bad message on the same connection, whose report proves a read the late one first.
  await monitor.unsubscribe();
  await pub.publish(`${prefix}:all`, `{"f":"${uid}","k":"h","s":0}`);
  await pub.publish(`${prefix}:all`, 'not a message');
  await a!.reported(/^wshub cluster: dropped a bad message/, 'the bad message after the late one');
  assert.equal(a!.log.lines.filter((l) => l.msg === 'wshub: cluster node up').length, 1);
  assert.equal(await a!.hub.cluster.size(), 0);
});
