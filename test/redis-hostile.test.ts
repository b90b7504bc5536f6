// Hostile broker traffic: what anyone who can PUBLISH on the cluster's prefix could send, published
// raw with a plain redis client at a real redis-server. Ordering: a node's marker published after
// `await raw.publish(…)` returned reaches every subscriber after the forgery (Redis dispatches a
// PUBLISH to every subscriber before it replies), so a marker is a barrier for what came before.
import { test, before, after } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { nanoid } from 'nanoid';
import { assertNoLeaks } from './helpers/hub.ts';
import { trapCrashes } from './helpers/crash.ts';
import { startRedis, type Redis, type RedisServer } from './helpers/redis.ts';
import {
  clientsOn,
  expectOnly,
  push,
  startCluster,
  type Node,
  type NodeOptions,
} from './helpers/redis-hubs.ts';
import { within } from './helpers/wait.ts';
import { encodeFrame, forge, sign } from './helpers/forge.ts';

let redis: RedisServer;
before(async () => {
  redis = await startRedis();
});
after(() => redis.close());
assertNoLeaks();

const SECRET = 'a shared key of at least 16 bytes';
const FAKE = 'fakeNodeUid_000000000';
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

interface Cluster {
  prefix: string;
  nodes: [Node, Node];
  /** uid of each node, as the other logged it */
  uid: [string, string];
  raw: Redis;
}

async function cluster(t: TestContext, options: NodeOptions = {}): Promise<Cluster> {
  const prefix = nanoid();
  const nodes = (await startCluster(t, redis, 2, { prefix, ...options })) as [Node, Node];
  const upIn = (node: Node) =>
    node.log.lines.find((l) => l.msg === 'wshub: cluster node up')!.node!;
  return { prefix, nodes, uid: [upIn(nodes[1]), upIn(nodes[0])], raw: await redis.client() };
}

const ups = (node: Node) => node.log.lines.filter((l) => l.msg === 'wshub: cluster node up').length;
const bad = (node: Node) =>
  node.errors.filter((e) => e.message.startsWith('wshub cluster: dropped a bad message'));

test('a question nested 5,000 deep is dropped and reported; every node stays up and keeps delivering', async (t) => {
  const crashes = trapCrashes(t);
  const { prefix, nodes, uid, raw } = await cluster(t);
  const c = await clientsOn(t, nodes, 1);
  await raw.publish(`${prefix}:all`, `{"f":"${FAKE}","k":"q","q":${deep(5000)}}`);
  for (const node of nodes) {
    await node.reported(
      /^wshub cluster: dropped a bad message on .+:all: q must be a positive safe integer$/,
      'report of the deep question',
    );
  }
  // Every other field a node reads, nested as deep, in every kind that carries it.
  const d = deep(5000);
  for (const [channel, message] of [
    [`${prefix}:all`, `{"f":"${FAKE}","k":"q","q":1,"i":${d}}`],
    [`${prefix}:node:${uid[0]}`, `{"f":"${uid[1]}","k":"a","q":1,"n":${d},"h":${d}}`],
    [`${prefix}:all`, `{"f":"${FAKE}","k":"b","t":{"to":${d}}}\n${encodeFrame('x', 1)}`],
    [`${prefix}:all`, `{"f":"${FAKE}","k":"b","m":${d}}\n${encodeFrame('x', 1)}`],
    [`${prefix}:all`, `{"f":"${FAKE}","k":"+","i":${d},"s":${d}}`],
    [`${prefix}:all`, `{"f":"${FAKE}","k":"j","i":"a0","r":${d}}`],
    [`${prefix}:node:${uid[0]}`, `{"f":"${FAKE}","k":"snap","s":1}\n${d}`],
    [`${prefix}:all`, `{"f":${d},"k":${d}}`],
    [
      `${prefix}:all`,
      `{"f":"${FAKE}","k":"b"}\n{"code":${d},"msg":"success","actioncode":"x","data":1}`,
    ],
  ] as const) {
    await raw.publish(channel, message);
  }
  await expectOnly(nodes[0], c, {});
  await expectOnly(nodes[1], c, {});
  assert.equal(await nodes[0].hub.cluster.size(), 2);
  assert.deepEqual(crashes, []);
});

