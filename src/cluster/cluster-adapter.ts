// Cluster semantics over any pub/sub broker (socket.io-adapter's ClusterAdapter split): routing,
// echo suppression, exactly-once dedupe, presence with heartbeats and expiry, request/response by
// id. A broker adapter (redis.ts) only implements publish/subscribe/unsubscribe and feeds every
// message it receives to `receive()`.
//
// Ordering: the broker must deliver one publisher's messages to each subscriber in publish order,
// across channels (Redis does, for one publishing connection). Exactly-once, presence sync and
// per-publisher order all rest on it.
//
// Trust: whatever arrives from the broker passes cluster-guard.ts's Inbox (size, HMAC and replay
// checks with a `secret`, cluster-wire.ts's per-kind `decode`) before anything here reads it, and
// everything published goes through its Outbox (bounded while unacknowledged, signed); see
// SECURITY.md "Redis is a trust boundary".
import { nanoid } from 'nanoid';
import { InMemoryAdapter, type AdapterHost } from '../core/adapter.js';
import { Frame } from '../core/protocol.js';
import type { Target } from '../core/types.js';
import {
  encode,
  MAX_NAME,
  MAX_SNAPSHOT,
  Signer,
  TAG_LENGTH,
  type Header,
  type Message,
  type Via,
} from './messages.js';
import { Inbox, Outbox, Throttle } from './guard.js';
import { resolveClusterOptions, type ClusterOptions } from './options.js';

export { resolveClusterOptions, type ClusterOptions } from './options.js';

