// Cluster semantics over any pub/sub broker (socket.io-adapter's ClusterAdapter split): routing,
// echo suppression, exactly-once dedupe, presence with heartbeats and expiry, request/response by
// id. A broker adapter (redis.ts) only implements publish/subscribe/unsubscribe and feeds every
// message it receives to `receive()`.
//
// Ordering: the broker must deliver one publisher's messages to each subscriber in publish order,
// across channels (Redis does, for one publishing connection). Exactly-once, presence sync and
// per-publisher order all rest on it.
import { nanoid } from 'nanoid';
import { InMemoryAdapter, type AdapterHost } from './adapter.js';
import { Frame } from './protocol.js';
import type { Target } from './types.js';

/** Options every cluster adapter shares. Durations in ms. */
export interface ClusterOptions {
  /** Channel prefix; nodes with the same prefix form one cluster. @default 'wshub' */
  prefix?: string | undefined;
  /** How often a node announces itself. @default 5000 */
  heartbeatInterval?: number | undefined;
  /**
   * A node not heard from for this long is dropped from presence and routing; it is noticed at
   * the next heartbeat tick, so a dead node is forgotten within `heartbeatTimeout + heartbeatInterval`.
   * @default 3 × heartbeatInterval
   */
  heartbeatTimeout?: number | undefined;
  /** How long `cluster.size()` / `has()` wait for other nodes' answers. @default 2000 */
  requestTimeout?: number | undefined;
}

/** Message kinds: b broadcast, s send, j/l join/leave, +/- presence delta, h heartbeat,
 * hi hello, sync snapshot request, snap snapshot, q/a question/answer, bye. */
type Kind = 'b' | 's' | 'j' | 'l' | '+' | '-' | 'h' | 'hi' | 'sync' | 'snap' | 'q' | 'a' | 'bye';

/** A message's header; the body (a frame's text, a snapshot) follows after one '\n'. */
interface Header {
  /** origin node uid: always the first key, so an echo is spotted without parsing */
  f: string;
  k: Kind;
  /** broadcast target */ t?: Target | undefined;
  /** id shared by the copies of one multi-channel broadcast */ m?: number | undefined;
  /** client id */ i?: string | undefined;
  /** room */ r?: string | undefined;
  /** presence sequence number */ s?: number | undefined;
  /** request id */ q?: number | undefined;
  /** answer: client count, has */ n?: number | undefined;
  h?: boolean | undefined;
}

interface Peer {
  /** client ids it holds, as far as its deltas told us */
  readonly ids: Set<string>;
  /** last presence sequence number applied */
  seq: number;
  /** last time anything arrived from it (ms, monotonic) */
  seen: number;
  /** highest broadcast copy id seen (copies of one broadcast arrive back to back) */
  mid: number;
  /** copy ids seen lately, when the broker does not keep order across channels */
  readonly mids: Set<number>;
  /** when a snapshot was asked for; 0 if in sync */
  syncing: number;
}

interface Ask {
  readonly waiting: Set<string>;
  n: number;
  has: boolean;
  readonly done: () => void;
}

const now = () => performance.now();

/**
 * Base of broker adapters: delivers locally through {@link InMemoryAdapter} and forwards the rest
 * over `publish`. Channels (`prefix` first): `:all` every node, `:node:<uid>` one node,
 * `:room:<room>` the nodes hosting a member of that room.
 */
export abstract class ClusterAdapter extends InMemoryAdapter {
  /** This node's id in the cluster, new on every start. */
  readonly uid = nanoid();
  protected readonly channels: { readonly all: string; readonly node: string; readonly prefix: string };
  protected readonly heartbeatInterval: number;
  protected readonly heartbeatTimeout: number;
  protected readonly requestTimeout: number;
  /**
   * Whether one publisher's messages reach a subscriber in publish order across channels (one
   * Redis server: yes; sharded pub/sub on Redis Cluster: per channel only). If not, copies of a
   * broadcast are deduplicated by a window of recent ids and per-publisher order holds per channel.
   */
  protected ordered = true;
  #closed = false;
  #seq = 0;
  #mid = 0;
  #ask = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #self: string;
  readonly #peers = new Map<string, Peer>();
  /** client id → uid of the node holding it */
  readonly #where = new Map<string, string>();
  readonly #asks = new Map<number, Ask>();
  /** (un)subscriptions not yet confirmed by the broker */
  readonly #pending = new Set<Promise<unknown>>();

