// The ws + node:http edge: upgrade routing and checks, and Connection over a `ws` WebSocket.
import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { nanoid } from 'nanoid';
import { WebSocket, WebSocketServer, type ServerOptions } from 'ws';
import { kOpen, type Client, type Connection } from './client.js';
import { corkedWrite, payloadOf, rawSocket, remoteAddressOf, senderIdle, wireOf } from './frame.js';
import type { RegisterInit, TransportHost } from './manager.js';
import type { Frame } from './protocol.js';

export interface Transport {
  handle(server: Server | HttpsServer, path: string): () => void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  register(ws: WebSocket, init: RegisterInit<unknown>): Client<unknown>;
  /** Resolves once every socket has closed, terminating those still open after `timeout` ms. */
  drain(timeout: number): Promise<void>;
  detachAll(): void;
}

type Message = Buffer | ArrayBuffer | Buffer[];

/**
 * Messages one socket may have handled per loop turn. Past it the socket is paused and what it
 * had already sent waits in a backlog, drained TURN_BUDGET per turn, so a client that pipelines
 * thousands of requests in one TCP write takes turns with everyone else. (ws's own
 * `allowSynchronousEvents: false` would allow one message per turn: in the bench it halved a
 * pipelining client's throughput, and it reaches only the hub's own upgrades, not adopted sockets.)
 */
export const TURN_BUDGET = 16;

// Why a socket is paused; it reads again only once no reason is left.
const HELD_BY_HOST = 1; // the rate limit
const HELD_BY_BACKLOG = 2; // messages past the turn budget are waiting

/** Messages read past the turn budget, oldest at `head`; the socket is paused while any wait. */
interface Backlog {
  readonly messages: Message[];
  head: number;
}

/** A transport's closing sockets and their termination timers (kept here, not per socket). */
interface Closing {
  readonly timeout: number;
  readonly timers: Map<WsConnection, NodeJS.Timeout>;
}

// Every field here is paid by every idle connection (heap per connection is a bench target), so
// state that only some sockets need lives elsewhere: a backlog object, the transport's `closing`.
class WsConnection implements Connection {
  client: Client<unknown> | undefined;
  /** Messages handled this loop turn; 0 until the first, which puts the socket on `touched`. */
  handled = 0;
  backlog: Backlog | undefined = undefined;
  readonly #ws: WebSocket;
  readonly #raw: Socket | undefined;
  readonly #closing: Closing;
  #held = 0;

  constructor(
    ws: WebSocket,
    readonly remoteAddress: string | undefined,
    closing: Closing,
  ) {
    this.#ws = ws;
    this.#raw = rawSocket(ws);
    this.#closing = closing;
  }

