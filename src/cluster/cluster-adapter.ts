// Cluster semantics over any pub/sub broker (socket.io-adapter's ClusterAdapter split): routing,
// echo suppression, exactly-once dedupe and the publish/subscribe seam; presence.ts keeps who is
// where. A broker adapter (redis.ts) only implements publish/subscribe/unsubscribe and feeds every
// message it receives to `receive()`.
//
// Ordering: the broker must deliver one publisher's messages to each subscriber in publish order,
// across channels (Redis does, for one publishing connection). Exactly-once, presence sync and
// per-publisher order all rest on it.
//
// Trust: whatever arrives from the broker passes guard.ts's Inbox (size, HMAC and replay checks
// with a `secret`, decode.ts's per-kind checks) before anything here reads it, and everything
// published goes through its Outbox (bounded while unacknowledged, signed, shut after bye); see
// SECURITY.md "Redis is a trust boundary".
import { nanoid } from 'nanoid';
import { InMemoryAdapter, type AdapterHost } from '../core/adapter.js';
import type { Client } from '../core/client.js';
import { Frame } from '../core/protocol.js';
import type { Target } from '../core/types.js';
import { Inbox, Outbox, Signer, Throttle } from './guard.js';
import { Channels, encode, header, Kind, MAX_NAME, TAG_LENGTH, type Message } from './messages.js';
import { resolveClusterOptions, type ClusterOptions } from './options.js';
import { MAX_PEERS, Presence, type Peer } from './presence.js';

/** Copy ids remembered per peer when the broker does not keep order across channels. */
const MAX_COPIES = 1024;

/**
 * Base of broker adapters: delivers locally through {@link InMemoryAdapter} and forwards the rest
 * over `publish`. Channels (`prefix` first): `:all` every node, `:node:<uid>` one node,
 * `:room:<room>` the nodes hosting a member of that room.
 */
export abstract class ClusterAdapter extends InMemoryAdapter {
  /** This node's id in the cluster, new on every start. */
  readonly uid = nanoid();
  /** The cluster's channels: `all`, this node's own `node`, and the `prefix`. */
  protected readonly channels: Channels;
  /** ms between this node's heartbeats (`heartbeatInterval` option). */
  protected readonly heartbeatInterval: number;
  /** ms of silence after which another node is dropped (`heartbeatTimeout` option). */
  protected readonly heartbeatTimeout: number;
  /** ms a question to other nodes waits for answers (`requestTimeout` option). */
  protected readonly requestTimeout: number;
  /**
   * Whether one publisher's messages reach a subscriber in publish order across channels (one
   * Redis server: yes; sharded pub/sub on Redis Cluster: per channel only). If not, copies of a
   * broadcast are deduplicated by a window of recent ids and per-publisher order holds per channel.
   */
  protected ordered = true;
  /** what leaves this node for the broker, and what enters from it (guard.ts) */
  readonly #outbox: Outbox;
  readonly #inbox: Inbox;
  readonly #presence: Presence;
  /** characters before a message's header: the HMAC tag, with a secret */
  readonly #tag: number;
  /** how every message this node publishes starts (its echo is dropped unread) */
  readonly #self: string;
  #closed = false;
  /** id of the last multi-channel broadcast */
  #copy = 0;
  #timer: NodeJS.Timeout | undefined;
  /** (un)subscriptions not yet confirmed by the broker */
  readonly #pending = new Set<Promise<unknown>>();
  readonly #badReports = new Throttle();

