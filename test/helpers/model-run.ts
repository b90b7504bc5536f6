// The real side of test/model.test.ts: hub nodes on real sockets (and a real Redis), recording
// clients, and the quiescence check that compares them with the model after every command.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type fc from 'fast-check';
import { nanoid } from 'nanoid';
import { WebSocketServer, type WebSocket } from 'ws';
import { createManager, HubError, Code, type Client, type Manager } from '../../src/index.ts';
import { createRedisAdapter } from '../../src/redis.ts';
import { closeServer, listen } from './hub.ts';
import type { Peer } from './peer.ts';
import type { Redis, RedisServer } from './redis.ts';
import { within } from './wait.ts';
import {
  broadcast,
  HIGH_WATER_MARK,
  letGo,
  MAX_PAYLOAD,
  newModel,
  push,
  receive,
  wire,
} from './model.ts';
import type { MClient, Model } from './model.ts';

export const WAIT = 5000;
/** cluster.size() / has() answer in milliseconds; a lost question must fail fast. */
export const ASK = 3000;

/** What the hub reports, as lines comparable with the model's. */
export class Log {
  readonly disconnects: string[] = [];
  readonly drops: string[] = [];
  readonly errors: string[] = [];
  readonly info: string[] = [];
  /** the other nodes this node has logged as up, by cluster uid */
  readonly peers: string[] = [];
  readonly #watchers = new Set<() => void>();
  note(): void {
    for (const watch of this.#watchers) watch();
  }
  until(done: () => boolean, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    let watch!: () => void;
    const reached = new Promise<void>((resolve) => {
      watch = () => done() && resolve();
      this.#watchers.add(watch);
    });
    return within(reached, WAIT, what).finally(() => this.#watchers.delete(watch));
  }
}

export interface Node {
  hub: Manager<undefined>;
  server: Server;
  url: string;
  log: Log;
  redis?: { pub: Redis; sub: Redis };
}

/** A WebSocketServer of its own, whose sockets the test hands to hub.register(). */
export interface Foreign {
  server: Server;
  wss: WebSocketServer;
  url: string;
  /** server-side sockets by the client id in their URL */
  sockets: Map<string, WebSocket>;
  log: Log;
}

export interface Real {
  nodes: Node[];
  peers: Map<string, Peer>;
  /** the Client objects the hubs created, by id */
  objects: Map<string, Client<undefined>>;
  foreign: Foreign | undefined;
  redis: RedisServer | undefined;
  /** two nodes: their channel prefix, each node's cluster uid, and a Redis client of the test's own */
  cluster: { prefix: string; uids: string[]; forger: Redis } | undefined;
  /** what reached the process crash handlers (trapCrashes) */
  caught: unknown[];
  /** what each command of this run resolved to, for the failure message */
  trace: string[];
}

const actions = {
  echo: (data: unknown) => data,
  say(text: unknown, ctx: { hub: Manager<undefined>; client: Client<undefined> }) {
    ctx.hub.broadcast('said', { from: ctx.client.id, text });
    return true;
  },
  shout: { handler: (data: unknown) => data, fanout: true },
  deny() {
    throw new HubError(Code.TokenInvalid, 'token invalid');
  },
  boom() {
    throw new Error('handler failure');
  },
};

const idOf = (url: string | undefined): string =>
  new URL(url ?? '/', 'http://x').searchParams.get('id') ?? '';

async function startNode(
  real: Real,
  policy: Model['policy'],
  redis?: { server: RedisServer; prefix: string },
): Promise<Node> {
  const log = new Log();
  let adapter;
  let clients: Node['redis'];
  if (redis) {
    clients = { pub: await redis.server.client(), sub: await redis.server.client() };
    // No heartbeats or expiry within a run: a lost question times out `within`, never passes silently.
    adapter = createRedisAdapter({
      ...clients,
      prefix: redis.prefix,
      heartbeatInterval: 60_000,
      requestTimeout: 60_000,
    });
  }
  const hub = createManager({
    actions,
    heartbeat: false,
    maxPayload: MAX_PAYLOAD,
    backpressure: { highWaterMark: HIGH_WATER_MARK, policy },
    id: (req) => idOf(req.url),
    ...(adapter && { adapter }),
    logger: {
      info: (o: { node?: string } | undefined, msg: string) => {
        log.info.push(msg);
        if (msg === 'wshub: cluster node up' && o?.node) log.peers.push(o.node);
        log.note();
      },
    },
  });
  hub.on('connection', (client, req) => {
    real.objects.set(client.id, client);
    const peer = real.peers.get(client.id);
    if (peer && req) peer.server = req.socket as Peer['server'];
  });
  hub.on(
    'disconnect',
    (client, code, reason) => (log.disconnects.push(`${client.id} ${code} ${reason}`), log.note()),
  );
  hub.on('drop', (client, reason) => (log.drops.push(`${client.id} ${reason}`), log.note()));
  hub.on('error', (err, client) => {
    log.errors.push(`${client?.id ?? '-'} ${(err as { code?: string }).code ?? err.message}`);
    log.note();
  });
  const server = createServer();
  hub.handle(server, '/ws');
  await listen(server);
  const { port } = server.address() as AddressInfo;
  return { hub, server, url: `ws://127.0.0.1:${port}/ws`, log, ...(clients && { redis: clients }) };
}

async function startForeign(): Promise<Foreign> {
  const server = createServer();
  const wss = new WebSocketServer({ server, path: '/raw' }); // ws's defaults: its own maxPayload
  const log = new Log();
  const sockets = new Map<string, WebSocket>();
  wss.on('connection', (ws, req) => {
    ws.on('error', () => {});
    sockets.set(idOf(req.url), ws);
    log.note();
  });
  await listen(server);
  const { port } = server.address() as AddressInfo;
  return { server, wss, url: `ws://127.0.0.1:${port}/raw`, sockets, log };
}

/** Fresh hub node(s) for one run: one process with a foreign server, or two nodes over `redis`. */
export async function setup(
  caught: unknown[],
  policy: Model['policy'],
  redis?: RedisServer,
): Promise<{ model: Model; real: Real }> {
  const model = newModel(redis ? 2 : 1, policy);
  const real: Real = {
    nodes: [],
    peers: new Map(),
    objects: new Map(),
    foreign: undefined,
    redis,
    cluster: undefined,
    caught,
    trace: [],
  };
  try {
    if (redis) {
      const prefix = nanoid();
      for (let i = 0; i < 2; i++)
        real.nodes.push(await startNode(real, policy, { server: redis, prefix }));
      const formed = real.nodes.map((n, i) =>
        n.log.until(() => n.log.peers.length > 0, `node ${i} to see the other`),
      );
      await Promise.all(formed);
      // each node's uid is what the other logged
      real.cluster = {
        prefix,
        uids: [real.nodes[1]!.log.peers[0]!, real.nodes[0]!.log.peers[0]!],
        forger: await redis.client(),
      };
    } else {
      real.nodes.push(await startNode(real, policy));
      real.foreign = await startForeign();
    }
  } catch (err) {
    await teardown(real);
    throw err;
  }
  return { model, real };
}

/** Closes every client, hub and server of a run; a down Redis is started again for the next run. */
export async function teardown(real: Real): Promise<void> {
  for (const peer of real.peers.values()) peer.ws.terminate();
  if (real.redis && real.nodes.some((n) => n.redis && !n.redis.pub.isReady)) {
    // a run that ended in an outage: the next run needs Redis
    await real.redis.restart();
    await Promise.all(
      real.nodes.flatMap((n) => (n.redis ? [ready(n.redis.pub), ready(n.redis.sub)] : [])),
    );
  }
  await Promise.all(
    real.nodes.map((n) => within(n.hub.close({ timeout: 200 }), WAIT, 'hub.close() after a run')),
  );
  for (const n of real.nodes) {
    await closeServer(n.server);
    n.redis?.pub.destroy();
    n.redis?.sub.destroy();
  }
  real.cluster?.forger.destroy();
  if (real.foreign) {
    real.foreign.wss.close();
    await closeServer(real.foreign.server);
  }
}

export function ready(client: Redis): Promise<unknown> {
  return client.isReady
    ? Promise.resolve()
    : within(once(client, 'ready'), WAIT, 'redis client ready');
}

/** Resolves once node-redis has noticed the server is gone (it sets isReady before emitting 'error'). */
export function notReady(client: Redis): Promise<unknown> {
  return client.isReady
    ? within(once(client, 'error'), WAIT, 'redis client to notice the outage')
    : Promise.resolve();
}

// --- comparing with the model ---

const short = (f: string): string =>
  f.length > 120 ? `${f.slice(0, 100)}…(${f.length} chars)` : f;

/** The frames `c` got since the last check are exactly the model's (or, if `prefix`, a prefix of them). */
export function checkFrames(c: MClient, peer: Peer, prefix = false): void {
  const got = peer.frames.slice(c.checked);
  const want = c.expected.slice(c.checked, prefix ? c.checked + got.length : undefined);
  const same = got.length === want.length && got.every((f, i) => f === want[i]);
  if (!same) {
    const at = got.findIndex((f, i) => f !== want[i]);
    assert.fail(
      `frames to ${c.id} differ from the model at #${c.checked + (at < 0 ? Math.min(got.length, want.length) : at)}:\n` +
        `  got      ${JSON.stringify(got.map(short), null, 1)}\n  expected ${JSON.stringify(want.map(short), null, 1)}`,
    );
  }
  c.checked = c.checked + got.length;
}

/** A heart_beat round trip: its reply proves every frame queued for `c` before it has arrived. */
async function barrier(m: Model, r: Real, c: MClient): Promise<void> {
  const peer = r.peers.get(c.id)!;
  assert.ok(
    c.registered,
    `${c.id} is open and reading but no longer registered: a command left its close unchecked`,
  );
  const id = `b${m.seq++}`;
  receive(m, c, { t: 'heart_beat' }, id);
  const reply = c.expected.at(-1)!;
  peer.ws.send(wire({ t: 'heart_beat' }, id).payload);
  await peer.until(
    () => peer.frames.includes(reply, c.checked) || peer.closedWith !== undefined,
    WAIT,
    `${c.id}: barrier ${id}`,
  );
  checkFrames(c, peer);
  assert.equal(peer.closedWith, undefined, `${c.id} was closed, though registered`);
}

/**
 * Quiescence, then the property: with Redis up, `cluster.size()` on each node (a barrier: a node
 * answers after everything the other published before the question, README "Presence") equals the
 * model's count; a heart_beat round trip per open reading client (its reply follows every frame
 * queued for it before), whose frames must then equal the model's; each node's events, counters
 * and clients' rooms equal the model's.
 */
export async function settle(m: Model, r: Real): Promise<void> {
  assert.deepEqual(r.caught, [], 'nothing reached the process crash handlers');
  // The hub learns of a client's own close or reset asynchronously: wait for its 'disconnect' events.
  for (const [i, { log }] of r.nodes.entries()) {
    const want = m.nodes[i]!.disconnects.length;
    await log.until(() => log.disconnects.length >= want, `node ${i}: ${want} 'disconnect' events`);
  }
  if (m.cluster && m.redisUp) {
    const total = m.clients.filter((c) => c.registered).length;
    for (const [i, node] of r.nodes.entries()) {
      const size = await within(node.hub.cluster.size(), ASK, `cluster.size() on node ${i}`);
      assert.equal(size, total, `cluster.size() on node ${i}`);
    }
  }
  await Promise.all(m.clients.filter((c) => c.open && !c.frozen).map((c) => barrier(m, r, c)));
  for (const i of r.nodes.keys()) verifyNode(m, r, i);
}

/** Node `i`'s events, counters and client count equal the model's. */
function verifyNode(m: Model, r: Real, i: number): void {
  const { hub, log } = r.nodes[i]!;
  const want = m.nodes[i]!;
  assert.deepEqual(log.disconnects, want.disconnects, `node ${i}: 'disconnect' events`);
  assert.deepEqual(log.drops, want.drops, `node ${i}: 'drop' events`);
  // Redis outages are reported without a client (and counted): the model speaks of clients' errors.
  const errors = m.cluster ? log.errors.filter((e) => !e.startsWith('- ')) : log.errors;
  assert.deepEqual(errors, want.errors, `node ${i}: 'error' events`);
  const clients = m.clients.filter((c) => c.registered && c.node === i).length;
  const stats: Partial<ReturnType<typeof hub.stats>> = hub.stats();
  const expected: Partial<ReturnType<typeof hub.stats>> = { clients, ...want.stats };
  if (m.cluster) {
    // Redis outages are counted as errors, at moments the model does not pin down
    delete stats.errors;
    delete expected.errors;
  }
  assert.deepEqual(stats, expected, `node ${i}: stats()`);
  assert.equal(hub.clients.size, clients, `node ${i}: hub.clients.size`);
  for (const c of m.clients.filter((x) => x.registered && x.node === i)) {
    assert.deepEqual(
      [...hub.clients.get(c.id)!.rooms].sort(),
      [...c.rooms].sort(),
      `${c.id}.rooms`,
    );
  }
}

/**
 * The end of each run: every paused client resumes and gets the rest of its stream; then each node
 * shuts down right after queueing a last push to its clients, which must still arrive before the
 * close frame (README hub.close(): "lets frames already queued go out").
 */
export async function finish(m: Model, r: Real): Promise<void> {
  for (const c of m.clients.filter((x) => x.frozen)) await thaw(m, r, c);
  await settle(m, r);
  for (const [i, node] of r.nodes.entries()) {
    const local = m.clients.filter((c) => c.registered && c.node === i);
    const to = local.map((c) => c.id);
    const want = broadcast(m, i, push('last', i), { to });
    assert.equal(node.hub.broadcast('last', i, { to }), want, `node ${i}: the last broadcast`);
    const closing = node.hub.close({ timeout: 1000 });
    for (const c of local) letGo(m, c, 1001, 'server shutting down');
    await within(closing, WAIT, `node ${i}: hub.close()`);
    for (const c of local) {
      const peer = r.peers.get(c.id)!;
      assert.deepEqual(
        await peer.closed(WAIT, `${c.id}: the shutdown close`),
        c.close,
        `${c.id}: the shutdown close`,
      );
      c.open = false;
      checkFrames(c, peer);
    }
    verifyNode(m, r, i);
  }
}

/** Resumes a paused reader: it gets everything queued for it (then the hub's close, if it was let go). */
export async function thaw(m: Model, r: Real, c: MClient): Promise<void> {
  const peer = r.peers.get(c.id)!;
  peer.ws.resume();
  c.frozen = false;
  if (c.registered) {
    // Every frame queued before must arrive before a barrier: the barrier's reply is itself subject
    // to backpressure until the server's buffer has drained.
    const all = () => peer.frames.length >= c.expected.length || peer.closedWith !== undefined;
    await peer.until(
      all,
      WAIT,
      `${c.id}: the ${c.expected.length - c.checked} frames queued while paused`,
    );
    c.overMark = false;
    checkFrames(c, peer);
    return;
  }
  const closed = await peer.closed(WAIT, `${c.id}: the hub's close after resuming`);
  c.open = false;
  checkFrames(c, peer);
  assert.deepEqual(closed, c.close, `${c.id}: close code and reason`);
}

/** A model-based command: `act` runs it on both sides and returns what it resolved to. */
export class Cmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly label: string,
    readonly can: (m: Readonly<Model>) => boolean,
    readonly act: (m: Model, r: Real) => Promise<string>,
  ) {}
  check(m: Readonly<Model>): boolean {
    return this.can(m);
  }
  async run(m: Model, r: Real): Promise<void> {
    r.trace.push(this.label);
    r.trace[r.trace.length - 1] = `${this.label} → ${await this.act(m, r)}`;
    await settle(m, r);
  }
  toString(): string {
    return this.label;
  }
}

/** `list[i mod length]`: a command's choice, stable for a given model state. */
export const pick = <T>(list: readonly T[], i: number): T | undefined =>
  list.length === 0 ? undefined : list[i % list.length];
