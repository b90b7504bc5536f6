// The hub: registry, dispatch, targeting, liveness and shutdown. No transport code: sockets come
// in through transport.ts as Connections.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { EventEmitter } from 'eventemitter3';
import { compileActions, toIssues, type CompiledAction } from './actions.js';
import type { Adapter } from './adapter.js';
import {
  Client,
  encodeOrThrow,
  kAlive,
  kConn,
  kOpen,
  kPush,
  kRate,
  type ClientHost,
  type Connection,
} from './client.js';
import { Code, CloseCode, CloseReason, HubError } from './errors.js';
import { encode, Frame, isFault, parseInbound, type Inbound, type RequestId } from './protocol.js';
import { resolveOptions, type Resolved } from './options.js';
import { createTransport, type Transport } from './transport.js';
import type { ActionContext, ManagerEvents, ManagerOptions, Stats, Target } from './types.js';

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

/** `register()`'s optional id and data. */
export interface RegisterInit<Data> {
  /** The client's id; one already connected throws. @default nanoid() */
  id?: string | undefined;
  /** Becomes `client.data` (what `authenticate` returns for an upgrade). @default undefined */
  data?: Data | undefined;
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

/** A manager's internals, as the transport sees them. */
export interface TransportHost {
  readonly options: Resolved;
  /** Whether new clients are accepted (false once closing). */
  readonly accepting: boolean;
  has(id: string): boolean;
  open(
    conn: Connection,
    id: string,
    data: unknown,
    req: IncomingMessage | undefined,
  ): Client<unknown>;
  /** One inbound message, text or binary alike. */
  receive(client: Client<unknown>, data: Buffer): void;
  pong(client: Client<unknown>): void;
  closed(client: Client<unknown>, code: number, reason: string): void;
  error(err: unknown, client?: Client<unknown>): void;
}

type AnyClient = Client<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- any client data

/** Longest room name; longer throws a RangeError at join, leave and broadcast. */
export const MAX_ROOM_LENGTH = 256;
/** A message refused by the rate limit is decoded (to echo its actioncode and id) only up to this size. */
export const RATE_LIMIT_ECHO_BYTES = 512;

/**
 * The hub. Create it with {@link createManager}; it is an eventemitter3 emitter of
 * {@link ManagerEvents}.
 */
export class Manager<Data = unknown> extends EventEmitter<ManagerEvents<Data>> {
  /** This node's clients. */
  readonly clients: ClientsView<Data>;
  /** Cluster-wide presence (this node's alone with the in-memory adapter). */
  readonly cluster: ClusterView;

