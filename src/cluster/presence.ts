// Who is where in the cluster: the other nodes (peers) and the client ids each holds, kept in sync
// by sequenced deltas, snapshots on a gap, heartbeats and expiry; and the questions behind
// `cluster.size()` / `cluster.has(id)`.
import type { AdapterHost } from '../core/adapter.js';
import type { Outbox } from './guard.js';
import { header, Kind, MAX_NAME, MAX_SNAPSHOT, type Channels, type Message } from './messages.js';

/** Most other nodes one node keeps track of; messages from further uids are dropped. */
export const MAX_PEERS = 1024;
/** Uids of nodes that said bye, remembered so a late message from one does not bring it back. */
const MAX_DEPARTED = 1024;

/** Another node, as far as its messages told us. */
export interface Peer {
  /** client ids it holds */
  readonly ids: Set<string>;
  /** last presence sequence number applied */
  seq: number;
  /** last time anything arrived from it (ms, monotonic) */
  seen: number;
  /** when a snapshot was asked for; 0 if in sync */
  syncing: number;
  /** highest broadcast copy id seen (the adapter's dedupe; copies arrive back to back) */
  copy: number;
  /** copy ids seen lately, when the broker does not keep order across channels */
  readonly copies: Set<number>;
}

/** The presence messages; the rest are deliveries (the adapter's). */
export type PresenceMessage = Extract<
  Message,
  { kind: '+' | '-' | 'h' | 'hi' | 'sync' | 'snap' | 'q' | 'a' }
>;

interface Ask {
  readonly waiting: Set<string>;
  count: number;
  has: boolean;
  readonly done: () => void;
}

/** What presence works with; the cluster adapter's parts. */
export interface PresenceDeps {
  readonly uid: string;
  readonly host: AdapterHost;
  readonly outbox: Outbox;
  readonly channels: Channels;
  readonly heartbeatTimeout: number;
  readonly requestTimeout: number;
  /** Resolves once every subscription asked for so far is confirmed (or failed, or late). */
  settled(): Promise<unknown>;
}

const now = () => performance.now();

export class Presence {
  readonly #d: PresenceDeps;
  readonly #peers = new Map<string, Peer>();
  /** client id → uid of the node holding it */
  readonly #where = new Map<string, string>();
  readonly #departed = new Set<string>();
  readonly #asks = new Map<number, Ask>();
  #ask = 0;
  /** this node's presence sequence number: one more per client added or removed */
  #seq = 0;
  /** this node's last snapshot, reused while its sequence number is unchanged */
  #snap: { readonly seq: number; readonly body: string } | undefined;

  constructor(deps: PresenceDeps) {
    this.#d = deps;
  }

  /** The node holding `clientId`, if any node announced it. */
  locate(clientId: string): string | undefined {
    return this.#where.get(clientId);
  }

  // --- this node's changes ---

