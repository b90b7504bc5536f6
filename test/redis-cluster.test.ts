import { test, before, after } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { nanoid } from 'nanoid';
import { createCluster } from 'redis';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import type { TestClient } from './helpers/client.ts';
import { startRedisCluster, type RedisCluster } from './helpers/redis-cluster.ts';
import {
  Arrivals,
  Log,
  actions,
  clientsOn,
  expectOnly,
  push,
  type HubNode,
} from './helpers/nodes.ts';
import { within } from './helpers/wait.ts';
import { createRedisAdapter } from '../src/redis.ts';

// Any unhandled rejection in this file (adapter, broker client, test) fails it.
const rejections: unknown[] = [];
const trap = (reason: unknown): void => void rejections.push(reason);
process.on('unhandledRejection', trap);
after(() => {
  process.off('unhandledRejection', trap);
  assert.deepEqual(rejections, [], 'unhandled rejections');
});

let cluster: RedisCluster;
before(async () => {
  const started = performance.now();
  cluster = await startRedisCluster();
  console.log(`# redis cluster of 6 up in ${Math.round(performance.now() - started)} ms`);
});
after(() => cluster?.close());
assertNoLeaks();

const HEARTBEAT = 200;

type Cluster = ReturnType<typeof createCluster>;
/** node-redis cluster options a test may add (how fast it notices a dead node). */
type ClientOptions = Omit<Parameters<typeof createCluster>[0], 'rootNodes'>;

interface Node extends HubNode {
  pub: Cluster;
  sub: Cluster;
  prefix: string;
}

async function connectCluster(t: TestContext, options: ClientOptions): Promise<Cluster> {
  const client: Cluster = createCluster({ ...options, rootNodes: cluster.rootNodes });
  client.on('error', () => {}); // the adapter reports; tests assert on its `error` events
  t.after(() => client.destroy());
  await within(client.connect(), 5000, 'cluster client connect');
  return client;
}

async function startNode(t: TestContext, prefix: string, options: ClientOptions): Promise<Node> {
  const pub = await connectCluster(t, options);
  const sub = await connectCluster(t, options);
  const log = new Log();
  const started = await startHub(t, {
    actions,
    adapter: createRedisAdapter({ pub, sub, prefix, heartbeatInterval: HEARTBEAT, sharded: true }),
    heartbeat: false,
    clientFanout: true,
    id: (req) => new URL(req.url!, 'http://x').searchParams.get('id') ?? nanoid(),
    logger: log.logger,
  });
  const errors: Error[] = [];
  started.hub.on('error', (err) => {
    errors.push(err);
    log.lines.push({ msg: err.message }); // one timeline with the recoveries logged
  });
  return { ...started, pub, sub, prefix, log, errors };
}

/** `n` nodes on one prefix, each having seen every other: their cluster channels are subscribed. */
async function startNodes(
  t: TestContext,
  n: number,
  options: ClientOptions = {},
  prefix = nanoid(),
): Promise<Node[]> {
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(t, prefix, options));
  await within(
    Promise.all(nodes.map((node) => node.log.count('wshub: cluster node up', n - 1))),
    5000,
    'cluster formed',
  );
  return nodes;
}

/** `perMaster` room names for each master, found by the slot of their channel `<prefix>:room:<name>`. */
async function roomsOnEveryMaster(prefix: string, perMaster: number): Promise<Map<string, number>> {
  const masters = await cluster.masters();
  const rooms = new Map<string, number>();
  const count = new Map(masters.map((m) => [m, 0]));
  for (let i = 0; [...count.values()].some((c) => c < perMaster); i++) {
    const master = await cluster.masterOf(await cluster.slot(`${prefix}:room:r${i}`));
    if (count.get(master)! >= perMaster) continue;
    count.set(master, count.get(master)! + 1);
    rooms.set(`r${i}`, master);
  }
  return rooms;
}