test('a flood of 2,000 bad messages is reported once per node, not once per message', async (t) => {
  const { prefix, nodes, raw } = await cluster(t);
  const c = await clientsOn(t, nodes, 1);
  const kinds = ['not json', '[]', `{"f":"${FAKE}","k":"zz"}`, `{"f":"${FAKE}","k":"h","s":-1}`];
  await Promise.all(
    Array.from({ length: 2000 }, (_, i) => raw.publish(`${prefix}:all`, kinds[i % kinds.length]!)),
  );
  await expectOnly(nodes[0], c, {});
  await expectOnly(nodes[1], c, {});
  for (const node of nodes) {
    assert.deepEqual(
      bad(node).map((e) => e.message),
      [`wshub cluster: dropped a bad message on ${prefix}:all: header is not JSON`],
    );
  }
});

test('forged frames that are not frames, or over maxFrameSize, never reach a client on :all, :room:<r> or :node:<uid>', async (t) => {
  const { prefix, nodes, uid, raw } = await cluster(t);
  const c = await clientsOn(t, nodes, 1);
  for (const id of ['a0', 'b0'])
    assert.equal((await c[id]!.request('join', { room: 'red' })).data, true);
  assert.equal(await nodes[0].hub.cluster.size(), 2); // barrier: the room channels are subscribed

  const bodies = [
    'hello',
    '',
    '{"evil":true}',
    '[1]',
    '"text"',
    `${encodeFrame('x', 1).slice(0, -1)},"extra":1}`,
    encodeFrame('x', 'y'.repeat(2 << 20)),
  ];
  const channels = [
    `${prefix}:all`,
    `${prefix}:room:red`,
    `${prefix}:node:${uid[0]}`,
    `${prefix}:node:${uid[1]}`,
  ];
  for (const channel of channels) {
    for (const body of bodies) {
      await raw.publish(channel, `{"f":"${FAKE}","k":"b"}\n${body}`);
      if (!channel.includes(':room:'))
        await raw.publish(
          channel,
          `{"f":"${FAKE}","k":"s","i":"${channel.endsWith(uid[0]) ? 'a0' : 'b0'}"}\n${body}`,
        );
    }
  }
  await raw.publish(
    `${prefix}:all`,
    `{"f":"${FAKE}","k":"b"}\n${encodeFrame('x', 'y'.repeat(10 << 20))}`,
  ); // 10 MiB
  await expectOnly(nodes[0], c, {});
  await expectOnly(nodes[1], c, {});
  for (const node of nodes) assert.equal(bad(node).length, 1, 'reported, once');
  nodes[1].hub.broadcast('paint', 1, { rooms: ['red'] });
  await expectOnly(nodes[1], c, { a0: [push('paint', 1)], b0: [push('paint', 1)] });
});

test('a forged answer that is not a count is dropped: size() stays a number', async (t) => {
  const { prefix, nodes, uid, raw } = await cluster(t, { requestTimeout: 300 });
  await clientsOn(t, nodes, 1);
  // A peer that announces itself and answers every question with junk.
  const listener = await redis.client();
  await listener.subscribe(`${prefix}:all`, (message) => {
    const q = /"k":"q","q":(\d+)/.exec(message)?.[1];
    if (q)
      void raw.publish(
        `${prefix}:node:${uid[0]}`,
        `{"f":"${FAKE}","k":"a","q":${q},"n":"2NaN-ish","h":"yes"}`,
      );
  });
  await raw.publish(`${prefix}:all`, `{"f":"${FAKE}","k":"h","s":0}`);
  await within(nodes[0].log.about('wshub: cluster node up', FAKE), 5000, 'the fake peer is heard');
  assert.equal(await nodes[0].hub.cluster.size(), 2);
  assert.equal(await nodes[0].hub.cluster.has('nobody'), false);
  await nodes[0].reported(/: n must be a non-negative safe integer$/, 'report of the junk answer');
});

