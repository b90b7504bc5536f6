// The Manager: the public façade of a hub. Registry, dispatch and events are hub.ts's; sockets come
// in through a Transport (node/transport.ts for ws) as Connections; delivery beyond one client is
// the adapter's.
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { EventEmitter } from 'eventemitter3';
import type { Client } from './client.js';
import type { RegisterInit, Transport, TransportFactory } from './connection.js';
import { assertClose, CloseCode, CloseReason } from './errors.js';
import { Hub } from './hub.js';
import { encodePush, Frame } from './protocol.js';
import type { ManagerEvents, ManagerOptions, Stats, Target } from './types.js';

/** A read-only view of this node's clients; iterating it yields `Client`s. */
export interface ClientsView<Data> extends Iterable<Client<Data>> {
  /** Clients connected to this node. */
  readonly size: number;
  /** The client with this id, if it is connected to this node. */
  get(id: string): Client<Data> | undefined;
  /** Whether a client with this id is connected to this node. */
  has(id: string): boolean;
  /** Client ids, in connection order. */
  keys(): IterableIterator<string>;
  /** Clients, in connection order. */
  values(): IterableIterator<Client<Data>>;
}

/** Cluster-wide presence; with the in-memory adapter, this node's. */
export interface ClusterView {
  /** Clients connected over every node. */
  size(): Promise<number>;
  /** Whether a client id is connected to any node. */
  has(clientId: string): Promise<boolean>;
}

/** `close()`'s options. */
export interface CloseOptions {
  /** @default 1001 */
  code?: number | undefined;
  /** @default 'server shutting down' */
  reason?: string | undefined;
  /** ms to wait for peers to answer the close before terminating them. @default 5000 */
  timeout?: number | undefined;
}

/** Longest room name; longer throws a RangeError at join, leave and broadcast. */
export const MAX_ROOM_LENGTH = 256;

/**
 * The hub. Create it with {@link createManager}; it is an eventemitter3 emitter of
 * {@link ManagerEvents}.
 *
 * Once `close()` has returned, `handle`, `handleUpgrade`, `register`, `broadcast`, `send`, `join`
 * and `leave` throw an `Error` ("broadcast() called after close()"); `unregister`, `stats`,
 * `clients`, `cluster` and `close` keep working. The `disconnect` events `close()` emits come
 * before that, so their listeners may still broadcast to the clients (and nodes) that remain.
 */
export class Manager<Data = unknown> extends EventEmitter<ManagerEvents<Data>> {
  /** This node's clients. */
  readonly clients: ClientsView<Data>;
  /** Cluster-wide presence (this node's alone with the in-memory adapter). */
  readonly cluster: ClusterView;

  readonly #hub: Hub;
  readonly #transport: Transport;
  #closing: Promise<void> | undefined;

  /** @internal use createManager() */
  constructor(options: ManagerOptions<unknown, Data>, transport: TransportFactory) {
    super();
    const hub = new Hub(this as Manager<unknown>, options as ManagerOptions<unknown, unknown>);
    this.#hub = hub;
    this.clients = new Clients(hub.clients) as ClientsView<unknown> as ClientsView<Data>;
    this.cluster = { size: () => hub.adapter.size(), has: (id) => hub.adapter.has(id) };
    this.#transport = transport(hub);
  }

  /**
   * Serves WebSocket upgrades to `path` on `server`; other paths are left to other listeners, and
   * an upgrade nobody takes gets HTTP 404.
   *
   * @param path - pathname to match exactly; the query string is ignored
   * @returns a function that detaches the manager from `server`
   * @throws Error if the manager is closed, or `path` on `server` already has a manager
   * @example
   * const server = createServer();
   * hub.handle(server, '/ws');
   * server.listen(8066);
   */
  handle(server: Server | HttpsServer, path = '/ws'): () => void {
    this.#assertOpen('handle');
    return this.#transport.handle(server, path);
  }

  /** Runs the upgrade checks and, if they pass, completes the upgrade; for users who route upgrades themselves. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#assertOpen('handleUpgrade');
    this.#transport.handleUpgrade(req, socket, head);
  }

  /**
   * Adopts an already-open `ws` WebSocket (from @fastify/websocket, your own WebSocketServer…).
   * @throws Error if the socket is not open, the id is taken, or the manager is closed
   */
  register(ws: WebSocket, init?: RegisterInit<Data>): Client<Data> {
    this.#assertOpen('register');
    return this.#transport.register(ws, init ?? {}) as Client<Data>;
  }

  /**
   * Closes and forgets a client. Idempotent.
   * @returns whether the client was registered
   * @throws RangeError for a close code `ws` cannot send, or a reason over 123 bytes
   */
  unregister(
    clientOrId: Client<Data> | string,
    code: number = CloseCode.Normal,
    reason = '',
  ): boolean {
    const client = typeof clientOrId === 'string' ? this.#hub.clients.get(clientOrId) : clientOrId;
    return client !== undefined && this.#hub.unregister(client as Client<unknown>, code, reason);
  }