test('every delivery kind reaches every node exactly once over sharded pub/sub on a Redis Cluster', async (t) => {
  const nodes = await startNodes(t, 3);
  const [a, b, cc] = nodes as [Node, Node, Node];
  const c = await clientsOn(t, nodes, 2);
  assert.equal(await a.hub.cluster.size(), 6);

  // broadcast to all, with and without except
  assert.equal(b.hub.broadcast('news', 1), 2);
  await expectOnly(b, c, Object.fromEntries(Object.keys(c).map((id) => [id, [push('news', 1)]])));
  a.hub.broadcast('news', 2, { except: ['b0', 'c1', 'a0'] });
  await expectOnly(a, c, { a1: [push('news', 2)], b1: [push('news', 2)], c0: [push('news', 2)] });

  // send to an id on another node, to a local id, to nobody
  assert.equal(a.hub.send('c1', 'dm', 'hi'), false);
  assert.equal(a.hub.send('a1', 'dm', 'local'), true);
  assert.equal(b.hub.send('nobody', 'dm', 'lost'), false);
  await expectOnly(a, c, { c1: [push('dm', 'hi')], a1: [push('dm', 'local')] });

  // rooms over shards: one room per master, joined locally and remotely
  const rooms = [...(await roomsOnEveryMaster(a.prefix, 1)).keys()];
  assert.equal(rooms.length, 3);
  const [red, green, blue] = rooms as [string, string, string];
  assert.equal((await c.a0!.request('join', { room: red })).data, true);
  assert.equal(a.hub.join('b0', red), false); // remote join, forwarded to node b
  assert.equal(cc.hub.join('c0', green), true);
  assert.equal(b.hub.join('c1', blue), false);
  assert.equal(a.hub.join('b1', blue), false);
  // Barrier: a question is answered once the asker's forwarded joins are subscribed on every node.
  assert.equal(await a.hub.cluster.size(), 6);
  assert.equal(await b.hub.cluster.size(), 6);
  assert.deepEqual(
    [
      await cluster.shardSubscribers(`${a.prefix}:room:${red}`),
      await cluster.shardSubscribers(`${a.prefix}:room:${green}`),
      await cluster.shardSubscribers(`${a.prefix}:room:${blue}`),
    ],
    [2, 1, 2],
  );
  const inRooms = { a0: [red], b0: [red], c0: [green], c1: [blue], b1: [blue] };
  cc.hub.broadcast('paint', 'all rooms', { rooms, except: ['b1'] });
  await expectOnly(
    cc,
    c,
    {
      a0: [push('paint', 'all rooms')],
      b0: [push('paint', 'all rooms')],
      c0: [push('paint', 'all rooms')],
      c1: [push('paint', 'all rooms')],
    },
    inRooms,
  );

  // to + rooms: one copy per client even where a client is both named and a member
  a.hub.broadcast('mix', 1, { to: ['c1', 'b0', 'a1'], rooms: [blue] });
  const mix = [push('mix', 1)];
  await expectOnly(a, c, { a1: mix, b0: mix, b1: mix, c1: mix }, inRooms);

  // remote leave: the node unsubscribes once its last member leaves
  assert.equal(a.hub.leave('b1', blue), false);
  assert.equal(await a.hub.cluster.size(), 6);
  assert.equal(await cluster.shardSubscribers(`${a.prefix}:room:${blue}`), 1);
  b.hub.broadcast('paint', 'blue', { rooms: [blue] });
  await expectOnly(b, c, { c1: [push('paint', 'blue')] }, { ...inRooms, b1: [] });

  // client_ids and is_broadcast from a client
  // a0's second request (after its join), b1's first: the sender's reply keeps its id, copies are pushes
  assert.deepEqual(await c.a0!.request('echo', 'x', { client_ids: ['b0', 'c1', 'a0'] }), {
    ...push('echo', 'x'),
    id: 2,
  });
  await expectOnly(a, c, { b0: [push('echo', 'x')], c1: [push('echo', 'x')] });
  assert.deepEqual(await c.b1!.request('echo', 'y', { is_broadcast: true }), {
    ...push('echo', 'y'),
    id: 1,
  });
  await expectOnly(
    b,
    c,
    Object.fromEntries(['a0', 'a1', 'b0', 'c0', 'c1'].map((id) => [id, [push('echo', 'y')]])),
  );

  assert.deepEqual(
    nodes.flatMap((n) => n.errors),
    [],
  );
});

test('presence is cluster-wide on a Redis Cluster: size() and has() see every node', async (t) => {
  const nodes = await startNodes(t, 3);
  const [a, b, cc] = nodes as [Node, Node, Node];
  const c = await clientsOn(t, nodes, 2);
  assert.equal(await a.hub.cluster.size(), 6);
  assert.equal(await b.hub.cluster.has('c1'), true);
  assert.equal(await b.hub.cluster.has('b0'), true);
  assert.equal(await cc.hub.cluster.has('nobody'), false);
  c.a1!.close();
  await within(
    new Promise((resolve) => a.hub.once('disconnect', resolve)),
    5000,
    'a1 disconnect on node a',
  );
  assert.equal(await cc.hub.cluster.size(), 5);
  assert.equal(await b.hub.cluster.has('a1'), false);
  assert.deepEqual(
    nodes.flatMap((n) => n.errors),
    [],
  );
});

