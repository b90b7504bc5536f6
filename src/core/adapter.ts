// Where a message goes: the room index and local fan-out. Cluster adapters extend InMemoryAdapter
// and add the broker (socket.io-adapter's split): the base delivers locally, the subclass forwards.
import type { Client } from './client.js';
import type { Frame } from './protocol.js';
import type { Logger, Target } from './types.js';

type AnyClient = Client<unknown>;

/** What a manager gives the adapter it creates. */
export interface AdapterHost {
  /** This node's clients by id. */
  readonly clients: ReadonlyMap<string, AnyClient>;
  /** The manager's `logger` option. */
  readonly logger: Logger;
  /** Reports an infrastructure failure (broker down, bad message): `error` event and logger, never a throw. */
  reportError(err: unknown): void;
  /**
   * Queues an encoded frame for one of this node's clients, as every push is queued: after what
   * was queued before it, counted in `stats()`, and subject to `backpressure` (a client over the
   * high-water mark gets the policy instead). Never throws.
   * @returns whether the frame was queued (false for a client that is gone or over the mark)
   */
  deliver(client: AnyClient, frame: Frame): boolean;
}

/**
 * How a manager delivers beyond one client. Every method but `size`, `has` and `close` is called
 * synchronously on the hot path and must not throw; a cluster adapter delivers locally at once
 * and forwards to other nodes in the background.
 */
export interface Adapter {
  /** A client was added to `host.clients`. */
  added(client: AnyClient): void;
  /** A client was removed from `host.clients`. */
  removed(client: AnyClient): void;
  /** Puts a client in a room. @returns whether the client is on this node */
  join(clientId: string, room: string): boolean;
  /** Takes a client out of a room. @returns whether the client is on this node */
  leave(clientId: string, room: string): boolean;
  /** Queues `frame` for every client `target` matches, each once. @returns local clients queued for */
  broadcast(frame: Frame, target: Target | undefined): number;
  /** Queues `frame` for one client. @returns whether the client is on this node */
  send(clientId: string, frame: Frame): boolean;
  /** Clients connected, over every node. */
  size(): Promise<number>;
  /** Whether a client id is connected to any node. */
  has(clientId: string): Promise<boolean>;
  /** Releases the adapter's resources; called by `hub.close()`. */
  close(): Promise<void>;
}

/** Creates a manager's adapter; `createManager` calls it once with the manager's side. */
export type AdapterFactory = (host: AdapterHost) => Adapter;

/**
 * The default adapter: one process. Cluster adapters extend it, calling `super` (or
 * `localBroadcast` / `localSend`) for this node's share of a delivery. An adapter need not extend
 * it: `host.clients` and `host.deliver(client, frame)` are all it takes to deliver locally.
 */
export class InMemoryAdapter implements Adapter {
  /** room → this node's members */
  protected readonly rooms = new Map<string, Set<AnyClient>>();

  /** @param host - the manager's side: this node's clients, logger and error reporting */
  constructor(protected readonly host: AdapterHost) {}

  added(_client: AnyClient): void {}

  removed(client: AnyClient): void {
    for (const room of [...client.rooms]) this.leaveLocal(client, room);
  }

  join(clientId: string, room: string): boolean {
    const client = this.host.clients.get(clientId);
    if (!client) return false;
    let members = this.rooms.get(room);
    if (!members) {
      members = new Set();
      this.rooms.set(room, members);
      this.roomOpened(room);
    }
    members.add(client);
    (client.rooms as Set<string>).add(room);
    return true;
  }

  leave(clientId: string, room: string): boolean {
    const client = this.host.clients.get(clientId);
    if (!client) return false;
    this.leaveLocal(client, room);
    return true;
  }

  broadcast(frame: Frame, target: Target | undefined): number {
    return this.localBroadcast(frame, target);
  }

  send(clientId: string, frame: Frame): boolean {
    return this.localSend(clientId, frame) !== undefined;
  }

  size(): Promise<number> {
    return Promise.resolve(this.host.clients.size);
  }

  has(clientId: string): Promise<boolean> {
    return Promise.resolve(this.host.clients.has(clientId));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The first local member joined `room` (a cluster adapter subscribes here). */
  protected roomOpened(_room: string): void {}

  /** The last local member left `room`. */
  protected roomClosed(_room: string): void {}

  /** Takes a local client out of a room, closing the room when it was the last member. */
  protected leaveLocal(client: AnyClient, room: string): void {
    const members = this.rooms.get(room);
    (client.rooms as Set<string>).delete(room);
    if (!members?.delete(client) || members.size > 0) return;
    this.rooms.delete(room);
    this.roomClosed(room);
  }

  /** Delivers to one local client. @returns whether it was queued, `undefined` if the id is not local */
  protected localSend(clientId: string, frame: Frame): boolean | undefined {
    const client = this.host.clients.get(clientId);
    return client && this.host.deliver(client, frame);
  }

  /** Delivers to this node's share of `target`, each client once. @returns clients queued for */
  protected localBroadcast(frame: Frame, target: Target | undefined): number {
    const except = target?.except?.length ? new Set(target.except) : undefined;
    const { host } = this;
    let n = 0;
    for (const client of this.#recipients(target)) {
      if (!except?.has(client.id) && host.deliver(client, frame)) n++;
    }
    return n;
  }

  /**
   * This node's clients that `target` reaches, each once (before `except`). Everyone and a single
   * room are their own collections as they are; only a union of ids and rooms builds a set.
   */
  #recipients(target: Target | undefined): Iterable<AnyClient> {
    const to = target?.to;
    const rooms = target?.rooms;
    if (!to && !rooms) return this.host.clients.values();
    if (!to && rooms!.length === 1) return this.rooms.get(rooms![0]!) ?? [];
    const union = new Set<AnyClient>();
    for (const id of to ?? []) {
      const client = this.host.clients.get(id);
      if (client) union.add(client);
    }
    for (const room of rooms ?? []) {
      for (const client of this.rooms.get(room) ?? []) union.add(client);
    }
    return union;
  }
}