  constructor(host: AdapterHost, options: ClusterOptions) {
    super(host);
    const { prefix, heartbeatInterval, heartbeatTimeout, requestTimeout } = resolveClusterOptions(options);
    this.heartbeatInterval = heartbeatInterval;
    this.heartbeatTimeout = heartbeatTimeout;
    this.requestTimeout = requestTimeout;
    this.channels = { prefix, all: `${prefix}:all`, node: `${prefix}:node:${this.uid}` };
    this.#self = `{"f":"${this.uid}"`;
  }

  /** Publishes one message; `false` if the broker is unreachable (the message is dropped). Never throws. */
  protected abstract publish(channel: string, message: string): boolean;
  /** Starts receiving `channel`; resolves when the broker confirms. Subscribing twice is a no-op. */
  protected abstract subscribe(channel: string): Promise<void>;
  protected abstract unsubscribe(channel: string): Promise<void>;

  /** Subscribes to this node's channels and starts the heartbeat; a subclass calls it once, last in its constructor. */
  protected start(): void {
    this.connected();
    this.#timer = setInterval(() => this.#tick(), this.heartbeatInterval).unref();
  }

  /**
   * The broker is (again) reachable: makes sure every channel is subscribed (one that failed
   * during an outage is not restored by the client), then says hello so other nodes resync
   * presence both ways.
   */
  protected connected(): void {
    if (this.#closed) return;
    const rooms = [...this.rooms.keys()].map((room) => this.#room(room));
    void Promise.all([this.channels.all, this.channels.node, ...rooms].map((c) => this.#subscribe(c))).then((ok) => {
      // A failed subscription was reported; the next reconnect retries it.
      if (ok.every(Boolean)) this.#publish(this.channels.all, { f: this.uid, k: 'hi', s: this.#seq });
    });
  }

  /** Handles one message from the broker. Never throws. */
  protected receive(message: string): void {
    if (this.#closed || message.startsWith(this.#self)) return; // our own echo
    try {
      const nl = message.indexOf('\n');
      const h = JSON.parse(nl < 0 ? message : message.slice(0, nl)) as Header;
      this.#handle(h, nl < 0 ? '' : message.slice(nl + 1));
    } catch (err) {
      this.host.reportError(new Error(`wshub cluster: bad message on ${this.channels.prefix}`, { cause: err }));
    }
  }

  override added(client: Parameters<InMemoryAdapter['added']>[0]): void {
    super.added(client);
    this.#publish(this.channels.all, { f: this.uid, k: '+', i: client.id, s: ++this.#seq });
  }

  override removed(client: Parameters<InMemoryAdapter['removed']>[0]): void {
    super.removed(client);
    this.#publish(this.channels.all, { f: this.uid, k: '-', i: client.id, s: ++this.#seq });
  }

  override join(clientId: string, room: string): boolean {
    if (super.join(clientId, room)) return true;
    this.#publish(this.#route(clientId), { f: this.uid, k: 'j', i: clientId, r: room });
    return false;
  }

  override leave(clientId: string, room: string): boolean {
    if (super.leave(clientId, room)) return true;
    this.#publish(this.#route(clientId), { f: this.uid, k: 'l', i: clientId, r: room });
    return false;
  }

  override send(clientId: string, frame: Frame): boolean {
    if (this.localSend(clientId, frame) !== undefined) return true;
    this.#publish(this.#route(clientId), { f: this.uid, k: 's', i: clientId }, frame.text);
    return false;
  }

  override broadcast(frame: Frame, target: Target | undefined): number {
    const n = this.localBroadcast(frame, target);
    if (!target || (!target.to && !target.rooms)) {
      const t = target?.except?.length ? { except: target.except } : undefined;
      this.#publish(this.channels.all, { f: this.uid, k: 'b', t }, frame.text);
      return n;
    }
    // A room message goes to that room's channel (only nodes with members subscribe), a message
    // to a known id to its node; an id nobody has announced yet goes to every node.
    let channels = new Set<string>();
    for (const room of target.rooms ?? []) channels.add(this.#room(room));
    for (const id of target.to ?? []) {
      if (this.host.clients.has(id)) continue;
      const uid = this.#where.get(id);
      if (uid === undefined) {
        channels = new Set([this.channels.all]);
        break;
      }
      channels.add(this.#node(uid));
    }
    if (channels.size === 0) return n;
    // Every copy carries the whole target; a node takes the first copy and skips the rest.
    const m = channels.size > 1 ? ++this.#mid : undefined;
    const message = encode({ f: this.uid, k: 'b', t: target, m }, frame.text);
    for (const channel of channels) this.publish(channel, message);
    return n;
  }

  override size(): Promise<number> {
    return this.#question(undefined).then((ask) => ask.n);
  }

  override has(clientId: string): Promise<boolean> {
    if (this.host.clients.has(clientId)) return Promise.resolve(true);
    return this.#question(clientId).then((ask) => ask.has);
  }

  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#publish(this.channels.all, { f: this.uid, k: 'bye' });
    this.#closed = true;
    clearInterval(this.#timer);
    for (const ask of [...this.#asks.values()]) ask.done();
    const channels = [this.channels.all, this.channels.node, ...[...this.rooms.keys()].map((r) => this.#room(r))];
    await Promise.all(channels.map((c) => this.unsubscribe(c).catch((err: unknown) => this.host.reportError(err))));
  }

  protected override roomOpened(room: string): void {
    void this.#subscribe(this.#room(room));
  }

  protected override roomClosed(room: string): void {
    if (!this.#closed) void this.#track(this.unsubscribe(this.#room(room)));
  }

  // --- internals ---

  // The host's logger never throws (options.ts guards it), even in timers and broker callbacks.
  #log(level: 'info' | 'warn', node: string, msg: string): void {
    this.host.logger[level]?.({ node, prefix: this.channels.prefix }, msg);
  }

  #room(room: string): string {
    return `${this.channels.prefix}:room:${room}`;
  }

  #node(uid: string): string {
    return `${this.channels.prefix}:node:${uid}`;
  }

  #subscribe(channel: string): Promise<boolean> {
    return this.#track(this.subscribe(channel));
  }

  /** Tracks a (un)subscription until the broker confirms it (see `#settled`). Never rejects: `false` if it failed (reported). */
  #track(op: Promise<void>): Promise<boolean> {
    const p: Promise<boolean> = op.then(
      () => {
        this.#pending.delete(p);
        return true;
      },
      (err: unknown) => {
        this.#pending.delete(p);
        this.host.reportError(err);
        return false;
      },
    );
    this.#pending.add(p);
    return p;
  }

  /** Resolves once every subscription asked for so far is confirmed (or failed). */
  #settled(): Promise<unknown> {
    return this.#pending.size === 0 ? Promise.resolve() : Promise.all([...this.#pending]);
  }

  #publish(channel: string, header: Header, body?: string): boolean {
    return this.publish(channel, encode(header, body));
  }

  #route(clientId: string): string {
    const uid = this.#where.get(clientId);
    return uid === undefined ? this.channels.all : this.#node(uid);
  }

  #handle(h: Header, body: string): void {
    const from = h.f;
    if (h.k === 'bye') {
      if (this.#peers.has(from)) this.#log('info', from, 'wshub: cluster node left');
      return this.#drop(from);
    }
    let peer = this.#peers.get(from);
    if (!peer) {
      peer = { ids: new Set(), seq: 0, seen: 0, mid: 0, mids: new Set(), syncing: 0 };
      this.#peers.set(from, peer);
      this.#log('info', from, 'wshub: cluster node up');
    }
    peer.seen = now();
    switch (h.k) {
      case 'b':
        if (h.m !== undefined && this.#duplicate(peer, h.m)) return;
        this.localBroadcast(new Frame(body), h.t);
        return;
      case 's':
        this.localSend(h.i!, new Frame(body));
        return;
      case 'j':
        super.join(h.i!, h.r!);
        return;
      case 'l':
        super.leave(h.i!, h.r!);
        return;
      case '+':
      case '-':
        if (peer.syncing || h.s! <= peer.seq) return; // covered by the snapshot on its way, or by the last one
        if (h.s !== peer.seq + 1) return this.#resync(from, peer);
        peer.seq = h.s;
        if (h.k === '+') {
          peer.ids.add(h.i!);
          this.#where.set(h.i!, from);
        } else {
          peer.ids.delete(h.i!);
          if (this.#where.get(h.i!) === from) this.#where.delete(h.i!);
        }
        return;
      case 'hi':
        this.#snapshot(from);
        if (!peer.syncing && h.s !== peer.seq) this.#resync(from, peer);
        return;
      case 'h':
        if (h.s !== peer.seq && (!peer.syncing || peer.seen - peer.syncing > this.requestTimeout)) this.#resync(from, peer);
        return;
      case 'sync':
        this.#snapshot(from);
        return;
      case 'snap':
        this.#forget(from, peer);
        for (const id of JSON.parse(body) as string[]) {
          peer.ids.add(id);
          this.#where.set(id, from);
        }
        peer.seq = h.s!;
        peer.syncing = 0;
        return;
      case 'q':
        // Answer once the rooms joined before the question are subscribed: `size()` is then a
        // barrier after which a broadcast reaches every member joined before it, on any node.
        void this.#settled().then(() =>
          this.#publish(this.#node(from), {
            f: this.uid,
            k: 'a',
            q: h.q,
            n: this.host.clients.size,
            h: h.i !== undefined && this.host.clients.has(h.i),
          }),
        );
        return;
      case 'a': {
        const ask = this.#asks.get(h.q!);
        if (!ask?.waiting.delete(from)) return;
        ask.n += h.n!;
        ask.has ||= h.h === true;
        if (ask.waiting.size === 0) ask.done();
        return;
      }
    }
  }

  #duplicate(peer: Peer, m: number): boolean {
    if (this.ordered) {
      if (m <= peer.mid) return true;
      peer.mid = m;
      return false;
    }
    if (peer.mids.has(m)) return true;
    peer.mids.add(m);
    if (peer.mids.size > 1024) peer.mids.delete(peer.mids.values().next().value!);
    return false;
  }