// --- topology changes in the middle of a stream ---

/**
 * TODO(#14): one publisher's order on one channel also through a slot move or failover. Not yet:
 * node-redis answers a MOVED publish by awaiting a topology rediscovery and only then retrying it
 * (@redis/client cluster/index.js `_execute`), while publishes issued meanwhile are already routed
 * by the refilled slot table (cluster/cluster-slots.js `#discover`) and overtake it. Needs
 * per-channel sequence numbers in cluster.ts (or a fix in node-redis). Flip to run the check.
 */
const ORDER_THROUGH_TOPOLOGY_CHANGES = false;

interface Stage {
  nodes: [Node, Node, Node];
  clients: Record<string, TestClient>;
  /** two rooms per master; b0 and c0 are members of all */
  rooms: Map<string, number>;
  /** the streamed room, its channel's slot, the master owning it: it has a live replica and also holds `<prefix>:all` */
  room: string;
  slot: number;
  master: number;
}

interface Outcome {
  what: string;
  /** from the start of the disruption until the cluster agreed on the new topology, ms */
  settled: number;
  /** from the start of the disruption to the stream's first message after its longest silence, ms */
  resumed: number;
  /** the longest silence of a room on a master the disruption did not touch, ms */
  control: number;
  /** copies the two members did not get, of those published */
  lost: number;
  total: number;
  /** messages that arrived after a later one from the same publisher */
  reordered: number;
}

/**
 * Three nodes with two clients each; b0 and c0 are members of two rooms per master. The prefix is
 * chosen so that `<prefix>:all` (heartbeats, presence, questions) is on a master with a live
 * replica. Node a streams numbered broadcasts every 5 ms to a room on that same master, and to a
 * control room on another master; `disrupt` changes the topology in the middle and resolves once
 * the cluster has settled. Checks that the stream resumes by itself within `bound(settled)` ms, that
 * each member gets each number at most once, that nothing published after it is back is lost, and
 * that afterwards every room, from every node, reaches both members exactly once and presence is
 * whole.
 */