test('a snapshot nobody asked for, or one of junk, does not change presence', async (t) => {
  const { prefix, nodes, uid, raw } = await cluster(t, { requestTimeout: 300 });
  await clientsOn(t, nodes, 1);
  const ids = JSON.stringify(Array.from({ length: 100_000 }, (_, i) => `ghost${i}`));
  await raw.publish(`${prefix}:node:${uid[0]}`, `{"f":"${FAKE}","k":"snap","s":1}\n${ids}`);
  await raw.publish(`${prefix}:node:${uid[0]}`, `{"f":"${uid[1]}","k":"snap","s":1}\n${ids}`);
  // A peer whose sequence number shows a gap is asked for a snapshot: it answers with junk.
  const listener = await redis.client();
  await listener.subscribe(
    `${prefix}:node:${FAKE}`,
    () =>
      void raw.publish(`${prefix}:node:${uid[0]}`, `{"f":"${FAKE}","k":"snap","s":5}\n[1,{"x":2}]`),
  );
  await raw.publish(`${prefix}:all`, `{"f":"${FAKE}","k":"h","s":5}`);
  await nodes[0].reported(/: snapshot is not a list of client ids$/, 'report of the junk snapshot');
  assert.equal(await nodes[0].hub.cluster.size(), 2);
  assert.equal(await nodes[0].hub.cluster.has('ghost1'), false);
});

test('with a secret, forged messages of every kind are dropped: no client sees one, presence holds, size() is quick', async (t) => {
  const { prefix, nodes, uid, raw } = await cluster(t, { secret: SECRET, requestTimeout: 5000 });
  const [a, b] = nodes;
  const c = await clientsOn(t, nodes, 1);
  for (const id of ['a0', 'b0'])
    assert.equal((await c[id]!.request('join', { room: 'red' })).data, true);
  assert.equal(await within(a.hub.cluster.size(), 2500, 'size() with two honest nodes'), 2);

  const frame = encodeFrame('forged', 1);
  const forgeries: [string, string][] = [
    [`${prefix}:all`, forge({ f: FAKE, k: 'b' }, frame)],
    [`${prefix}:room:red`, forge({ f: uid[1], k: 'b' }, frame)],
    [`${prefix}:node:${uid[1]}`, forge({ f: uid[0], k: 's', i: 'b0' }, frame)],
    [`${prefix}:node:${uid[1]}`, forge({ f: uid[0], k: 'j', i: 'b0', r: 'vip' })],
    [`${prefix}:all`, forge({ f: uid[1], k: 'bye' })],
    [`${prefix}:all`, forge({ f: FAKE, k: 'h', s: 0 })],
    [`${prefix}:all`, forge({ f: FAKE, k: '+', i: 'ghost', s: 1 })],
    [
      `${prefix}:node:${uid[0]}`,
      forge(
        { f: uid[1], k: 'snap', s: 99 },
        JSON.stringify(Array.from({ length: 100_000 }, (_, i) => `g${i}`)),
      ),
    ],
    [`${prefix}:node:${uid[0]}`, forge({ f: uid[1], k: 'a', q: 1, n: 1000, h: true })],
  ];
  for (const [channel, message] of forgeries) {
    await raw.publish(channel, message); // unsigned
    await raw.publish(channel, sign('another key, not the cluster one', channel, message));
  }
  // A signed message moved to another channel: a room broadcast replayed on :all.
  const capture = await redis.client();
  let capturing!: (message: string) => void;
  const captured = new Promise<string>((resolve) => (capturing = resolve));
  await capture.subscribe(`${prefix}:room:red`, (message) => capturing(message));
  b.hub.broadcast('paint', 1, { rooms: ['red'] });
  await raw.publish(`${prefix}:all`, await within(captured, 5000, 'a signed room message'));

  await expectOnly(a, c, { a0: [push('paint', 1)], b0: [push('paint', 1)] });
  await expectOnly(b, c, {});
  assert.equal(await within(a.hub.cluster.size(), 2500, 'size() after the forgeries'), 2);
  assert.equal(await within(a.hub.cluster.has('ghost'), 2500, 'has(ghost)'), false);
  assert.deepEqual([ups(a), ups(b)], [1, 1], 'no fake node joined');
  assert.equal(
    a.log.lines.filter((l) => l.msg === 'wshub: cluster node left').length,
    0,
    'b was not dropped',
  );
  b.hub.broadcast('vip', 1, { rooms: ['vip'] });
  await expectOnly(b, c, {});
  for (const node of nodes) assert.match(bad(node)[0]!.message, /: bad or missing signature$/);
});

