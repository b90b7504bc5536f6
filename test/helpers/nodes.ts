// What the cluster test files share: a node's log as events, clients named by node, and the
// "exactly these frames, then the marker" check that proves exactly-once delivery.
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { nanoid } from 'nanoid';
import { connect, type Reply, type TestClient, push } from './client.ts';
import { within } from './wait.ts';
import type { Started } from './hub.ts';
import type { Manager } from '../../src/index.ts';

/** Tests that drive nodes compare pushes too. */
export { push } from './client.ts';

/** Log lines of one node, as events: the adapter's presence changes are observable without polling. */
export class Log extends EventEmitter {
  readonly lines: { msg: string; node?: string }[] = [];
  readonly logger = {
    info: (o: { node?: string }, msg: string) => this.#line(o, msg),
    warn: (o: { node?: string }, msg: string) => this.#line(o, msg),
  };
  #line(o: { node?: string }, msg: string): void {
    this.lines.push({ msg, ...(o?.node ? { node: o.node } : {}) });
    this.emit(msg, o?.node);
  }
  /** Resolves once `msg` has been logged `n` times. */
  async count(msg: string, n: number): Promise<void> {
    while (this.lines.filter((l) => l.msg === msg).length < n) await once(this, msg);
  }
}

export interface HubNode extends Started<undefined> {
  log: Log;
  errors: Error[];
}

/** Actions the cluster tests drive: join a room, echo (for client_ids / is_broadcast fan-out). */
export const actions = {
  join(data: { room: string }, ctx: { hub: Manager<undefined>; client: { id: string } }) {
    return ctx.hub.join(ctx.client.id, data.room);
  },
  echo(data: unknown) {
    return data;
  },
};

/** Clients `<letter><i>` on each node: a0, a1 on the first, b0, b1 on the second… */
export async function clientsOn(
  t: TestContext,
  nodes: Started<undefined>[],
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
 * Every client's next frames are exactly `expected[id]` (default: nothing), then markers sent by
 * `from`, the node that published what is checked. With sharded pub/sub one publisher's order holds
 * per channel only, so there is a marker on every kind of channel: one broadcast to all, one `send`
 * to each client (its node's channel), one broadcast per room in `rooms[id]` (the rooms each client
 * is in). A client is done when every marker meant for it has arrived. With `ordered: false` the
 * frames are compared as a multiset: a room message and a direct one may cross on two shards.
 */
export async function expectOnly(
  from: Started<undefined>,
  clients: Record<string, TestClient>,
  expected: Record<string, Reply[]>,
  rooms: Record<string, string[]> = {},
  { ordered = true } = {},
): Promise<void> {
  const m = nanoid();
  from.hub.broadcast('marker', `${m}:all`);
  for (const id of Object.keys(clients)) from.hub.send(id, 'marker', `${m}:to`);
  for (const room of new Set(Object.values(rooms).flat()))
    from.hub.broadcast('marker', `${m}:room:${room}`, { rooms: [room] });
  for (const [id, client] of Object.entries(clients)) {
    const waiting = new Set([
      `${m}:all`,
      `${m}:to`,
      ...(rooms[id] ?? []).map((room) => `${m}:room:${room}`),
    ]);
    const got: Reply[] = [];
    while (waiting.size > 0) {
      const frame = await client.next(`${id}: frames up to the markers ${[...waiting].join(', ')}`);
      if (
        frame.actioncode === 'marker' &&
        typeof frame.data === 'string' &&
        frame.data.startsWith(m)
      ) {
        assert.ok(
          waiting.delete(frame.data),
          `${id} got marker ${frame.data} twice or not meant for it`,
        );
        continue;
      }
      got.push(frame);
    }
    const sort = (frames: Reply[]) =>
      ordered
        ? frames
        : frames.toSorted((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1));
    assert.deepEqual(sort(got), sort(expected[id] ?? []), `frames to ${id}`);
  }
}

/** Arrivals of one actioncode's sequence numbers at one client, with their times. */
export class Arrivals extends EventEmitter {
  readonly got: { n: number; at: number }[] = [];
  constructor(client: TestClient, actioncode: string) {
    super();
    client.ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { actioncode: string; data: number };
      if (frame.actioncode !== actioncode) return;
      this.got.push({ n: frame.data, at: performance.now() });
      this.emit('n', frame.data);
    });
  }
  /** Resolves the arrival time of the first number satisfying `pred` (already arrived or not). */
  async first(pred: (n: number) => boolean, ms: number, what: string): Promise<number> {
    const find = () => this.got.find((g) => pred(g.n));
    if (!find()) {
      let on!: (n: number) => void;
      await within(
        new Promise<void>((resolve) => this.on('n', (on = (n) => pred(n) && resolve()))),
        ms,
        what,
      ).finally(() => this.off('n', on));
    }
    return find()!.at;
  }
  /** The longest silence between two arrivals, ms. */
  gap(): number {
    let max = 0;
    for (let i = 1; i < this.got.length; i++)
      max = Math.max(max, this.got[i]!.at - this.got[i - 1]!.at);
    return max;
  }
}