async function streamThrough(
  t: TestContext,
  disrupt: (stage: Stage) => Promise<string>,
  bound: (settled: number) => number,
  options: ClientOptions = {},
): Promise<Outcome & { stage: Stage }> {
  const view = await cluster.view();
  const withReplica = (port: number) =>
    view.some(
      (v) => v.master === view.find((m) => m.port === port)!.id && !v.flags.includes('fail'),
    );
  let prefix = nanoid();
  while (!withReplica(await cluster.masterOf(await cluster.slot(`${prefix}:all`))))
    prefix = nanoid();
  const nodes = (await startNodes(t, 3, options, prefix)) as [Node, Node, Node];
  const [a, b, cc] = nodes;
  const clients = await clientsOn(t, nodes, 2);
  const rooms = await roomsOnEveryMaster(prefix, 2);
  for (const room of rooms.keys()) {
    assert.equal(b.hub.join('b0', room), true);
    assert.equal(cc.hub.join('c0', room), true);
  }
  assert.equal(await b.hub.cluster.size(), 6);
  assert.equal(await cc.hub.cluster.size(), 6);
  const master = await cluster.masterOf(await cluster.slot(`${prefix}:all`));
  const room = [...rooms].find(([, m]) => m === master)![0];
  const control = [...rooms].find(([, m]) => m !== master)![0];
  const stage: Stage = {
    nodes,
    clients,
    rooms,
    room,
    slot: await cluster.slot(`${prefix}:room:${room}`),
    master,
  };
  const members = [new Arrivals(clients.b0!, 'seq'), new Arrivals(clients.c0!, 'seq')];
  const controls = [new Arrivals(clients.b0!, 'ctl'), new Arrivals(clients.c0!, 'ctl')];

  let n = 0;
  const timer = setInterval(() => {
    a.hub.broadcast('ctl', n, { rooms: [control] });
    a.hub.broadcast('seq', n++, { rooms: [room] });
  }, 5);
  t.after(() => clearInterval(timer));
  for (const m of [...members, ...controls])
    await m.first((v) => v >= 20, 5000, 'the stream before the disruption');

  const started = performance.now();
  const what = await disrupt(stage);
  const settled = performance.now() - started;
  const after = n;
  // Resumes by itself: nothing below pokes the nodes or their clients.
  const limit = bound(settled);
  const resumedAt = await Promise.all(
    members.map((m) => m.first((v) => v >= after, limit, `the stream after ${what}`)),
  );
  await Promise.all(
    controls.map((m) => m.first((v) => v >= after, limit, `the control room after ${what}`)),
  );
  const end = n + 50;
  for (const m of [...members, ...controls])
    await m.first((v) => v >= end, 5000, 'fifty more numbers after the recovery');
  clearInterval(timer);
  const last = n - 1;
  for (const m of [...members, ...controls])
    await m.first((v) => v === last, 5000, 'the last number');

  let lost = 0;
  let reordered = 0;
  for (const m of members) {
    const got = m.got.map((g) => g.n);
    assert.equal(new Set(got).size, got.length, 'each number at most once');
    reordered += got.filter((v, i) => i > 0 && v < got[i - 1]!).length;
    if (ORDER_THROUGH_TOPOLOGY_CHANGES) {
      const bad = got.findIndex((v, i) => i > 0 && v < got[i - 1]!);
      assert.equal(
        bad,
        -1,
        `in publish order: ${got.slice(Math.max(0, bad - 5), bad + 5).join(' ')}`,
      );
    }
    // Once the stream is back, nothing published is lost.
    const tail = got.filter((v) => v >= after).sort((x, y) => x - y);
    assert.deepEqual(
      tail,
      Array.from({ length: last - tail[0]! + 1 }, (_, i) => tail[0]! + i),
      'nothing lost once back',
    );
    lost += last + 1 - got.length;
  }
  /** The end of the longest silence that ends after the disruption started. */
  const gapEnd = (m: Arrivals) => {
    let [at, max] = [started, 0];
    for (let i = 1; i < m.got.length; i++) {
      const gap = m.got[i]!.at - m.got[i - 1]!.at;
      if (m.got[i]!.at > started && gap > max) [max, at] = [gap, m.got[i]!.at];
    }
    return at;
  };
  const outcome: Outcome = {
    what,
    settled: Math.round(settled),
    resumed: Math.round(Math.max(...members.map(gapEnd), ...resumedAt) - started),
    control: Math.round(Math.max(...controls.map((m) => m.gap()))),
    lost,
    total: 2 * (last + 1),
    reordered,
  };
  t.diagnostic(
    `${what}: settled ${outcome.settled} ms, stream back after ${outcome.resumed} ms (bound ${Math.round(limit)}), ` +
      `control room silent for ${outcome.control} ms at most; ${lost} of ${outcome.total} copies lost, ${reordered} out of order`,
  );
  for (const m of [clients.b0!, clients.c0!]) {
    for (const frame of await m.barrier())
      assert.ok(frame.actioncode === 'seq' || frame.actioncode === 'ctl', frame.actioncode);
  }

  // No subscription silently lost: every room, from every node, reaches both members once.
  const names = [...rooms.keys()];
  for (const from of nodes) {
    for (const name of names) from.hub.broadcast('check', name, { rooms: [name] });
    const each = names.map((name) => push('check', name));
    await expectOnly(
      from,
      clients,
      { b0: each, c0: each },
      { b0: names, c0: names },
      { ordered: false },
    );
  }
  assert.equal(await a.hub.cluster.size(), 6);
  assert.equal(await a.hub.cluster.has('c1'), true);
  return { ...outcome, stage };
}

/** A failover or slot move is announced by the old owner (SUNSUBSCRIBE pushes) and followed at once. */
const MOVE_BOUND = 2000;

test('CLUSTER FAILOVER on the replica of a room channel mid-stream: delivery resumes by itself and every room still delivers', async (t) => {
  const { stage } = await streamThrough(
    t,
    async ({ slot }) => {
      const { demoted, promoted } = await cluster.failover(slot);
      return `CLUSTER FAILOVER (${demoted} → ${promoted})`;
    },
    (settled) => settled + MOVE_BOUND,
  );
  assert.deepEqual(
    stage.nodes.flatMap((n) => n.errors),
    [],
  );
});

test('a room channel slot migrated to another master mid-stream: subscriptions follow', async (t) => {
  const { stage } = await streamThrough(
    t,
    async ({ slot, master }) => {
      const to = (await cluster.masters()).find((p) => p !== master)!;
      await cluster.migrate(slot, to);
      return `slot ${slot} migrated (${master} → ${to})`;
    },
    (settled) => settled + MOVE_BOUND,
  );
  assert.deepEqual(
    stage.nodes.flatMap((n) => n.errors),
    [],
  );
});