  readonly #options: Resolved;
  readonly #actions: Map<string, CompiledAction>;
  readonly #registry = new Map<string, Client<Data>>();
  readonly #counters = {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    errors: 0,
  };
  readonly #adapter: Adapter;
  readonly #transport: Transport;
  readonly #clientHost: ClientHost;
  #beat: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  /** @internal use createManager() */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the actions' schemas are createManager's concern
  constructor(options: ManagerOptions<any, Data>) {
    super();
    this.#options = resolveOptions(options);
    this.#actions = compileActions(options.actions, this.#options.clientFanout);
    const registry = this.#registry;
    this.clients = {
      get size() {
        return registry.size;
      },
      get: (id) => registry.get(id),
      has: (id) => registry.has(id),
      keys: () => registry.keys(),
      values: () => registry.values(),
      [Symbol.iterator]: () => registry.values(),
    };
    this.#clientHost = {
      counters: this.#counters,
      highWaterMark: this.#options.backpressure.highWaterMark,
      overflow: (client) => this.#overflow(client),
      unregister: (client, code, reason) => this.unregister(client, code, reason),
    };
    this.#adapter = this.#options.adapter({
      clients: registry as ReadonlyMap<string, Client<unknown>>,
      logger: this.#options.logger,
      reportError: (err) => this.#report(err),
    });
    this.cluster = { size: () => this.#adapter.size(), has: (id) => this.#adapter.has(id) };
    this.#transport = createTransport(this.#transportHost());
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
  handle(server: Server | import('node:https').Server, path = '/ws'): () => void {
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
  unregister(clientOrId: Client<Data> | string, code = 1000, reason = ''): boolean {
    const client = typeof clientOrId === 'string' ? this.#registry.get(clientOrId) : clientOrId;
    if (!client || this.#registry.get(client.id) !== client) return false;
    assertClose(code, reason);
    this.#remove(client, code, reason);
    client[kConn].close(code, reason);
    return true;
  }

  /**
   * Pushes `{code:0,msg:"success",actioncode,data}` to every client `target` matches (all if
   * omitted), each once. The frame is encoded once and the call returns before delivery; a client
   * over `backpressure.highWaterMark` gets the configured policy instead of the frame.
   *
   * @returns the number of local clients the frame was queued for
   * @throws TypeError for a malformed target or data JSON cannot encode
   * @example
   * hub.broadcast('chat_message', { text: 'hi' }, { rooms: ['lobby'], except: [sender.id] });
   */
  broadcast(actioncode: string, data: unknown, target?: Target): number {
    checkTarget(target);
    return this.#adapter.broadcast(new Frame(encodeOrThrow(actioncode, data)), target);
  }

  /**
   * Pushes to one client. With a cluster adapter, an id held by another node is forwarded there.
   * @returns whether the client is connected to this node
   */
  send(clientId: string, actioncode: string, data: unknown): boolean {
    return this.#adapter.send(clientId, new Frame(encodeOrThrow(actioncode, data)));
  }

  /** Puts a client in a room (the seed's "Group"). @returns whether the client is on this node */
  join(clientId: string, room: string): boolean {
    checkRoom(room);
    const client = this.#registry.get(clientId);
    const max = this.#options.maxRoomsPerClient;
    if (client && client.rooms.size >= max && !client.rooms.has(room)) {
      throw new RangeError(
        `client "${clientId}" is already in ${max} rooms, the most options.maxRoomsPerClient allows`,
      );
    }
    return this.#adapter.join(clientId, room);
  }

  /** Takes a client out of a room. @returns whether the client is on this node */
  leave(clientId: string, room: string): boolean {
    checkRoom(room);
    return this.#adapter.leave(clientId, room);
  }

  /** Counters since creation; `clients` is this node's count now. */
  stats(): Stats {
    return { clients: this.#registry.size, ...this.#counters };
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
    this.#stopBeat();
    for (const client of [...this.#registry.values()]) {
      this.#remove(client, code, reason);
      client[kConn].close(code, reason);
    }
    await this.#transport.drain(timeout);
    try {
      await this.#adapter.close();
    } catch (err) {
      this.#report(err);
    }
    this.#transport.detachAll();
  }

  #assertOpen(method: string): void {
    if (this.#closing) throw new Error(`${method}() called after close()`);
  }

  #transportHost(): TransportHost {
    const self = this; // eslint-disable-line @typescript-eslint/no-this-alias -- the getter needs the manager
    return {
      options: this.#options,
      get accepting() {
        return !self.#closing;
      },
      has: (id) => this.#registry.has(id),
      open: (conn, id, data, req) => this.#open(conn, id, data as Data, req),
      receive: (client, data) => this.#receive(client as Client<Data>, data),
      pong: (client) => {
        client[kAlive] = true;
      },
      closed: (client, code, reason) => {
        if (this.#registry.get(client.id) === client)
          this.#remove(client as Client<Data>, code, reason);
      },
      error: (err, client) => this.#report(err, client as Client<Data> | undefined),
    };
  }

  #open(conn: Connection, id: string, data: Data, req: IncomingMessage | undefined): Client<Data> {
    const client = new Client<Data>(id, data, conn, this.#clientHost);
    this.#registry.set(id, client);
    this.#adapter.added(client as Client<unknown>);
    this.#startBeat();
    this.#emit('connection', client, req);
    return client;
  }

  #remove(client: Client<Data>, code: number, reason: string): void {
    client[kOpen] = false;
    clearTimeout(client[kRate]?.resume);
    this.#registry.delete(client.id);
    this.#adapter.removed(client as Client<unknown>);
    if (this.#registry.size === 0) this.#stopBeat();
    this.#emit('disconnect', client, code, reason);
  }

  #receive(client: Client<Data>, raw: Buffer): void {
    const counters = this.#counters;
    counters.messagesIn++;
    counters.bytesIn += raw.length;
    client[kAlive] = true; // any message proves the peer alive, as the seed's heart_beat did
    // The limit comes before decoding, so a refused message costs no JSON parse.
    if (this.#options.rateLimit && !this.#admit(client, raw)) return;
    // Text and binary frames are decoded alike: the seed's Go client sends its JSON as binary
    // frames, and `ws` has already rejected invalid UTF-8 in text frames with 1007.
    const msg = parseInbound(raw.toString());
    if (isFault(msg)) return this.#reply(client, msg.code, msg.fault, msg.actioncode, msg.id);
    const action = this.#actions.get(msg.actioncode);
    if (!action)
      return this.#reply(client, Code.MethodNotFound, 'method not found', msg.actioncode, msg.id);
    if ((msg.isBroadcast || msg.clientIds) && !action.fanout) {
      return this.#reply(
        client,
        Code.PermissionDenied,
        'fan-out not allowed for this action',
        msg.actioncode,
        msg.id,
      );
    }
    const ctx: ActionContext<Data> = {
      client,
      hub: this,
      actioncode: msg.actioncode,
      id: msg.id,
      message: msg.message,
    };
    if (!action.schema) return this.#run(action, msg.data, ctx, msg);
    let checked;
    try {
      checked = action.schema['~standard'].validate(msg.data);
    } catch (err) {
      return this.#fail(err, ctx);
    }
    if (isThenable(checked)) {
      checked.then(
        (r) => this.#validated(action, r, ctx, msg),
        (err: unknown) => this.#fail(err, ctx),
      );
    } else this.#validated(action, checked, ctx, msg);
  }

  #validated(
    action: CompiledAction,
    result: {
      value?: unknown;
      issues?: ReadonlyArray<import('./standard-schema.js').StandardSchemaV1.Issue> | undefined;
    },
    ctx: ActionContext<Data>,
    msg: Inbound,
  ): void {
    if (result.issues) {
      return this.#reply(
        ctx.client,
        Code.InvalidParams,
        'invalid params',
        msg.actioncode,
        msg.id,
        toIssues(result.issues),
      );
    }
    this.#run(action, result.value, ctx, msg);
  }

  #run(action: CompiledAction, data: unknown, ctx: ActionContext<Data>, msg: Inbound): void {
    let result: unknown;
    try {
      result = action.handler(data, ctx);
    } catch (err) {
      return this.#fail(err, ctx);
    }
    if (isThenable(result)) {
      // Promise.resolve: a foreign thenable whose then() throws becomes a rejection, not a lost reply.
      Promise.resolve(result).then(
        (value) => this.#succeed(value, ctx, msg),
        (err: unknown) => this.#fail(err, ctx),
      );
    } else this.#succeed(result, ctx, msg);
  }

  #succeed(value: unknown, ctx: ActionContext<Data>, msg: Inbound): void {
    let frame: Frame;
    try {
      frame = new Frame(encode(Code.Success, 'success', msg.actioncode, value, msg.id));
    } catch (err) {
      this.#report(
        new Error(`reply to "${msg.actioncode}" cannot be encoded as JSON`, { cause: err }),
        ctx.client,
      );
      return this.#reply(ctx.client, Code.ServerError, 'server error', msg.actioncode, msg.id);
    }
    ctx.client[kPush](frame);
    if (!msg.isBroadcast && !msg.clientIds) return;
    // The request id belongs to the sender: the other copies are pushes and carry none, or a
    // recipient's own pending request with the same id would resolve with this reply.
    const push =
      msg.id === undefined
        ? frame
        : new Frame(encode(Code.Success, 'success', msg.actioncode, value));
    const except = [ctx.client.id];
    this.#adapter.broadcast(push, msg.isBroadcast ? { except } : { to: msg.clientIds, except });
  }

  #fail(err: unknown, ctx: ActionContext<Data>): void {
    if (err instanceof HubError)
      return this.#reply(ctx.client, err.code, err.message, ctx.actioncode, ctx.id);
    this.#report(err, ctx.client);
    this.#reply(ctx.client, Code.ServerError, 'server error', ctx.actioncode, ctx.id);
  }

  #reply(
    client: Client<Data>,
    code: number,
    msg: string,
    actioncode: string,
    id: RequestId | undefined,
    data: unknown = null,
  ): void {
    client[kPush](new Frame(encode(code, msg, actioncode, data, id)));
  }

  /**
   * Fixed-window rate limit, one clock read per message. A refused message is answered 429 and
   * the client's socket is paused until its window ends; refusals add up over consecutive windows
   * that each went over the limit, and at `messages` of them the client is closed with 1008.
   */
  #admit(client: Client<Data>, raw: Buffer): boolean {
    const { messages, interval } = this.#options.rateLimit!;
    const rate = (client[kRate] ??= { start: 0, count: 0, rejected: 0, resume: undefined });
    const now = performance.now();
    if (now - rate.start >= interval) {
      // A window within the limit, or a quiet one in between, forgives earlier refusals.
      if (rate.count <= messages || now - rate.start >= 2 * interval) rate.rejected = 0;
      rate.start = now;
      rate.count = 0;
    }
    if (++rate.count <= messages) return true;
    if (++rate.rejected >= messages) {
      this.unregister(client, CloseCode.PolicyViolation, CloseReason.RateLimited);
      return false;
    }
    // Only a small message is decoded to echo its actioncode and id (honest clients match the
    // 429 to their request); a larger one is refused without being read: CPU per refusal is O(1).
    const small = raw.length <= RATE_LIMIT_ECHO_BYTES ? parseInbound(raw.toString()) : undefined;
    this.#reply(client, Code.RateLimited, 'rate limited', small?.actioncode ?? '', small?.id);
    if (!rate.resume) {
      const conn = client[kConn];
      conn.pause(); // what the client sends meanwhile waits in its TCP buffers, unread
      rate.resume = setTimeout(
        () => {
          // The window is over (a timer may fire a hair early by performance.now()): the next one
          // starts now, carrying this one's refusals.
          rate.start = performance.now();
          rate.count = 0;
          rate.resume = undefined;
          // Its pongs waited unread too: a full heartbeat round to be heard again.
          client[kAlive] = true;
          conn.resume();
        },
        rate.start + interval - now,
      );
    }
    return false;
  }

  #overflow(client: AnyClient): void {
    this.#counters.dropped++;
    const { policy } = this.#options.backpressure;
    if (policy === 'close')
      this.unregister(client, CloseCode.TryAgainLater, CloseReason.Backpressure);
    this.#emit('drop', client, 'backpressure');
  }

  #startBeat(): void {
    const { interval } = this.#options.heartbeat;
    if (this.#beat || interval === 0) return;
    // One timer for every client; unref'd so it never keeps the process alive on its own.
    this.#beat = setInterval(() => this.#sweep(), interval).unref();
  }

  #stopBeat(): void {
    clearInterval(this.#beat);
    this.#beat = undefined;
  }

  #sweep(): void {
    for (const client of this.#registry.values()) {
      const conn = client[kConn];
      // A client paused by the rate limit cannot be heard: its pong waits unread until the window ends.
      if (!client[kAlive] && !client[kRate]?.resume) {
        this.#remove(client, 1006, CloseReason.HeartbeatTimeout);
        conn.terminate();
        continue;
      }
      client[kAlive] = false;
      conn.ping();
    }
  }

  #report(err: unknown, client?: Client<Data>): void {
    this.#counters.errors++;
    const error = err instanceof Error ? err : new Error(describe(err), { cause: err });
    this.#options.logger.error?.({ err: error, clientId: client?.id }, 'wshub: error');
    this.#emit('error', error, client);
  }

  // A throwing listener must not corrupt the registry or escape into ws's event loop.
  #emit<E extends keyof ManagerEvents<Data>>(
    event: E,
    ...args: Parameters<ManagerEvents<Data>[E]>
  ): void {
    try {
      (this.emit as (e: E, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.#options.logger.error?.({ err, event }, 'wshub: an event listener threw');
    }
  }
}

// String() throws for a null-prototype object; a handler may throw anything.
function describe(v: unknown): string {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === 'function';
}

function checkRoom(room: unknown): void {
  if (typeof room !== 'string' || room === '') {
    throw new TypeError(
      `room must be a non-empty string, got ${JSON.stringify(room) ?? String(room)}`,
    );
  }
  if (room.length > MAX_ROOM_LENGTH) {
    throw new RangeError(
      `room name must be at most ${MAX_ROOM_LENGTH} characters, got ${room.length}`,
    );
  }
}

function checkTarget(target: Target | undefined): void {
  if (target === undefined) return;
  if (typeof target !== 'object' || target === null)
    throw new TypeError('broadcast target must be an object');
  for (const key of ['to', 'rooms', 'except'] as const) {
    const list = target[key];
    if (list !== undefined && !(Array.isArray(list) && list.every((x) => typeof x === 'string'))) {
      throw new TypeError(`broadcast target.${key} must be an array of strings`);
    }
  }
  for (const room of target.rooms ?? []) {
    if (room.length > MAX_ROOM_LENGTH) {
      throw new RangeError(
        `room name must be at most ${MAX_ROOM_LENGTH} characters, got ${room.length}`,
      );
    }
  }
}

// ws throws on these inside close(); check first so the registry is never half-updated.
function assertClose(code: number, reason: string): void {
  const valid =
    code === 1000 ||
    (code >= 1001 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999);
  if (!Number.isInteger(code) || !valid)
    throw new RangeError(`invalid close code ${code}: use 1000, 1001-1014 or 3000-4999`);
  if (Buffer.byteLength(reason) > 123)
    throw new RangeError('close reason must be at most 123 bytes');
}

/**
 * Creates a hub: the registry of clients, action dispatch and fan-out. Mount it with
 * `handle(server, path)`.
 *
 * @throws TypeError / RangeError for a bad option or an action key that does not round-trip
 * @example
 * const hub = createManager({
 *   actions: {
 *     chatSend(data: { text: string }, ctx) {
 *       ctx.hub.broadcast('chat_message', { from: ctx.client.id, text: data.text });
 *       return { ok: true };
 *     },
 *   },
 * });
 * hub.handle(server, '/ws');
 */
export function createManager<Schemas = Record<string, never>, Data = undefined>(
  options: ManagerOptions<Schemas, Data> = {},
): Manager<Data> {
  return new Manager<Data>(options);
}