/** Most other nodes one node keeps track of; messages from further uids are dropped. */
const MAX_PEERS = 1024;

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
  protected readonly channels: {
    readonly all: string;
    readonly node: string;
    readonly prefix: string;
  };
  protected readonly heartbeatInterval: number;
  protected readonly heartbeatTimeout: number;
  protected readonly requestTimeout: number;
  /**
   * Whether one publisher's messages reach a subscriber in publish order across channels (one
   * Redis server: yes; sharded pub/sub on Redis Cluster: per channel only). If not, copies of a
   * broadcast are deduplicated by a window of recent ids and per-publisher order holds per channel.
   */
  protected ordered = true;
  /** what leaves this node for the broker, and what enters from it (cluster-guard.ts) */
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  /** characters before a message's header: the HMAC tag, with a secret */
  readonly #tag: number;
  #closed = false;
  #seq = 0;
  #mid = 0;
  #ask = 0;
  #timer: NodeJS.Timeout | undefined;
  /** this node's last snapshot, reused while its presence sequence number is unchanged */
  #snap: { readonly seq: number; readonly body: string } | undefined;
  readonly #self: string;
  readonly #roomPrefix: string;
  readonly #peers = new Map<string, Peer>();
  /** client id → uid of the node holding it */
  readonly #where = new Map<string, string>();
  readonly #asks = new Map<number, Ask>();
  /** (un)subscriptions not yet confirmed by the broker */
  readonly #pending = new Set<Promise<unknown>>();
  readonly #badReports = new Throttle();

  constructor(host: AdapterHost, options: ClusterOptions) {
    super(host);
    const o = resolveClusterOptions(options);
    this.heartbeatInterval = o.heartbeatInterval;
    this.heartbeatTimeout = o.heartbeatTimeout;
    this.requestTimeout = o.requestTimeout;
    const signer = o.secret && new Signer(o.secret);
    this.#outbox = new Outbox(
      (channel, message) => this.publish(channel, message),
      o,
      signer,
      host,
    );
    this.#inbox = new Inbox(o.maxFrameSize, signer);
    this.#tag = signer ? TAG_LENGTH : 0;
    this.channels = {
      prefix: o.prefix,
      all: `${o.prefix}:all`,
      node: `${o.prefix}:node:${this.uid}`,
    };
    this.#roomPrefix = `${o.prefix}:room:`;
    this.#self = `{"f":"${this.uid}"`;
  }

  /**
   * Hands one message to the broker. Returns a promise that settles when the broker has taken it
   * (its rejection is the subclass's to report; it is only counted here), or `false` if the broker
   * is unreachable (the message is dropped). Never throws.
   */
  protected abstract publish(channel: string, message: string): Promise<unknown> | false;
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
    this.#background(
      Promise.all(
        [this.channels.all, this.channels.node, ...rooms].map((c) => this.#subscribe(c)),
      ).then((ok) => {
        // A failed subscription was reported; the next reconnect retries it.
        if (!ok.every(Boolean)) return;
        this.#publish(this.channels.all, { f: this.uid, k: 'hi', s: this.#seq });
      }),
    );
  }

  /**
   * Handles one message the broker delivered on `channel`. Checks it whole first (size, HMAC with
   * a `secret`, then shape, types and sizes of every field); a bad one is dropped and reported
   * (at most one report per 10 s). Never throws.
   */
  protected receive(message: string, channel: string): void {
    if (this.#closed || message.startsWith(this.#self, this.#tag)) return; // our own echo
    try {
      const m = this.#inbox.accept(message, channel, this.#via(channel));
      if (typeof m === 'string') return this.#bad(`on ${channel}`, m);
      this.#handle(m);
    } catch (err) {
      this.host.reportError(
        new Error(`wshub cluster: failed to handle a message on ${channel.slice(0, 200)}`, {
          cause: err,
        }),
      );
    }
  }

  override added(client: Parameters<InMemoryAdapter['added']>[0]): void {
    super.added(client);
    if (this.#outbox.name(client.id, 'client id'))
      this.#publish(this.channels.all, { f: this.uid, k: '+', i: client.id, s: ++this.#seq });
  }

  override removed(client: Parameters<InMemoryAdapter['removed']>[0]): void {
    super.removed(client);
    if (client.id.length <= MAX_NAME)
      this.#publish(this.channels.all, { f: this.uid, k: '-', i: client.id, s: ++this.#seq });
  }

  override join(clientId: string, room: string): boolean {
    if (super.join(clientId, room)) return true;
    if (this.#outbox.name(clientId, 'client id') && this.#outbox.name(room, 'room')) {
      this.#publish(this.#route(clientId), { f: this.uid, k: 'j', i: clientId, r: room });
    }
    return false;
  }

  override leave(clientId: string, room: string): boolean {
    if (super.leave(clientId, room)) return true;
    if (this.#outbox.name(clientId, 'client id') && this.#outbox.name(room, 'room')) {
      this.#publish(this.#route(clientId), { f: this.uid, k: 'l', i: clientId, r: room });
    }
    return false;
  }

  override send(clientId: string, frame: Frame): boolean {
    if (this.localSend(clientId, frame) !== undefined) return true;
    if (this.#outbox.name(clientId, 'client id') && this.#outbox.fits(frame)) {
      this.#publish(this.#route(clientId), { f: this.uid, k: 's', i: clientId }, frame.text);
    }
    return false;
  }

  override broadcast(frame: Frame, target: Target | undefined): number {
    const n = this.localBroadcast(frame, target);
    if (!this.#outbox.fits(frame) || !this.#outbox.targetFits(target)) return n;
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
    const message = encode(this.#outbox.stamp({ f: this.uid, k: 'b', t: target, m }), frame.text);
    for (const channel of channels) this.#outbox.send(channel, message);
    return n;
  }

  override size(): Promise<number> {
    return this.#question(undefined).then((ask) => ask.n);
  }

  override has(clientId: string): Promise<boolean> {
    // An id too long to cross nodes is never announced: only this node can hold it.
    if (this.host.clients.has(clientId) || clientId.length > MAX_NAME)
      return Promise.resolve(this.host.clients.has(clientId));
    return this.#question(clientId).then((ask) => ask.has);
  }

  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#publish(this.channels.all, { f: this.uid, k: 'bye' });
    this.#closed = true;
    clearInterval(this.#timer);
    for (const ask of [...this.#asks.values()]) ask.done();
    const channels = [
      this.channels.all,
      this.channels.node,
      ...[...this.rooms.keys()].map((r) => this.#room(r)),
    ];
    await Promise.all(channels.map((c) => this.#track(() => this.unsubscribe(c))));
  }

  protected override roomOpened(room: string): void {
    void this.#subscribe(this.#room(room));
  }

  protected override roomClosed(room: string): void {
    if (!this.#closed) void this.#track(() => this.unsubscribe(this.#room(room)));
  }

  // --- internals ---

  // The host's logger never throws (options.ts guards it), even in timers and broker callbacks.
  #log(level: 'info' | 'warn', node: string, msg: string): void {
    this.host.logger[level]?.({ node, prefix: this.channels.prefix }, msg);
  }

  /** Reports a dropped incoming message, at most once per 10 s (with a count of the others). */
  #bad(where: string, why: string): void {
    const held = this.#badReports.admit();
    if (held < 0) return;
    const more = held > 0 ? `; ${held} more dropped since the last report` : '';
    this.host.reportError(
      new Error(`wshub cluster: dropped a bad message ${where.slice(0, 200)}: ${why}${more}`),
    );
  }

  #via(channel: string): Via | undefined {
    if (channel === this.channels.all) return 'all';
    if (channel === this.channels.node) return 'node';
    return channel.startsWith(this.#roomPrefix) ? 'room' : undefined;
  }

  #room(room: string): string {
    return this.#roomPrefix + room;
  }

  #node(uid: string): string {
    return `${this.channels.prefix}:node:${uid}`;
  }

  /** Runs a continuation whose failure must not become an unhandled rejection. */
  #background(p: Promise<unknown>): void {
    p.catch((err: unknown) => this.host.reportError(err));
  }

  #subscribe(channel: string): Promise<boolean> {
    return this.#track(() => this.subscribe(channel));
  }

  /** Tracks a (un)subscription until the broker confirms it (see `#settled`). Never rejects: `false` if it failed (reported). */
  #track(op: () => Promise<void>): Promise<boolean> {
    let started: Promise<void>;
    try {
      started = op();
    } catch (err) {
      started = Promise.reject(err); // a broker adapter that throws instead of rejecting
    }
    const p: Promise<boolean> = started
      .then(
        () => true,
        (err: unknown) => {
          this.host.reportError(err);
          return false;
        },
      )
      .finally(() => this.#pending.delete(p));
    this.#pending.add(p);
    return p;
  }

  /** Resolves once every subscription asked for so far is confirmed (or failed), or after requestTimeout. */
  #settled(): Promise<unknown> {
    if (this.#pending.size === 0) return Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise(
      (resolve) => (timer = setTimeout(resolve, this.requestTimeout).unref()),
    );
    return Promise.race([Promise.all([...this.#pending]), late]).finally(() => clearTimeout(timer));
  }

  #publish(channel: string, header: Header, body?: string): boolean {
    return this.#outbox.send(channel, encode(this.#outbox.stamp(header), body));
  }

  #route(clientId: string): string {
    const uid = this.#where.get(clientId);
    return uid === undefined ? this.channels.all : this.#node(uid);
  }

  #handle(m: Message): void {
    const from = m.f;
    if (m.k === 'bye') {
      if (this.#peers.has(from)) this.#log('info', from, 'wshub: cluster node left');
      return this.#drop(from);
    }
    let peer = this.#peers.get(from);
    if (!peer) {
      if (this.#peers.size >= MAX_PEERS)
        return this.#bad(`from ${from}`, `more than ${MAX_PEERS} nodes`);
      peer = { ids: new Set(), seq: 0, seen: 0, mid: 0, mids: new Set(), syncing: 0 };
      this.#peers.set(from, peer);
      this.#log('info', from, 'wshub: cluster node up');
    }
    peer.seen = now();
    switch (m.k) {
      case 'b':
        if (m.m !== undefined && this.#duplicate(peer, m.m)) return;
        this.localBroadcast(new Frame(m.frame), m.t);
        return;
      case 's':
        this.localSend(m.i, new Frame(m.frame));
        return;
      case 'j':
        super.join(m.i, m.r);
        return;
      case 'l':
        super.leave(m.i, m.r);
        return;
      case '+':
      case '-':
        if (peer.syncing || m.s <= peer.seq) return; // covered by the snapshot on its way, or by the last one
        if (m.s !== peer.seq + 1) return this.#resync(from, peer);
        peer.seq = m.s;
        if (m.k === '+') {
          peer.ids.add(m.i);
          this.#where.set(m.i, from);
        } else {
          peer.ids.delete(m.i);
          if (this.#where.get(m.i) === from) this.#where.delete(m.i);
        }
        return;
      case 'hi':
        // Tell the newcomer our sequence number: if it differs from what it knows, it asks for a snapshot.
        this.#publish(this.#node(from), { f: this.uid, k: 'h', s: this.#seq });
        if (!peer.syncing && m.s !== peer.seq) this.#resync(from, peer);
        return;
      case 'h':
        if (m.s !== peer.seq && (!peer.syncing || peer.seen - peer.syncing > this.requestTimeout))
          this.#resync(from, peer);
        return;
      case 'sync':
        this.#snapshot(from);
        return;
      case 'snap':
        // Only a snapshot this node asked for replaces what it knows. (A late answer to a `sync`
        // that was sent again is one too, so this is not reported as an error.)
        if (!peer.syncing) {
          return void this.host.logger.debug?.(
            { node: from, prefix: this.channels.prefix },
            'wshub: dropped a snapshot this node did not ask for',
          );
        }
        this.#forget(from, peer);
        for (const id of m.ids) {
          peer.ids.add(id);
          this.#where.set(id, from);
        }
        peer.seq = m.s;
        peer.syncing = 0;
        return;
      case 'q': {
        // Answer once the rooms joined before the question are subscribed: `size()` is then a
        // barrier after which a broadcast reaches every member joined before it, on any node.
        const { q, i } = m;
        this.#background(
          this.#settled().then(() => {
            const n = this.host.clients.size;
            this.#publish(this.#node(from), {
              f: this.uid,
              k: 'a',
              q,
              n,
              h: i !== undefined && this.host.clients.has(i),
            });
          }),
        );
        return;
      }
      case 'a': {
        const ask = this.#asks.get(m.q);
        if (!ask?.waiting.delete(from)) return;
        ask.n += m.n;
        ask.has ||= m.h;
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

  /** Sends this node's client ids to `to`; encoded once per presence change, however many ask. */
  #snapshot(to: string): void {
    if (this.#snap?.seq !== this.#seq) {
      const ids = [...this.host.clients.keys()].filter((id) => id.length <= MAX_NAME);
      this.#snap = { seq: this.#seq, body: JSON.stringify(ids) };
    }
    const { seq, body } = this.#snap;
    if (body.length > MAX_SNAPSHOT)
      return void this.#outbox.refuse(
        `a snapshot of ${body.length} characters exceeds ${MAX_SNAPSHOT}`,
      );
    this.#publish(this.#node(to), { f: this.uid, k: 'snap', s: seq }, body);
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
    try {
      this.#publish(this.channels.all, { f: this.uid, k: 'h', s: this.#seq });
      const t = now();
      for (const [uid, peer] of this.#peers) {
        if (t - peer.seen <= this.heartbeatTimeout) continue;
        this.#drop(uid);
        this.#log('warn', uid, 'wshub: cluster node expired');
      }
      this.#inbox.prune();
    } catch (err) {
      this.host.reportError(err);
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
      if (
        this.#closed ||
        ask.waiting.size === 0 ||
        !this.#publish(this.channels.all, { f: this.uid, k: 'q', q, i: id })
      ) {
        return ask.done();
      }
      this.#asks.set(q, ask);
      timer = setTimeout(ask.done, this.requestTimeout).unref();
    });
  }
}