  /**
   * Pushes `{code:0,msg:"success",actioncode,data}` to every client `target` matches (all if
   * omitted), each once. The frame is encoded once and the call returns before delivery; a client
   * over `backpressure.highWaterMark` gets the configured policy instead of the frame.
   *
   * @returns the number of local clients the frame was queued for
   * @throws TypeError for a malformed target or data JSON cannot encode; Error after `close()`
   * @example
   * hub.broadcast('chat_message', { text: 'hi' }, { rooms: ['lobby'], except: [sender.id] });
   */
  broadcast(actioncode: string, data: unknown, target?: Target): number {
    this.#assertOpen('broadcast');
    checkTarget(target);
    return this.#hub.adapter.broadcast(new Frame(encodePush(actioncode, data)), target);
  }

  /**
   * Pushes to one client. With a cluster adapter, an id held by another node is forwarded there.
   * @returns whether the client is connected to this node
   * @throws TypeError for data JSON cannot encode; Error after `close()`
   */
  send(clientId: string, actioncode: string, data: unknown): boolean {
    this.#assertOpen('send');
    return this.#hub.adapter.send(clientId, new Frame(encodePush(actioncode, data)));
  }

  /**
   * Puts a client in a room (the seed's "Group").
   * @returns whether the client is on this node
   * @throws RangeError past `maxRoomsPerClient`; Error after `close()`
   */
  join(clientId: string, room: string): boolean {
    this.#assertOpen('join');
    checkRoom(room);
    const client = this.#hub.clients.get(clientId);
    const max = this.#hub.options.maxRoomsPerClient;
    if (client && client.rooms.size >= max && !client.rooms.has(room)) {
      throw new RangeError(
        `client "${clientId}" is already in ${max} rooms, the most options.maxRoomsPerClient allows`,
      );
    }
    return this.#hub.adapter.join(clientId, room);
  }

  /** Takes a client out of a room. @returns whether the client is on this node @throws Error after `close()` */
  leave(clientId: string, room: string): boolean {
    this.#assertOpen('leave');
    checkRoom(room);
    return this.#hub.adapter.leave(clientId, room);
  }

  /** Counters since creation; `clients` is this node's count now. */
  stats(): Stats {
    return { clients: this.#hub.clients.size, ...this.#hub.counters };
  }

  /**
   * Graceful shutdown: refuses new upgrades (HTTP 503), flushes what is queued, closes every
   * client with `code`, terminates those still open after `timeout` ms, then detaches from every
   * server and closes the adapter. Resolves when done; calling it again returns the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    const { code = CloseCode.GoingAway, reason = CloseReason.Shutdown, timeout = 5000 } = options;
    assertClose(code, reason);
    if (!(Number.isFinite(timeout) && timeout >= 0)) {
      throw new RangeError(`close timeout must be a finite number of ms >= 0, got ${timeout}`);
    }
    this.#closing ??= this.#shutdown(code, reason, timeout);
    return this.#closing;
  }

  async #shutdown(code: number, reason: string, timeout: number): Promise<void> {
    const hub = this.#hub;
    for (const client of [...hub.clients.values()]) hub.unregister(client, code, reason);
    // After the `disconnect` events above, before anything awaits: from here on calls throw.
    hub.closing = true;
    await this.#transport.drain(timeout);
    try {
      await hub.adapter.close();
    } catch (err) {
      hub.reportError(err);
    }
    this.#transport.detachAll();
  }

  #assertOpen(method: string): void {
    if (this.#hub.closing) throw new Error(`${method}() called after close()`);
  }
}

/** `hub.clients`: the registry, read-only. */
class Clients implements ClientsView<unknown> {
  readonly #map: ReadonlyMap<string, Client<unknown>>;
  constructor(map: ReadonlyMap<string, Client<unknown>>) {
    this.#map = map;
  }
  get size(): number {
    return this.#map.size;
  }
  get(id: string): Client<unknown> | undefined {
    return this.#map.get(id);
  }
  has(id: string): boolean {
    return this.#map.has(id);
  }
  keys(): IterableIterator<string> {
    return this.#map.keys();
  }
  values(): IterableIterator<Client<unknown>> {
    return this.#map.values();
  }
  [Symbol.iterator](): IterableIterator<Client<unknown>> {
    return this.#map.values();
  }
}

function checkRoom(room: unknown): void {
  if (typeof room !== 'string' || room === '') {
    const got = JSON.stringify(room) ?? String(room);
    throw new TypeError(`room must be a non-empty string, got ${got}`);
  }
  checkRoomLength(room);
}

function checkRoomLength(room: string): void {
  if (room.length > MAX_ROOM_LENGTH) {
    throw new RangeError(
      `room name must be at most ${MAX_ROOM_LENGTH} characters, got ${room.length}`,
    );
  }
}

function checkTarget(target: Target | undefined): void {
  if (target === undefined) return;
  if (typeof target !== 'object' || target === null) {
    throw new TypeError('broadcast target must be an object');
  }
  for (const key of ['to', 'rooms', 'except'] as const) {
    const list = target[key];
    if (list !== undefined && !(Array.isArray(list) && list.every((x) => typeof x === 'string'))) {
      throw new TypeError(`broadcast target.${key} must be an array of strings`);
    }
  }
  for (const room of target.rooms ?? []) checkRoomLength(room);
}
