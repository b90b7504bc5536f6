// Cluster semantics over an in-process bus (socket.io-adapter's way of testing its ClusterAdapter):
// routing by presence, resync after a lost message, expiry of a silent node, goodbye on close.
// The bus keeps Redis's ordering (one FIFO for everything) and lets a test drop or mute traffic.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { nanoid } from 'nanoid';
import { startHub, assertNoLeaks, type Started } from './helpers/hub.ts';
import { connect, type TestClient } from './helpers/client.ts';
import { within } from './helpers/wait.ts';
import { trapCrashes } from './helpers/crash.ts';
import { ClusterAdapter } from '../src/cluster/cluster-adapter.ts';
import type { AdapterHost } from '../src/index.ts';

assertNoLeaks();

const HEARTBEAT = 50;

interface Sent {
  channel: string;
  message: string;
}

class Bus extends EventEmitter {
  readonly subs = new Map<string, Set<BusNode>>();
  readonly sent: Sent[] = [];
  /** Return false to lose a message (a network hiccup the broker does not report). */
  keep: (s: Sent) => boolean = () => true;
  #queue: Sent[] = [];

  publish(channel: string, message: string): void {
    const s = { channel, message };
    this.sent.push(s);
    if (!this.keep(s)) return;
    if (this.#queue.push(s) === 1) setImmediate(() => this.#drain());
  }

  #drain(): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const s of queue) {
      for (const node of this.subs.get(s.channel) ?? []) node.deliver(s.message, s.channel);
      this.emit('delivered', s);
    }
  }
}

class BusNode extends ClusterAdapter {
  /** A muted node's messages vanish: a partition, or a process frozen by kill -STOP. */
  muted = false;
  /** A broker client that fails: room subscriptions reject, unsubscribing throws, publishes reject. */
  faulty = false;
  constructor(
    host: AdapterHost,
    readonly bus: Bus,
  ) {
    // A question times out well before a silent node can expire (>= 250 ms after its last word).
    super(host, {
      prefix: 'bus',
      heartbeatInterval: HEARTBEAT,
      heartbeatTimeout: 6 * HEARTBEAT,
      requestTimeout: 50,
    });
    this.start();
  }
  protected publish(channel: string, message: string): Promise<void> {
    if (!this.muted) this.bus.publish(channel, message);
    return this.faulty ? Promise.reject(new Error('publish failed')) : Promise.resolve();
  }
  protected subscribe(channel: string): Promise<void> {
    if (this.faulty && channel.includes(':room:'))
      return Promise.reject(new Error(`subscribe ${channel} failed`));
    let set = this.bus.subs.get(channel);
    if (!set) this.bus.subs.set(channel, (set = new Set()));
    set.add(this);
    return Promise.resolve();
  }
  protected unsubscribe(channel: string): Promise<void> {
    if (this.faulty) throw new Error(`unsubscribe ${channel} failed`);
    this.bus.subs.get(channel)?.delete(this);
    return Promise.resolve();
  }
  deliver(message: string, channel: string): void {
    if (!this.muted) this.receive(message, channel);
  }
}

interface Node extends Started<undefined> {
  adapter: BusNode;
  log: EventEmitter;
  /** peers seen so far ('cluster node up' lines) */
  ups: () => number;
}

async function startNodes(t: TestContext, n: number): Promise<{ bus: Bus; nodes: Node[] }> {
  const bus = new Bus();
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) {
    let adapter!: BusNode;
    let ups = 0;
    const log = new EventEmitter().on('wshub: cluster node up', () => ups++);
    const started = await startHub(t, {
      adapter: (host) => (adapter = new BusNode(host, bus)),
      heartbeat: false,
      id: (req) => new URL(req.url!, 'http://x').searchParams.get('id') ?? nanoid(),
      logger: {
        info: (o: { node: string }, msg: string) => log.emit(msg, o.node),
        warn: (o: { node: string }, msg: string) => log.emit(msg, o.node),
      },
    });
    nodes.push({ ...started, adapter, log, ups: () => ups });
  }
  // Hellos go out after subscribing; wait until every node has answered every other's.
  await within(Promise.all(nodes.map((node) => seen(node, n - 1))), 5000, 'nodes see each other');
  return { bus, nodes };
}

async function seen(node: Node, peers: number): Promise<void> {
  while (node.ups() < peers) await once(node.log, 'wshub: cluster node up');
}

const delivered = (bus: Bus, pred: (s: Sent) => boolean, what: string): Promise<void> =>
  within(
    new Promise<void>((resolve) => {
      const on = (s: Sent) => {
        if (!pred(s)) return;
        bus.off('delivered', on);
        resolve();
      };
      bus.on('delivered', on);
    }),
    5000,
    what,
  );

