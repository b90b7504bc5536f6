// Public types shared by several modules.
import type { IncomingMessage } from 'node:http';
import type { AdapterFactory } from './adapter.js';
import type { Client } from './client.js';
import type { Manager } from './manager.js';
import type { RequestId } from './protocol.js';
import type { StandardSchemaV1 } from './standard-schema.js';

/** What a handler receives besides its `data`. */
export interface ActionContext<Data = unknown> {
  /** The client that sent the message. */
  readonly client: Client<Data>;
  /** The manager, for pushes: `ctx.hub.broadcast(...)`. */
  readonly hub: Manager<Data>;
  /** The wire code of the message, e.g. `'chat_send'`. */
  readonly actioncode: string;
  /** The request id the client sent, echoed in the reply; `undefined` if none. */
  readonly id: RequestId | undefined;
  /** The whole decoded message, for fields wshub does not interpret (the seed's `token`, `company`). */
  readonly message: Readonly<Record<string, unknown>>;
}

// A schema's output type; `any` where there is no schema (the handler annotates `data` itself).
type Infer<S> = S extends StandardSchemaV1<any, infer O> ? O : any; // eslint-disable-line @typescript-eslint/no-explicit-any -- no schema: the handler annotates data

// The one deliberate `any`: method syntax makes the parameter bivariant, so the SPEC's style
// `chatSend(data: { text: string }, ctx) {…}` type-checks without a schema.
type PlainAction<Data> = {
  bivariant(data: any, ctx: ActionContext<Data>): unknown; // eslint-disable-line @typescript-eslint/no-explicit-any -- the one deliberate any (bivariant data)
}['bivariant'];

/** An action object: with a Standard Schema v1 `schema`, `data` is typed from it (and validated). */
export interface SchemaAction<Schema, Data = unknown> {
  /** Any Standard Schema v1 validator (zod, valibot, arktype). Invalid data gets code 1. */
  schema?: Schema;
  /** Runs with the validated data (the raw `data` without a schema); its awaited return value becomes the reply's `data`. */
  handler: (data: Infer<Schema>, ctx: ActionContext<Data>) => unknown;
  /** Honour the client's `is_broadcast` / `client_ids` for this action. @default the manager's `clientFanout` */
  fanout?: boolean | undefined;
}

/** An action without a schema that still sets `fanout`: `{ handler, fanout: true }`. */
export type FanoutAction<Data = unknown> = SchemaAction<undefined, Data>;

/**
 * The actions map: camelCase keys, each a handler `(data, ctx) => result` or
 * `{ schema, handler, fanout? }`. The wire code of key `chatSend` is `chat_send`.
 */
// One object form with an optional `schema`, not two: TypeScript gives a handler in a union of
// object forms no contextual signature (their `data` parameters differ), so `data` would be
// implicitly `any` instead of inferred from the schema.
export type Actions<Schemas, Data = unknown> = {
  [K in keyof Schemas]: PlainAction<Data> | SchemaAction<Schemas[K], Data>;
};

/** Who a broadcast reaches. `to` and `rooms` add up; `except` removes; neither `to` nor `rooms` means everyone. */
export interface Target {
  /** Client ids. */
  to?: readonly string[] | undefined;
  /** Room names; a client in several of them gets the message once. */
  rooms?: readonly string[] | undefined;
  /** Client ids left out. */
  except?: readonly string[] | undefined;
}

/** Counters since the manager was created. */
export interface Stats {
  /** Clients connected to this node now. */
  clients: number;
  /** Messages received from connected clients, valid or not (refused by `rateLimit` included). */
  messagesIn: number;
  /** Frames queued for a client (one broadcast to 10 clients counts 10). */
  messagesOut: number;
  /** Message payload bytes received from clients. */
  bytesIn: number;
  /** Bytes written for clients, WebSocket frame headers included. */
  bytesOut: number;
  /** Frames not delivered because of backpressure (policy `'drop'`). */
  dropped: number;
  /** Handler failures and socket errors. */
  errors: number;
}

/** pino- or console-style logger; every method optional. */
export interface Logger {
  /** Called pino-style, `(fields, message)`: e.g. an upgrade that `authenticate` refused. */
  debug?(...args: unknown[]): void;
  /** Called pino-style, `(fields, message)`. */
  info?(...args: unknown[]): void;
  /** Called pino-style, `(fields, message)`. */
  warn?(...args: unknown[]): void;
  /** Called pino-style, `(fields, message)`, with `fields.err`: handler failures, socket and broker errors. */
  error?(...args: unknown[]): void;
}

