// Hub nodes on a real redis-server, for the cluster tests: each node's log lines and `error`
// events are kept, so presence changes and reports are observable without polling.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { nanoid } from 'nanoid';
import { startHub, type Started } from './hub.ts';
import { connect, type Reply, type TestClient, push } from './client.ts';
import type { Redis, RedisServer } from './redis.ts';
import { within } from './wait.ts';
import { createRedisAdapter, type RedisAdapterOptions } from '../../src/redis.ts';
import type { Manager } from '../../src/index.ts';

/** Tests that drive nodes compare pushes too. */
export { push } from './client.ts';

/** Log lines of one node, as events. */
export class Log extends EventEmitter {
  readonly lines: { msg: string; node?: string; dropped?: number }[] = [];
  readonly logger = {
    info: (o: { node?: string }, msg: string) => this.#line(o, msg),
    warn: (o: { node?: string; dropped?: number }, msg: string) => this.#line(o, msg),
  };
  #line(o: { node?: string; dropped?: number }, msg: string): void {
    this.lines.push({
      msg,
      ...(o?.node ? { node: o.node } : {}),
      ...(o?.dropped !== undefined ? { dropped: o.dropped } : {}),
    });
    this.emit(msg, o?.node);
  }
  /** Resolves once `msg` has been logged `n` times. */
  async count(msg: string, n: number): Promise<void> {
    while (this.lines.filter((l) => l.msg === msg).length < n) await once(this, msg);
  }
  /** Resolves the first `msg` about `node`, logged before or after the call. */
  async about(msg: string, node: string): Promise<void> {
    while (!this.lines.some((l) => l.msg === msg && l.node === node)) await once(this, msg);
  }
}

export interface Node extends Started<undefined> {
  pub: Redis;
  sub: Redis;
  log: Log;
  errors: Error[];
  /** Resolves the first `error` whose message matches, reported before or after the call. */
  reported(pattern: RegExp, what: string): Promise<Error>;
}

const actions = {
  join(data: { room: string }, ctx: { hub: Manager<undefined>; client: { id: string } }) {
    return ctx.hub.join(ctx.client.id, data.room);
  },
  echo(data: unknown) {
    return data;
  },
};

export type NodeOptions = Partial<Omit<RedisAdapterOptions, 'pub' | 'sub' | 'prefix'>>;

export const HEARTBEAT = 200;

export async function startNode(
  t: TestContext,
  server: RedisServer,
  prefix: string,
  options: NodeOptions = {},
): Promise<Node> {
  const pub = await server.client();
  const sub = await server.client();
  t.after(() => {
    pub.destroy();
    sub.destroy();
  });
  const log = new Log();
  const started = await startHub(t, {
    actions,
    adapter: createRedisAdapter({ pub, sub, prefix, heartbeatInterval: HEARTBEAT, ...options }),
    heartbeat: false,
    clientFanout: true,
    id: (req) => new URL(req.url!, 'http://x').searchParams.get('id') ?? nanoid(),
    logger: log.logger,
  });
  const errors: Error[] = [];
  const events = new EventEmitter();
  started.hub.on('error', (err) => {
    errors.push(err);
    events.emit('reported', err); // not 'error': unlistened, Node's emitter would throw
  });
  const reported = async (pattern: RegExp, what: string): Promise<Error> => {
    const match = () => errors.find((e) => pattern.test(e.message));
    const wait = async () => {
      while (!match()) await once(events, 'reported');
      return match()!;
    };
    return within(wait(), 5000, what);
  };
  return { ...started, pub, sub, log, errors, reported };
}

/** `n` nodes on one prefix, each having seen every other: their cluster channels are subscribed. */
export async function startCluster(
  t: TestContext,
  server: RedisServer,
  n: number,
  options: NodeOptions & { prefix?: string } = {},
): Promise<Node[]> {
  const { prefix = nanoid(), ...rest } = options;
  const nodes: Node[] = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(t, server, prefix, rest));
  await within(
    Promise.all(nodes.map((node) => node.log.count('wshub: cluster node up', n - 1))),
    5000,
    'cluster formed',
  );
  return nodes;
}

/** Clients `<letter><i>` on each node: a0, a1 on the first, b0, b1 on the second… */
export async function clientsOn(
  t: TestContext,
  nodes: Node[],
  perNode: number,
): Promise<Record<string, TestClient>> {
  const clients: Record<string, TestClient> = {};
  for (const [n, node] of nodes.entries()) {
    for (let i = 0; i < perNode; i++) {
      const id = `${String.fromCharCode(97 + n)}${i}`;
      clients[id] = await connect(t, `${node.url}?id=${id}`);
    }
  }
  return clients;
}

/**
 * Every client's next frames are exactly `expected[id]` (default: nothing), then a marker broadcast
 * by `from`, the node that published what is checked: one publisher's messages arrive in order.
 */
export async function expectOnly(
  from: Node,
  clients: Record<string, TestClient>,
  expected: Record<string, Reply[]>,
): Promise<void> {
  const marker = push('marker', nanoid());
  from.hub.broadcast(marker.actioncode, marker.data);
  await expectUpTo(clients, marker, expected);
}

/** Every client's next frames are exactly `expected[id]` (default: nothing), then `marker`. */
export async function expectUpTo(
  clients: Record<string, TestClient>,
  marker: Reply,
  expected: Record<string, Reply[]> = {},
): Promise<void> {
  for (const [id, client] of Object.entries(clients)) {
    const got: Reply[] = [];
    for (;;) {
      const frame = await client.next(`${id}: frames up to the marker`);
      if (frame.actioncode === marker.actioncode && frame.data === marker.data) break;
      got.push(frame);
    }
    assert.deepEqual(got, expected[id] ?? [], `frames to ${id}`);
  }
}