  constructor(host: AdapterHost, options: ClusterOptions) {
    super(host);
    const o = resolveClusterOptions(options);
    this.heartbeatInterval = o.heartbeatInterval;
    this.heartbeatTimeout = o.heartbeatTimeout;
    this.requestTimeout = o.requestTimeout;
    this.channels = new Channels(o.prefix, this.uid);
    const signer = o.secret && new Signer(o.secret);
    this.#outbox = new Outbox(
      (channel, message) => this.publish(channel, message),
      o,
      signer,
      host,
    );
    this.#inbox = new Inbox(o.maxFrameSize, signer);
    this.#tag = signer ? TAG_LENGTH : 0;
    this.#self = `{"f":"${this.uid}"`;
    this.#presence = new Presence({
      uid: this.uid,
      host,
      outbox: this.#outbox,
      channels: this.channels,
      heartbeatTimeout: o.heartbeatTimeout,
      requestTimeout: o.requestTimeout,
      settled: () => this.#settled(),
    });
  }

  /**
   * Hands one message to the broker. Returns a promise that settles when the broker has taken it
   * (its rejection is the subclass's to report; it is only counted here), or `false` if the broker
   * is unreachable (the message is dropped). Never throws.
   */
  protected abstract publish(channel: string, message: string): Promise<unknown> | false;
  /** Starts receiving `channel`; resolves when the broker confirms. Subscribing twice is a no-op. */
  protected abstract subscribe(channel: string): Promise<void>;
  /** Stops receiving `channel`; resolves when the broker confirms. */
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
    const { all, node } = this.channels;
    const rooms = [...this.rooms.keys()].map((room) => this.channels.room(room));
    Promise.all([all, node, ...rooms].map((c) => this.#subscribe(c)))
      .then((ok) => {
        // A failed subscription was reported; the next reconnect retries it.
        if (ok.every(Boolean)) this.#presence.hello();
      })
      .catch((err: unknown) => this.host.reportError(err));
  }

  /**
   * Handles one message the broker delivered on `channel`. Checks it whole first (size, HMAC with
   * a `secret`, then shape, types and sizes of every field); a bad one is dropped and reported
   * (at most one report per 10 s). Never throws.
   */
  protected receive(message: string, channel: string): void {
    if (this.#closed || message.startsWith(this.#self, this.#tag)) return; // our own echo
    try {
      const m = this.#inbox.accept(message, channel, this.channels.via(channel));
      if (typeof m === 'string') return this.#bad(`on ${channel}`, m);
      this.#handle(m);
    } catch (err) {
      const where = channel.slice(0, 200);
      const why = `wshub cluster: failed to handle a message on ${where}`;
      this.host.reportError(new Error(why, { cause: err }));
    }
  }

  override added(client: Client<unknown>): void {
    super.added(client);
    this.#presence.added(client.id);
  }

  override removed(client: Client<unknown>): void {
    super.removed(client);
    this.#presence.removed(client.id);
  }

  override join(clientId: string, room: string): boolean {
    if (super.join(clientId, room)) return true;
    if (this.#outbox.name(clientId, 'client id') && this.#outbox.name(room, 'room')) {
      this.#outbox.publish(this.#route(clientId), header.join(this.uid, clientId, room));
    }
    return false;
  }

  override leave(clientId: string, room: string): boolean {
    if (super.leave(clientId, room)) return true;
    if (this.#outbox.name(clientId, 'client id') && this.#outbox.name(room, 'room')) {
      this.#outbox.publish(this.#route(clientId), header.leave(this.uid, clientId, room));
    }
    return false;
  }

  override send(clientId: string, frame: Frame): boolean {
    if (this.localSend(clientId, frame) !== undefined) return true;
    if (this.#outbox.name(clientId, 'client id') && this.#outbox.fits(frame)) {
      this.#outbox.publish(this.#route(clientId), header.send(this.uid, clientId), frame.text);
    }
    return false;
  }

  override broadcast(frame: Frame, target: Target | undefined): number {
    const n = this.localBroadcast(frame, target);
    if (!this.#outbox.fits(frame) || !this.#outbox.targetFits(target)) return n;
    if (!target || (!target.to && !target.rooms)) {
      const except = target?.except?.length ? { except: target.except } : undefined;
      this.#outbox.publish(this.channels.all, header.broadcast(this.uid, except), frame.text);
      return n;
    }
    // A room message goes to that room's channel (only nodes with members subscribe), a message
    // to a known id to its node; an id nobody has announced yet goes to every node.
    let channels = new Set<string>();
    for (const room of target.rooms ?? []) channels.add(this.channels.room(room));
    for (const id of target.to ?? []) {
      if (this.host.clients.has(id)) continue;
      const uid = this.#presence.locate(id);
      if (uid === undefined) {
        channels = new Set([this.channels.all]);
        break;
      }
      channels.add(this.channels.nodeOf(uid));
    }
    if (channels.size === 0) return n;
    // Every copy carries the whole target; a node takes the first copy and skips the rest.
    const copy = channels.size > 1 ? ++this.#copy : undefined;
    const stamped = this.#outbox.stamp(header.broadcast(this.uid, target, copy));
    const message = encode(stamped, frame.text);
    for (const channel of channels) this.#outbox.send(channel, message);
    return n;
  }

  override size(): Promise<number> {
    return this.#presence.size();
  }

  override has(clientId: string): Promise<boolean> {
    // An id too long to cross nodes is never announced: only this node can hold it.
    if (this.host.clients.has(clientId) || clientId.length > MAX_NAME) {
      return Promise.resolve(this.host.clients.has(clientId));
    }
    return this.#presence.has(clientId);
  }

  /** Says bye, then publishes nothing more: other nodes forget this one at once and for good. */
  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#outbox.publish(this.channels.all, header.bye(this.uid));
    this.#outbox.shut();
    this.#closed = true;
    clearInterval(this.#timer);
    this.#presence.close();
    const { all, node } = this.channels;
    const rooms = [...this.rooms.keys()].map((r) => this.channels.room(r));
    await Promise.all([all, node, ...rooms].map((c) => this.#track(() => this.unsubscribe(c))));
  }

  protected override roomOpened(room: string): void {
    void this.#subscribe(this.channels.room(room));
  }

  protected override roomClosed(room: string): void {
    if (!this.#closed) void this.#track(() => this.unsubscribe(this.channels.room(room)));
  }

  #handle(m: Message): void {
    if (m.kind === Kind.Bye) return this.#presence.bye(m.from);
    const { peer, crowded } = this.#presence.heard(m.from);
    if (crowded) return this.#bad(`from ${m.from}`, `more than ${MAX_PEERS} nodes`);
    if (!peer) return; // a node that said bye
    switch (m.kind) {
      case Kind.Broadcast:
        if (m.copy !== undefined && this.#duplicate(peer, m.copy)) return;
        this.localBroadcast(new Frame(m.frame), m.target);
        return;
      case Kind.Send:
        this.localSend(m.clientId, new Frame(m.frame));
        return;
      case Kind.Join:
        super.join(m.clientId, m.room);
        return;
      case Kind.Leave:
        super.leave(m.clientId, m.room);
        return;
      default:
        this.#presence.handle(m, peer);
    }
  }

  /** Whether this copy of a multi-channel broadcast was already delivered. */
  #duplicate(peer: Peer, copy: number): boolean {
    if (this.ordered) {
      if (copy <= peer.copy) return true;
      peer.copy = copy;
      return false;
    }
    if (peer.copies.has(copy)) return true;
    peer.copies.add(copy);
    if (peer.copies.size > MAX_COPIES) peer.copies.delete(peer.copies.values().next().value!);
    return false;
  }

  /** Reports a dropped incoming message, at most once per 10 s (with a count of the others). */
  #bad(where: string, why: string): void {
    const held = this.#badReports.admit();
    if (held < 0) return;
    const more = held > 0 ? `; ${held} more dropped since the last report` : '';
    const dropped = `wshub cluster: dropped a bad message ${where.slice(0, 200)}: ${why}${more}`;
    this.host.reportError(new Error(dropped));
  }

  #route(clientId: string): string {
    const uid = this.#presence.locate(clientId);
    return uid === undefined ? this.channels.all : this.channels.nodeOf(uid);
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

  #tick(): void {
    try {
      this.#presence.tick();
      this.#inbox.prune();
    } catch (err) {
      this.host.reportError(err);
    }
  }
}