/** Options of {@link createManager}. Sizes are in bytes, durations in ms. */
export interface ManagerOptions<Schemas = Record<string, unknown>, Data = undefined> {
  /** The actions clients can call. `heartBeat` is built in (replies `true`) unless defined here. @default {} */
  actions?: Actions<Schemas, Data> | undefined;
  /**
   * Checks an upgrade before any WebSocket exists. Its result becomes `client.data`;
   * `false`, a throw or a rejection refuses the upgrade with HTTP 401.
   * @default undefined (every upgrade is accepted; `client.data` is `undefined`)
   */
  authenticate?: ((req: IncomingMessage) => Data | false | Promise<Data | false>) | undefined;
  /** How long `authenticate` may take before the upgrade is refused with 401. @default 10000 */
  authenticateTimeout?: number | undefined;
  /** Supplies a client's id; an id already connected is refused with HTTP 409. @default nanoid() */
  id?: ((req: IncomingMessage) => string) | undefined;
  /**
   * Cross-origin browser upgrades admitted: a list of origins (`'https://app.example.com'`, or
   * `'*'` for any) or a function. Same-origin and Origin-less upgrades always pass.
   * @default [] (cross-origin refused with HTTP 403)
   */
  allowOrigin?: readonly string[] | ((origin: string, req: IncomingMessage) => boolean) | undefined;
  /**
   * Subprotocols accepted; the first the client offers that is listed wins, and an offer with
   * none of them is refused with HTTP 400. Offering none is fine.
   * @default undefined (no check: `ws` selects the client's first offer)
   */
  protocols?: readonly string[] | undefined;
  /** Largest inbound message; bigger closes the connection with 1009. @default 1048576 (1 MiB) */
  maxPayload?: number | undefined;
  /**
   * Most frames (fragments) one message may arrive in; more closes the connection with 1008.
   * Browsers never fragment; Go's gorilla/websocket splits a 1 MiB message into 256. Each held
   * fragment costs ~110 bytes of heap besides its data, so this bounds what a peer that never
   * finishes its message can pin (~110 KiB at the default). Applies to upgrades the hub serves;
   * a socket adopted with `register()` keeps its own server's setting.
   * @default 1024
   */
  maxFragments?: number | undefined;
  /**
   * Most TCP reads the WebSocket parser may hold for one unfinished frame; more closes the
   * connection with 1008. Each costs ~200 bytes of heap besides its data, so this bounds a peer
   * that dribbles a frame one byte per TCP segment (~400 KiB at the default). The default lets a
   * `maxPayload` message arrive in 512-byte reads. Applies to upgrades the hub serves; a socket
   * adopted with `register()` keeps its own server's setting.
   * @default max(1024, ceil(maxPayload / 512)): 2048 with the default maxPayload
   */
  maxBufferedChunks?: number | undefined;
  /**
   * ms a closing socket has to complete the close handshake (answer the close frame and end TCP)
   * before it is terminated. Until then it counts toward `maxClients`, and nothing it sends is
   * read by the hub. `ws` would wait 30 s.
   * @default 5000
   */
  closeTimeout?: number | undefined;
  /**
   * Upgrades past this many sockets get HTTP 503. Closing sockets count until their TCP
   * connection is gone (at most `closeTimeout`).
   * @default Infinity
   */
  maxClients?: number | undefined;
  /** Rooms one client may be in; `hub.join()` past it throws a RangeError. @default 1000 */
  maxRoomsPerClient?: number | undefined;
  /** Protocol-level ping every `interval` ms; `false` turns liveness checks off. @default { interval: 30000 } */
  heartbeat?:
    | {
        /** ms between pings; a client that has not answered by the next one is terminated. @default 30000 */
        interval?: number | undefined;
      }
    | false
    | undefined;
  /**
   * What happens when more than `highWaterMark` bytes are queued for one client:
   * `'close'` closes it with 1013, `'drop'` skips the frame and emits `drop`.
   * @default { highWaterMark: 1048576, policy: 'close' }
   */
  backpressure?:
    | {
        /** Bytes buffered for one client above which `policy` applies. @default 1048576 (1 MiB) */
        highWaterMark?: number | undefined;
        /** `'close'`: close with 1013; `'drop'`: skip the frame and emit `drop`. @default 'close' */
        policy?: 'close' | 'drop' | undefined;
      }
    | undefined;
  /**
   * At most `messages` inbound messages per `interval` ms per client, checked before a message is
   * parsed. An excess one gets code 429 unparsed (its `actioncode` and `id` are echoed only if it
   * is at most 512 bytes) and the client is not read again until its window ends. Refusals add
   * up over consecutive windows that each went over the limit; at `messages` of them the client
   * is closed with 1008.
   * @default undefined (no limit)
   */
  rateLimit?:
    | {
        /** Messages admitted per window, per client. */
        messages: number;
        /** Window length in ms. */
        interval: number;
      }
    | undefined;
  /** Honour clients' `is_broadcast` / `client_ids` for every action (else per action's `fanout`). @default false */
  clientFanout?: boolean | undefined;
  /** Cluster adapter, e.g. `createRedisAdapter(...)` from `wshub/redis`. @default in-memory */
  adapter?: AdapterFactory | undefined;
  /** Where wshub logs. @default silent */
  logger?: Logger | undefined;
}

/** The manager's events (eventemitter3). */
export interface ManagerEvents<Data = unknown> {
  /** A client is registered; `req` is the upgrade request (`undefined` for `register()`). */
  connection: (client: Client<Data>, req: IncomingMessage | undefined) => void;
  /** A client is gone (already out of `hub.clients` and its rooms), with the close code and reason. */
  disconnect: (client: Client<Data>, code: number, reason: string) => void;
  /** A handler failed, a socket errored or the broker failed; also sent to the logger, never thrown. */
  error: (err: Error, client?: Client<Data>) => void;
  /** A frame was not delivered to `client` because of backpressure (policy `'drop'`). */
  drop: (client: Client<Data>, reason: 'backpressure') => void;
}