  added(clientId: string): void {
    const { uid, outbox, channels } = this.#d;
    if (outbox.name(clientId, 'client id')) {
      outbox.publish(channels.all, header.added(uid, clientId, ++this.#seq));
    }
  }

  removed(clientId: string): void {
    // An id too long to cross nodes was never announced.
    if (clientId.length > MAX_NAME) return;
    const { uid, outbox, channels } = this.#d;
    outbox.publish(channels.all, header.removed(uid, clientId, ++this.#seq));
  }

  /** Says hello (on start and after an outage) so other nodes resync presence both ways. */
  hello(): void {
    const { uid, outbox, channels } = this.#d;
    outbox.publish(channels.all, header.hello(uid, this.#seq));
  }

  /** Each heartbeat tick: announces this node, and forgets nodes silent past heartbeatTimeout. */
  tick(): void {
    const { uid, outbox, channels, heartbeatTimeout } = this.#d;
    outbox.publish(channels.all, header.heartbeat(uid, this.#seq));
    const t = now();
    for (const [peerUid, peer] of this.#peers) {
      if (t - peer.seen <= heartbeatTimeout) continue;
      this.#drop(peerUid);
      this.#log('warn', peerUid, 'wshub: cluster node expired');
    }
  }

  // --- what other nodes say ---

  /**
   * The peer a message comes from, now seen; a new uid is a node up. `undefined` if the message
   * must be dropped: a node that said bye, or one past MAX_PEERS (then `crowded` is set).
   */
  heard(from: string): { peer?: Peer; crowded?: true } {
    let peer = this.#peers.get(from);
    if (!peer) {
      if (this.#departed.has(from)) return {};
      if (this.#peers.size >= MAX_PEERS) return { crowded: true };
      peer = { ids: new Set(), seq: 0, seen: 0, syncing: 0, copy: 0, copies: new Set() };
      this.#peers.set(from, peer);
      this.#log('info', from, 'wshub: cluster node up');
    }
    peer.seen = now();
    return { peer };
  }

  /** A node left: forgotten at once, and never taken back. */
  bye(from: string): void {
    if (this.#peers.has(from)) this.#log('info', from, 'wshub: cluster node left');
    this.#drop(from);
    this.#departed.add(from);
    if (this.#departed.size > MAX_DEPARTED) {
      this.#departed.delete(this.#departed.values().next().value!);
    }
  }

  handle(m: PresenceMessage, peer: Peer): void {
    const { uid, outbox, channels } = this.#d;
    switch (m.kind) {
      case Kind.Added:
      case Kind.Removed:
        // Covered by the snapshot on its way, or by the last one.
        if (peer.syncing || m.seq <= peer.seq) return;
        if (m.seq !== peer.seq + 1) return this.#resync(m.from, peer);
        peer.seq = m.seq;
        if (m.kind === Kind.Added) {
          peer.ids.add(m.clientId);
          this.#where.set(m.clientId, m.from);
        } else {
          peer.ids.delete(m.clientId);
          if (this.#where.get(m.clientId) === m.from) this.#where.delete(m.clientId);
        }
        return;
      case Kind.Hello:
        // Tell the newcomer our sequence number: if it differs from what it knows, it asks for a snapshot.
        outbox.publish(channels.nodeOf(m.from), header.heartbeat(uid, this.#seq));
        if (!peer.syncing && m.seq !== peer.seq) this.#resync(m.from, peer);
        return;
      case Kind.Heartbeat:
        if (m.seq === peer.seq) return;
        if (!peer.syncing || peer.seen - peer.syncing > this.#d.requestTimeout) {
          this.#resync(m.from, peer);
        }
        return;
      case Kind.SyncRequest:
        return this.#snapshot(m.from);
      case Kind.Snapshot:
        return this.#synced(m, peer);
      case Kind.Question:
        return this.#answer(m.from, m.question, m.clientId);
      case Kind.Answer: {
        const ask = this.#asks.get(m.question);
        if (!ask?.waiting.delete(m.from)) return;
        ask.count += m.count;
        ask.has ||= m.has;
        if (ask.waiting.size === 0) ask.done();
        return;
      }
    }
  }

  // --- questions ---

  /** Clients over every node; a node that does not answer in time counts as last known. */
  size(): Promise<number> {
    return this.#question(undefined).then((ask) => ask.count);
  }

  /** Whether any node holds `clientId`. */
  has(clientId: string): Promise<boolean> {
    return this.#question(clientId).then((ask) => ask.has);
  }

  /** Answers every open question with what is known. */
  close(): void {
    for (const ask of [...this.#asks.values()]) ask.done();
  }

  async #question(id: string | undefined): Promise<Ask> {
    const { uid, outbox, channels, host, requestTimeout } = this.#d;
    await this.#d.settled();
    return new Promise((resolve) => {
      const q = ++this.#ask;
      let timer: NodeJS.Timeout | undefined;
      const ask: Ask = {
        waiting: new Set(this.#peers.keys()),
        count: host.clients.size,
        has: id !== undefined && host.clients.has(id),
        done: () => {
          clearTimeout(timer);
          this.#asks.delete(q);
          for (const peerUid of ask.waiting) {
            const peer = this.#peers.get(peerUid);
            ask.count += peer?.ids.size ?? 0;
            ask.has ||= id !== undefined && peer?.ids.has(id) === true;
          }
          ask.waiting.clear();
          resolve(ask);
        },
      };
      if (ask.waiting.size === 0 || !outbox.publish(channels.all, header.question(uid, q, id))) {
        return ask.done();
      }
      this.#asks.set(q, ask);
      timer = setTimeout(ask.done, requestTimeout).unref();
    });
  }

  /**
   * Answers once the rooms joined before the question are subscribed: `size()` is then a barrier
   * after which a broadcast reaches every member joined before it, on any node.
   */
  #answer(from: string, question: number, id: string | undefined): void {
    const { uid, outbox, channels, host } = this.#d;
    this.#d
      .settled()
      .then(() => {
        const count = host.clients.size;
        const has = id !== undefined && host.clients.has(id);
        outbox.publish(channels.nodeOf(from), header.answer(uid, question, count, has));
      })
      .catch((err: unknown) => host.reportError(err));
  }

  // --- sync ---

  /** Sends this node's client ids to `to`; encoded once per presence change, however many ask. */
  #snapshot(to: string): void {
    const { uid, outbox, channels, host } = this.#d;
    if (this.#snap?.seq !== this.#seq) {
      const ids = [...host.clients.keys()].filter((id) => id.length <= MAX_NAME);
      this.#snap = { seq: this.#seq, body: JSON.stringify(ids) };
    }
    const { seq, body } = this.#snap;
    if (body.length > MAX_SNAPSHOT) {
      outbox.refuse(`a snapshot of ${body.length} characters exceeds ${MAX_SNAPSHOT}`);
      return;
    }
    outbox.publish(channels.nodeOf(to), header.snapshot(uid, seq), body);
  }

  #synced(m: Extract<Message, { kind: 'snap' }>, peer: Peer): void {
    // Only a snapshot this node asked for replaces what it knows. (A late answer to a sync request
    // that was sent again is one too, so this is not reported as an error.)
    if (!peer.syncing) {
      const { prefix } = this.#d.channels;
      const why = 'wshub: dropped a snapshot this node did not ask for';
      return void this.#d.host.logger.debug?.({ node: m.from, prefix }, why);
    }
    this.#forget(m.from, peer);
    for (const id of m.ids) {
      peer.ids.add(id);
      this.#where.set(id, m.from);
    }
    peer.seq = m.seq;
    peer.syncing = 0;
  }

  #resync(peerUid: string, peer: Peer): void {
    const { uid, outbox, channels } = this.#d;
    peer.syncing = now();
    if (!outbox.publish(channels.nodeOf(peerUid), header.syncRequest(uid))) peer.syncing = 0;
  }

  #forget(peerUid: string, peer: Peer): void {
    for (const id of peer.ids) if (this.#where.get(id) === peerUid) this.#where.delete(id);
    peer.ids.clear();
  }

  #drop(peerUid: string): void {
    const peer = this.#peers.get(peerUid);
    if (!peer) return;
    this.#forget(peerUid, peer);
    this.#peers.delete(peerUid);
    for (const ask of this.#asks.values()) {
      if (ask.waiting.delete(peerUid) && ask.waiting.size === 0) ask.done();
    }
  }

  // The host's logger never throws (core/options.ts guards it), even in timers and broker callbacks.
  #log(level: 'info' | 'warn', node: string, msg: string): void {
    this.#d.host.logger[level]?.({ node, prefix: this.#d.channels.prefix }, msg);
  }
}