test('with a secret, a signed message replayed on its channel, or stamped ten minutes ago, is dropped', async (t) => {
  const { prefix, nodes, raw } = await cluster(t, { secret: SECRET });
  const [a, b] = nodes;
  const c = await clientsOn(t, nodes, 1);
  const capture = await redis.client();
  const captured: string[] = [];
  await capture.subscribe(`${prefix}:all`, (message) => void captured.push(message));
  b.hub.broadcast('pay', 100);
  await expectOnly(b, c, { a0: [push('pay', 100)], b0: [push('pay', 100)] });
  const recorded = captured.find((m) => m.includes('"actioncode":"pay"'))!;
  await raw.publish(`${prefix}:all`, recorded);
  await a.reported(
    /^wshub cluster: dropped a bad message on .+:all: a replayed message$/,
    'report of the replay',
  );
  // What a recording from ten minutes ago would look like, signed with the right key.
  const old = forge({ f: FAKE, k: 'b', c: 1, w: Date.now() - 600_000 }, encodeFrame('old', 1));
  await raw.publish(`${prefix}:all`, sign(SECRET, `${prefix}:all`, old));
  await expectOnly(b, c, {});
  assert.equal(bad(a).length, 1, 'reported once per 10 s');
  assert.match(
    bad(b)[0]!.message,
    /: stamped \d+ ms from this node's clock \(a replay, or clocks out of sync\)$/,
  );
});

test('the ACL in SECURITY.md confines a user to its prefix: the cluster works under it, a co-tenant cannot publish there', async (t) => {
  const admin = await redis.client();
  const prefix = `acl${nanoid(8)}`;
  // As in SECURITY.md, with this test's prefix and passwords.
  await admin.sendCommand([
    'ACL',
    'SETUSER',
    'wshub',
    'reset',
    'on',
    '>hub-pass',
    'resetchannels',
    `&${prefix}:*`,
    '-@all',
    '+publish',
    '+subscribe',
    '+unsubscribe',
    '+spublish',
    '+ssubscribe',
    '+sunsubscribe',
    '+ping',
  ]);
  await admin.sendCommand([
    'ACL',
    'SETUSER',
    'app',
    'reset',
    'on',
    '>app-pass',
    'resetchannels',
    '&app:*',
    '+@all',
    '-@dangerous',
    '~app:*',
  ]);
  t.after(() => admin.sendCommand(['ACL', 'DELUSER', 'wshub', 'app']));

  const user = { username: 'wshub', password: 'hub-pass' };
  const nodes = await startCluster(t, { ...redis, client: () => redis.client(user) }, 2, {
    prefix,
  });
  const c = await clientsOn(t, nodes, 1);
  nodes[0]!.hub.broadcast('hello', 1);
  await expectOnly(nodes[0]!, c, { a0: [push('hello', 1)], b0: [push('hello', 1)] });
  assert.equal(await nodes[1]!.hub.cluster.size(), 2);

  const app = await redis.client({ username: 'app', password: 'app-pass' });
  await assert.rejects(app.publish(`${prefix}:all`, `{"f":"${FAKE}","k":"bye"}`), /NOPERM/);
  await assert.rejects(
    app.subscribe(`${prefix}:all`, () => {}),
    /NOPERM/,
  );
  const hub = await redis.client(user);
  await assert.rejects(hub.publish('app:all', 'x'), /NOPERM/);
  await assert.rejects(hub.get('k'), /NOPERM/);
});