const lastChannel = (bus: Bus, kind: string): string =>
  bus.sent.filter((s) => s.message.includes(`"k":"${kind}"`)).at(-1)!.channel;

async function dm(client: TestClient): Promise<unknown> {
  return (await client.next('dm')).data;
}

test('a send goes to the node holding the id; while the id is unknown it goes to every node', async (t) => {
  const { bus, nodes } = await startNodes(t, 3);
  const [a, , c] = nodes as [Node, Node, Node];
  const x = await connect(t, `${c.url}?id=x`);
  assert.equal(await a.hub.cluster.size(), 1);
  a.hub.send('x', 'dm', 1);
  assert.equal(lastChannel(bus, 's'), `bus:node:${c.adapter.uid}`);
  assert.equal(await dm(x), 1);

  // Lose c's announcement of y: a routes y's messages to every node, and still reaches y.
  bus.keep = (s) => !(s.message.includes('"k":"+"') && s.message.includes('"i":"y"'));
  const y = await connect(t, `${c.url}?id=y`);
  a.hub.send('y', 'dm', 2);
  assert.equal(lastChannel(bus, 's'), 'bus:all');
  assert.equal(await dm(y), 2);

  // c's next heartbeat shows a a gap in c's sequence: a asks for a snapshot and routes directly again.
  bus.keep = () => true;
  await delivered(
    bus,
    (s) => s.channel === `bus:node:${a.adapter.uid}` && s.message.includes('"k":"snap"'),
    'snapshot from c to a',
  );
  a.hub.send('y', 'dm', 3);
  assert.equal(lastChannel(bus, 's'), `bus:node:${c.adapter.uid}`);
  assert.equal(await dm(y), 3);
  assert.equal(await a.hub.cluster.has('y'), true);
});

test('a silent node counts with its last announcements until heartbeatTimeout, then is dropped, and rejoins', async (t) => {
  const { nodes } = await startNodes(t, 2);
  const [a, b] = nodes as [Node, Node];
  const clients = [await connect(t, `${b.url}?id=b0`), await connect(t, `${b.url}?id=b1`)];
  assert.equal(await a.hub.cluster.size(), 2);

  b.adapter.muted = true;
  const expired = once(a.log, 'wshub: cluster node expired');
  assert.equal(
    await a.hub.cluster.size(),
    2,
    'no answer within requestTimeout: the directory counts',
  );
  const [uid] = await within(expired, 5000, 'expiry of the silent node');
  assert.equal(uid, b.adapter.uid);
  assert.equal(await a.hub.cluster.size(), 0);
  assert.equal(await a.hub.cluster.has('b0'), false);
  assert.deepEqual(await clients[0]!.barrier(), [], 'b keeps serving its own clients');

  const back = once(a.log, 'wshub: cluster node up');
  b.adapter.muted = false;
  await within(back, 5000, 'the node heard again');
  assert.equal(await a.hub.cluster.size(), 2);
  assert.equal(await a.hub.cluster.has('b1'), true);
});

test('hub.close() says goodbye: other nodes drop the node at once', async (t) => {
  const { bus, nodes } = await startNodes(t, 2);
  const [a, b] = nodes as [Node, Node];
  await connect(t, `${b.url}?id=b0`);
  assert.equal(await a.hub.cluster.size(), 1);
  const left = once(a.log, 'wshub: cluster node left');
  await within(b.hub.close({ timeout: 100 }), 5000, 'b closes');
  await within(left, 5000, 'goodbye from b');
  assert.equal(await a.hub.cluster.size(), 0);
  assert.deepEqual(
    [...bus.subs].filter(([, set]) => set.has(b.adapter)).map(([channel]) => channel),
    [],
    'b unsubscribed everything',
  );
});

test('a broker client that rejects and throws is reported, never an unhandled rejection or a throw into the hub', async (t) => {
  const crashes = trapCrashes(t);
  const { nodes } = await startNodes(t, 2);
  const [a, b] = nodes as [Node, Node];
  const errors: Error[] = [];
  a.hub.on('error', (err) => errors.push(err));
  a.adapter.faulty = true;
  await connect(t, `${a.url}?id=a0`);
  assert.equal(a.hub.join('a0', 'red'), true);
  assert.equal(a.hub.leave('a0', 'red'), true);
  a.hub.broadcast('news', 1);
  assert.equal(await a.hub.cluster.size(), 1);
  assert.deepEqual(
    errors.map((e) => e.message),
    ['subscribe bus:room:red failed', 'unsubscribe bus:room:red failed'],
  );
  await within(b.hub.close({ timeout: 100 }), 5000, 'b closes');
  await within(a.hub.close({ timeout: 100 }), 5000, 'a closes despite failing unsubscribes');
  assert.deepEqual(crashes, []);
});