  get protocol(): string {
    return this.#ws.protocol;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  send(frame: Frame): number {
    const ws = this.#ws;
    if (ws.readyState !== WebSocket.OPEN) return 0;
    const wire = wireOf(frame);
    if (this.#raw && senderIdle(ws)) corkedWrite(this.#raw, wire);
    else ws.send(payloadOf(wire), { binary: false });
    return wire.length;
  }

  ping(): void {
    try {
      this.#ws.ping();
    } catch {
      // not open any more: the sweep terminates it next round
    }
  }

  pause(): void {
    this.hold(HELD_BY_HOST);
  }

  resume(): void {
    this.release(HELD_BY_HOST);
  }

  hold(reason: number): void {
    if (this.#held === 0) this.#ws.pause();
    this.#held |= reason;
  }

  release(reasons: number): void {
    if (!(this.#held & reasons)) return;
    this.#held &= ~reasons;
    if (this.#held === 0) this.#ws.resume();
  }

  close(code: number, reason: string): void {
    try {
      this.#ws.close(code, reason);
    } catch {
      this.#ws.terminate();
    }
    this.letGo();
  }

  /**
   * The hub is done with this socket: its backlog is dropped, and it is terminated unless its
   * TCP connection is gone within closeTimeout. (`ws` bounds closes with its own timer only on
   * the hub's own WebSocketServer; a socket adopted with register() has its server's, 30 s by
   * default.) `ws` reads on, paused or not before, so the peer's answer ends the handshake at
   * once; the hub drops whatever else it sends.
   */
  letGo(): void {
    this.backlog = undefined;
    this.release(HELD_BY_HOST | HELD_BY_BACKLOG);
    const { timers, timeout } = this.#closing;
    if (!timers.has(this))
      timers.set(this, setTimeout(() => this.#ws.terminate(), timeout).unref());
  }

  terminate(): void {
    this.backlog = undefined;
    this.#ws.terminate();
  }

  /** TCP is gone. */
  ended(): void {
    this.backlog = undefined;
    const { timers } = this.#closing;
    clearTimeout(timers.get(this));
    timers.delete(this);
  }
}

/** Refuses an upgrade with an HTTP status before any WebSocket exists (cf. ws's abortHandshake). */
function refuse(socket: Duplex, status: number, message = STATUS_CODES[status] ?? ''): void {
  if (!socket.writable || socket.destroyed) return void socket.destroy();
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
  );
}

function pathOf(url = '/'): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

// One 'upgrade' listener per server, shared by every manager mounted on it, so an upgrade to a
// path nobody serves can be answered with 404 instead of hanging.
const routes = new WeakMap<object, Map<string, Transport>>();

function onUpgrade(this: Server, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const transport = routes.get(this)?.get(pathOf(req.url));
  if (transport) return transport.handleUpgrade(req, socket, head);
  // Another listener may serve this path; only when we are alone is nobody going to answer.
  if (this.listenerCount('upgrade') === 1) refuse(socket, 404);
}

function toBuffer(data: Message): Buffer {
  if (Buffer.isBuffer(data)) return data;
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
}

/** The close code ws sends for a protocol violation it reports as `err.code` (ws/lib/receiver.js). */
function violationCode(err: Error): number {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return 0;
  if (
    code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ||
    code === 'WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH'
  )
    return 1009;
  if (code === 'WS_ERR_INVALID_UTF8') return 1007;
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') return 1008;
  return 1002;
}

/**
 * Whether Node may have dropped some of the request's headers: it keeps at most
 * `server.maxHeadersCount` (2,000 raw entries, i.e. 1,000 headers, when unset; 0 means no limit)
 * and silently drops the rest.
 */
function headersTruncated(req: IncomingMessage): boolean {
  const max = (req.socket as Socket & { server?: { maxHeadersCount?: number | null } }).server
    ?.maxHeadersCount;
  const entries = typeof max === 'number' ? max * 2 : 2000;
  return entries > 0 && req.rawHeaders.length >= entries;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`authenticate did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export function createTransport(host: TransportHost): Transport {
  const { options } = host;
  const chosen = new WeakMap<IncomingMessage, string>();
  const settings: ServerOptions & { closeTimeout: number } = {
    noServer: true,
    clientTracking: false,
    maxPayload: options.maxPayload,
    maxFragments: options.maxFragments,
    maxBufferedChunks: options.maxBufferedChunks,
    closeTimeout: options.closeTimeout, // ws 8.23; not in @types/ws yet
    perMessageDeflate: false,
    ...(options.protocols && {
      handleProtocols: (_: Set<string>, req: IncomingMessage) => chosen.get(req) ?? false,
    }),
  };
  const wss = new WebSocketServer(settings);
  const open = new Set<WsConnection>();
  const detachers = new Set<() => void>();
  // The socket's connection, and the mark that it is adopted. Per transport, so a socket
  // registered with two managers keeps one connection in each.
  const kConnection = Symbol('wshub.connection');
  type Adopted = WebSocket & { [kConnection]: WsConnection };
  let pending = 0; // upgrades between their checks and their WebSocket
  let idle: (() => void) | undefined;
  const closing: Closing = { timeout: options.closeTimeout, timers: new Map() };
  // Fairness: a turn ends with a setImmediate scheduled by its first message (one per loop turn,
  // not per message); `touched` are the sockets with messages handled in it, `waiting` those
  // with a backlog.
  let turnEnding = false;
  let touched: WsConnection[] = [];
  let waiting: WsConnection[] = [];

  function sameOrigin(origin: string, req: IncomingMessage): boolean {
    try {
      return new URL(origin).host.toLowerCase() === (req.headers.host ?? '').toLowerCase();
    } catch {
      return false;
    }
  }

  /** HTTP status refusing this upgrade, or 0 to go on. Synchronous checks first, cheapest first. */
  function check(req: IncomingMessage): number {
    if (!host.accepting) return 503;
    // Closing sockets count until their TCP connection is gone, so kicked clients cannot pile up.
    if (open.size + pending >= options.maxClients) return 503;
    // Node drops headers past server.maxHeadersCount; an Origin among them would go unchecked.
    if (headersTruncated(req)) return 431;
    const origin = req.headers.origin;
    if (origin !== undefined && !sameOrigin(origin, req)) {
      let allowed = false;
      try {
        allowed = options.allowOrigin?.(origin, req) === true;
      } catch (err) {
        host.error(err);
      }
      if (!allowed) return 403;
    }
    const offered = req.headers['sec-websocket-protocol'];
    if (options.protocols && offered !== undefined) {
      const wanted = offered.split(',').map((p) => p.trim());
      const pick = wanted.find((p) => options.protocols!.includes(p));
      if (pick === undefined) return 400;
      chosen.set(req, pick);
    }
    return 0;
  }

  async function admit(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const status = check(req);
    if (status) return refuse(socket, status);
    pending++;
    let data: unknown;
    let id: string;
    try {
      if (options.authenticate) {
        try {
          data = await withTimeout(
            Promise.resolve(options.authenticate(req)),
            options.authenticateTimeout,
          );
        } catch (err) {
          options.logger.debug?.({ err }, 'wshub: authenticate refused an upgrade');
          data = false;
        }
        if (data === false) return refuse(socket, 401);
      }
      if (!host.accepting) return refuse(socket, 503);
      try {
        id = options.id ? options.id(req) : nanoid();
        if (typeof id !== 'string' || id === '')
          throw new TypeError(`options.id must return a non-empty string, got ${typeof id}`);
      } catch (err) {
        host.error(err);
        return refuse(socket, 500);
      }
      if (host.has(id)) return refuse(socket, 409, `client id "${id}" is already connected`);
    } finally {
      pending--;
    }
    if (socket.destroyed) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.removeListener('error', onEarlyError);
      if (host.has(id)) return ws.terminate(); // taken while the handshake completed
      adopt(ws, id, data, req.socket.remoteAddress, req);
    });
  }

  function adopt(
    ws: WebSocket,
    id: string,
    data: unknown,
    remoteAddress: string | undefined,
    req: IncomingMessage | undefined,
  ): Client<unknown> {
    const conn = new WsConnection(ws, remoteAddress, closing);
    (ws as Adopted)[kConnection] = conn;
    // First listener, before anything can fail: `ws` reports protocol violations (e.g. maxPayload
    // → 1009) as 'error', and an unlistened 'error' throws.
    ws.on('error', onError);
    ws.on('message', onMessage);
    ws.on('pong', onPong);
    ws.on('close', onClose);
    open.add(conn);
    conn.client = host.open(conn, id, data, req);
    return conn.client;
  }

  // One set of listeners for all sockets, finding the connection through the socket: closures
  // per socket cost ~280 bytes a client (heap snapshot at 2,000 clients).
  function onError(this: WebSocket, err: Error): void {
    const conn = (this as Adopted)[kConnection];
    host.error(err, conn.client);
    // ws has already sent the close frame for a protocol violation, but reports the close only
    // when TCP ends (as 1006, after its close timeout if the peer never answers): unregister now.
    const code = violationCode(err);
    if (!code) return;
    conn.letGo();
    if (conn.client) host.closed(conn.client, code, '');
  }

  function onMessage(this: WebSocket, msg: Message): void {
    const conn = (this as Adopted)[kConnection];
    // Let go (unregistered, closing): nothing it sends is counted, decoded or dispatched.
    if (!conn.client![kOpen]) return;
    if (conn.backlog) return void conn.backlog.messages.push(msg);
    if (conn.handled++ === 0) {
      touched.push(conn);
      endTurnSoon();
    }
    if (conn.handled <= TURN_BUDGET) return deliver(conn, msg);
    // ws hands over every message of a TCP read at once, pause or not: keep the rest for later turns.
    conn.backlog = { messages: [msg], head: 0 };
    conn.hold(HELD_BY_BACKLOG);
    waiting.push(conn);
  }

  function deliver(conn: WsConnection, msg: Message): void {
    try {
      host.receive(conn.client!, toBuffer(msg));
    } catch (err) {
      host.error(err, conn.client);
    }
  }

  function endTurnSoon(): void {
    if (turnEnding) return;
    turnEnding = true;
    setImmediate(endTurn);
  }

  function endTurn(): void {
    turnEnding = false;
    for (const conn of touched) conn.handled = 0;
    touched = [];
    const ready = waiting;
    waiting = [];
    for (const conn of ready) drainBacklog(conn);
  }

  /** Handles up to TURN_BUDGET of a socket's backlog (as its share of the new turn); reads from it again once it is empty. */
  function drainBacklog(conn: WsConnection): void {
    const backlog = conn.backlog;
    if (!backlog) return; // let go meanwhile
    const { messages } = backlog;
    touched.push(conn);
    endTurnSoon();
    while (backlog.head < messages.length && conn.handled < TURN_BUDGET) {
      if (conn.backlog !== backlog || !conn.client![kOpen]) return;
      conn.handled++;
      deliver(conn, messages[backlog.head++]!);
    }
    if (conn.backlog !== backlog) return;
    if (backlog.head < messages.length) return void waiting.push(conn);
    conn.backlog = undefined;
    conn.release(HELD_BY_BACKLOG);
  }

  function onPong(this: WebSocket): void {
    host.pong((this as Adopted)[kConnection].client!);
  }

  function onClose(this: WebSocket, code: number, reason: Buffer): void {
    const conn = (this as Adopted)[kConnection];
    conn.ended();
    open.delete(conn);
    host.closed(conn.client!, code, reason.toString());
    if (open.size === 0) idle?.();
  }

  function onEarlyError(this: Duplex): void {
    this.destroy(); // ECONNRESET while authenticating: nothing to answer
  }

  const transport: Transport = {
    handle(server, path) {
      if (typeof path !== 'string' || !path.startsWith('/')) {
        throw new TypeError(`path must be a string starting with "/", got ${JSON.stringify(path)}`);
      }
      if (typeof (server as Partial<Server> | null)?.on !== 'function') {
        throw new TypeError('handle() needs an http.Server or https.Server');
      }
      let table = routes.get(server);
      if (table?.has(path)) throw new Error(`a manager already handles ${path} on this server`);
      if (!table) {
        table = new Map();
        routes.set(server, table);
        server.on('upgrade', onUpgrade);
      }
      table.set(path, transport);
      const detach = (): void => {
        if (!detachers.delete(detach)) return;
        table.delete(path);
        if (table.size > 0) return;
        routes.delete(server);
        server.off('upgrade', onUpgrade);
      };
      detachers.add(detach);
      return detach;
    },

    handleUpgrade(req, socket, head) {
      socket.on('error', onEarlyError);
      admit(req, socket, head).catch((err: unknown) => {
        host.error(err);
        refuse(socket, 500);
      });
    },

    register(ws, init) {
      if (
        !(ws instanceof WebSocket) &&
        typeof (ws as Partial<WebSocket> | null)?.on !== 'function'
      ) {
        throw new TypeError('register() needs a ws WebSocket');
      }
      if (ws.readyState !== WebSocket.OPEN) throw new Error('register() needs an open WebSocket');
      if (kConnection in ws) throw new Error('this WebSocket is already registered');
      const id = init.id ?? nanoid();
      if (typeof id !== 'string' || id === '')
        throw new TypeError('register() init.id must be a non-empty string');
      if (host.has(id)) throw new Error(`client id "${id}" is already registered`);
      return adopt(ws, id, init.data, remoteAddressOf(ws), undefined);
    },

    drain(timeout) {
      if (open.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const conn of open) conn.terminate();
        }, timeout);
        idle = () => {
          clearTimeout(timer);
          idle = undefined;
          resolve();
        };
      });
    },

    detachAll() {
      for (const detach of [...detachers]) detach();
    },
  };
  return transport;
}