/**
 * How long node-redis (v6 defaults) takes to notice a dead master: its node clients reconnect with
 * a backoff of up to 2000 ms + 200 ms jitter (client/socket.js defaultReconnectStrategy), and the
 * cluster client rediscovers the topology at the first reconnect attempt REFRESH ms or more after
 * the first one, then again REFRESH ms or more after each refresh that found nothing new
 * (cluster/cluster-reconnection-tracker.js). Refreshes are thus REFRESH to REFRESH + BACKOFF
 * apart: a failover done within REFRESH is noticed REFRESH to REFRESH + BACKOFF after the kill, a
 * slower one at most REFRESH + BACKOFF after it completes.
 */
const REFRESH = 5000;
const BACKOFF = 2200;
/** Timer lateness and the new subscriptions' round trips on a loaded machine. */
const SLACK = 1500;

/**
 * Kills the stream's master (also the master of `<prefix>:all`: heartbeats and presence stop too);
 * while its shard has no master, b1 and c1 join new rooms, one on that shard and one elsewhere.
 */
async function killMidStream(
  t: TestContext,
  refresh: number,
  backoff: number,
  options: ClientOptions,
): Promise<void> {
  let joined: { dead: string; live: string } | undefined;
  const { stage } = await streamThrough(
    t,
    async ({ nodes, slot, master }) => {
      const prefix = nodes[0].prefix;
      const dead = await roomOn(prefix, (m) => m === master);
      const live = await roomOn(prefix, (m) => m !== master);
      const promoted = await cluster.replicaOf(master);
      await cluster.kill(master);
      // Local joins on b and c, each needing a new SSUBSCRIBE while the cluster is down.
      assert.equal(nodes[1].hub.join('b1', dead), true);
      assert.equal(nodes[2].hub.join('c1', live), true);
      joined = { dead, live };
      await cluster.settled(15_000, slot, promoted);
      return `kill -9 of master ${master} (replica ${promoted} promoted)`;
    },
    (settled) => (settled <= refresh ? refresh : settled + refresh) + backoff + SLACK,
    options,
  );
  const [a, b] = stage.nodes;
  // Every node was connected to the dead master (node-redis connects to all masters): each reports
  // the outage, and the last word on each is the recovery, so the next outage is reported again.
  for (const node of stage.nodes) {
    const states = node.log.lines
      .filter((l) => /^wshub: redis (unreachable|reachable again)/.test(l.msg))
      .map((l) => l.msg);
    assert.equal(states[0], 'wshub: redis unreachable; delivering locally only');
    assert.equal(
      states.at(-1),
      'wshub: redis reachable again',
      `outage and recovery on a node: ${states.join(', ')}`,
    );
  }
  // The rooms joined during the outage are subscribed and deliver; the one on the dead shard failed
  // its SSUBSCRIBE (reported) and was subscribed again on the promoted master's 'node-ready'.
  const { dead, live } = joined!;
  assert.equal(await b.hub.cluster.size(), 6);
  assert.deepEqual(
    [
      await cluster.shardSubscribers(`${a.prefix}:room:${dead}`),
      await cluster.shardSubscribers(`${a.prefix}:room:${live}`),
    ],
    [1, 1],
  );
  a.hub.broadcast('late', dead, { rooms: [dead] });
  a.hub.broadcast('late', live, { rooms: [live] });
  await expectOnly(
    a,
    stage.clients,
    { b1: [push('late', dead)], c1: [push('late', live)] },
    { b1: [dead], c1: [live] },
  );
}

/** A room name whose channel `<prefix>:room:<name>` is on a master `which` accepts (by port). */
async function roomOn(prefix: string, which: (master: number) => boolean): Promise<string> {
  for (let i = 0; ; i++) {
    const name = `late${i}`;
    if (which(await cluster.masterOf(await cluster.slot(`${prefix}:room:${name}`)))) return name;
  }
}

test('kill -9 of the master of a room channel mid-stream: delivery resumes by itself within the bound of node-redis defaults', async (t) => {
  await killMidStream(t, REFRESH, BACKOFF, {});
});

test('kill -9 with faster node-redis topology refresh: delivery resumes shortly after the cluster has failed over', async (t) => {
  // The two knobs the bound depends on, as a user would set them.
  const refresh = 500;
  const backoff = 100;
  await killMidStream(t, refresh, backoff, {
    topologyRefreshOnReconnectionAttemptStrategy: refresh,
    defaults: { socket: { reconnectStrategy: () => backoff } },
  });
});