  #snapshot(to: string): void {
    this.#publish(this.#node(to), { f: this.uid, k: 'snap', s: this.#seq }, JSON.stringify([...this.host.clients.keys()]));
  }

  #resync(uid: string, peer: Peer): void {
    peer.syncing = now();
    if (!this.#publish(this.#node(uid), { f: this.uid, k: 'sync' })) peer.syncing = 0;
  }

  #forget(uid: string, peer: Peer): void {
    for (const id of peer.ids) if (this.#where.get(id) === uid) this.#where.delete(id);
    peer.ids.clear();
  }

  #drop(uid: string): void {
    const peer = this.#peers.get(uid);
    if (!peer) return;
    this.#forget(uid, peer);
    this.#peers.delete(uid);
    for (const ask of this.#asks.values()) {
      if (ask.waiting.delete(uid) && ask.waiting.size === 0) ask.done();
    }
  }

  #tick(): void {
    this.#publish(this.channels.all, { f: this.uid, k: 'h', s: this.#seq });
    const t = now();
    for (const [uid, peer] of this.#peers) {
      if (t - peer.seen <= this.heartbeatTimeout) continue;
      this.#drop(uid);
      this.#log('warn', uid, 'wshub: cluster node expired');
    }
  }

  /** Asks every live node for its count (and whether it holds `id`); a node that does not answer in time counts as last known. */
  async #question(id: string | undefined): Promise<Ask> {
    await this.#settled();
    return new Promise((resolve) => {
      const q = ++this.#ask;
      let timer: NodeJS.Timeout | undefined;
      const ask: Ask = {
        waiting: new Set(this.#peers.keys()),
        n: this.host.clients.size,
        has: id !== undefined && this.host.clients.has(id),
        done: () => {
          clearTimeout(timer);
          this.#asks.delete(q);
          for (const uid of ask.waiting) {
            const peer = this.#peers.get(uid);
            ask.n += peer?.ids.size ?? 0;
            ask.has ||= id !== undefined && peer?.ids.has(id) === true;
          }
          ask.waiting.clear();
          resolve(ask);
        },
      };
      if (this.#closed || ask.waiting.size === 0 || !this.#publish(this.channels.all, { f: this.uid, k: 'q', q, i: id })) {
        return ask.done();
      }
      this.#asks.set(q, ask);
      timer = setTimeout(ask.done, this.requestTimeout).unref();
    });
  }
}

function encode(header: Header, body?: string): string {
  const head = JSON.stringify(header);
  return body === undefined ? head : `${head}\n${body}`;
}

/** Checks and defaults {@link ClusterOptions}. @throws TypeError / RangeError naming the option */
export function resolveClusterOptions(options: ClusterOptions): Required<{ [K in keyof ClusterOptions]: NonNullable<ClusterOptions[K]> }> {
  const prefix = options.prefix ?? 'wshub';
  if (typeof prefix !== 'string' || prefix === '') throw new TypeError(`options.prefix must be a non-empty string, got ${String(prefix)}`);
  const heartbeatInterval = ms('heartbeatInterval', options.heartbeatInterval, 5000);
  return {
    prefix,
    heartbeatInterval,
    heartbeatTimeout: ms('heartbeatTimeout', options.heartbeatTimeout, 3 * heartbeatInterval),
    requestTimeout: ms('requestTimeout', options.requestTimeout, 2000),
  };
}

function ms(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new RangeError(`options.${name} must be a positive number of ms, got ${String(v)}`);
  return v;
}
