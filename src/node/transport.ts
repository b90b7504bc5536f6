// The ws + node:http edge: upgrades through upgrade.ts's guards into `ws` WebSockets, sockets
// adopted with register(), one set of socket listeners for all of them, and the drain at shutdown;
// fairness.ts takes turns between sockets, heartbeat.ts checks they are alive.
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { nanoid } from 'nanoid';
import { WebSocket, WebSocketServer, type ServerOptions } from 'ws';
import type { Client } from '../core/client.js';
import type { RegisterInit, Transport, TransportHost } from '../core/connection.js';
import { CloseCode, CloseReason } from '../core/errors.js';
import { remoteAddressOf } from './frame.js';
import { Heartbeat } from './heartbeat.js';
import { mount } from './mount.js';
import { authenticate, check, newId, refuse, type Gate } from './upgrade.js';
import { Turns, type Receiver } from './fairness.js';
import { WsConnection, type Message, type Pool } from './ws-connection.js';

/** Builds the `ws` transport of a manager (the default `TransportFactory`). */
export function createTransport(host: TransportHost): Transport {
  return new WsTransport(host);
}

class WsTransport implements Transport, Pool, Gate, Receiver {
  readonly options: TransportHost['options'];
  readonly closeTimeout: number;
  readonly closing = new Map<WsConnection, NodeJS.Timeout>();
  readonly chosen = new WeakMap<IncomingMessage, string>();
  readonly #host: TransportHost;
  readonly #wss: WebSocketServer;
  /** every adopted socket until its TCP connection is gone, closing ones included */
  readonly #open = new Set<WsConnection>();
  readonly #detachers = new Set<() => void>();
  readonly #heartbeat: Heartbeat<WsConnection>;
  readonly #listeners: Listeners;
  /** upgrades between their checks and their WebSocket */
  #pending = 0;
  /** sockets of registered clients */
  #registered = 0;
  #idle: (() => void) | undefined;
  readonly #turns = new Turns(this);

  constructor(host: TransportHost) {
    const { options } = host;
    this.#host = host;
    this.options = options;
    this.closeTimeout = options.closeTimeout;
    const settings: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxPayload,
      maxFragments: options.maxFragments,
      maxBufferedChunks: options.maxBufferedChunks,
      closeTimeout: options.closeTimeout, // ws 8.23; not in @types/ws yet
      perMessageDeflate: false,
      ...(options.protocols && {
        handleProtocols: (_: Set<string>, req: IncomingMessage) => this.chosen.get(req) ?? false,
      }),
    };
    this.#wss = new WebSocketServer(settings);
    this.#heartbeat = new Heartbeat(options.heartbeat.interval, this.#open, (conn) =>
      this.#expire(conn),
    );
    this.#listeners = listeners(this);
  }

  get accepting(): boolean {
    return this.#host.accepting;
  }

  get sockets(): number {
    return this.#open.size + this.#pending;
  }

  reportError(err: unknown, client?: Client<unknown>): void {
    this.#host.reportError(err, client);
  }

  handle(server: Server | HttpsServer, path: string): () => void {
    const unmount = mount(server, path, this);
    const detach = (): void => {
      if (this.#detachers.delete(detach)) unmount();
    };
    this.#detachers.add(detach);
    return detach;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', onEarlyError);
    this.#admit(req, socket, head).catch((err: unknown) => {
      this.reportError(err);
      refuse(socket, 500);
    });
  }

  register(ws: WebSocket, init: RegisterInit<unknown>): Client<unknown> {
    if (!(ws instanceof WebSocket) && typeof (ws as Partial<WebSocket> | null)?.on !== 'function') {
      throw new TypeError('register() needs a ws WebSocket');
    }
    if (ws.readyState !== WebSocket.OPEN) throw new Error('register() needs an open WebSocket');
    if (this.#listeners.key in ws) throw new Error('this WebSocket is already registered');
    const id = init.id ?? nanoid();
    if (typeof id !== 'string' || id === '') {
      throw new TypeError('register() init.id must be a non-empty string');
    }
    if (this.#host.has(id)) throw new Error(`client id "${id}" is already registered`);
    return this.#adopt(ws, id, init.data, remoteAddressOf(ws), undefined);
  }

  drain(timeout: number): Promise<void> {
    if (this.#open.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        for (const conn of this.#open) conn.terminate();
      }, timeout);
      this.#idle = () => {
        clearTimeout(timer);
        this.#idle = undefined;
        resolve();
      };
    });
  }

  detachAll(): void {
    for (const detach of [...this.#detachers]) detach();
  }

  released(_conn: WsConnection): void {
    if (--this.#registered === 0) this.#heartbeat.stop();
  }

  async #admit(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const status = check(req, this);
    if (status) return refuse(socket, status);
    const host = this.#host;
    this.#pending++;
    let data: unknown;
    let id: string;
    try {
      data = await authenticate(req, this.options);
      if (data === false) return refuse(socket, 401);
      if (!host.accepting) return refuse(socket, 503);
      try {
        id = newId(req, this.options);
      } catch (err) {
        this.reportError(err);
        return refuse(socket, 500);
      }
      if (host.has(id)) return refuse(socket, 409, `client id "${id}" is already connected`);
    } finally {
      this.#pending--;
    }
    if (socket.destroyed) return;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      socket.removeListener('error', onEarlyError);
      if (host.has(id)) return ws.terminate(); // taken while the handshake completed
      this.#adopt(ws, id, data, req.socket.remoteAddress, req);
    });
  }

  #adopt(
    ws: WebSocket,
    id: string,
    data: unknown,
    remoteAddress: string | undefined,
    req: IncomingMessage | undefined,
  ): Client<unknown> {
    const conn = new WsConnection(ws, remoteAddress, this);
    const on = this.#listeners;
    (ws as Adopted)[on.key] = conn;
    // First listener, before anything can fail: `ws` reports protocol violations (e.g. maxPayload
    // → 1009) as 'error', and an unlistened 'error' throws.
    ws.on('error', on.error);
    ws.on('message', on.message);
    ws.on('pong', on.pong);
    ws.on('close', on.close);
    this.#open.add(conn);
    const client = this.#host.open(conn, id, data, req);
    // Registered unless a 'connection' listener has closed it already.
    if (client.connected) {
      conn.client = client;
      this.#registered++;
      this.#heartbeat.start();
    }
    return client;
  }

  socketError(conn: WsConnection, err: Error): void {
    const { client } = conn;
    this.reportError(err, client);
    // ws has already sent the close frame for a protocol violation, but reports the close only
    // when TCP ends (as 1006, after its close timeout if the peer never answers): unregister now.
    const code = violationCode(err);
    if (!code) return;
    conn.letGo();
    if (client) this.#host.closed(client, code, '');
  }

  message(conn: WsConnection, msg: Message): void {
    // Let go (unregistered, closing): nothing it sends is counted, decoded or dispatched.
    if (conn.client) this.#turns.take(conn, msg);
  }

  socketClosed(conn: WsConnection, code: number, reason: Buffer): void {
    const { client } = conn;
    conn.ended();
    this.#open.delete(conn);
    if (client) this.#host.closed(client, code, reason.toString());
    if (this.#open.size === 0) this.#idle?.();
  }

  deliver(conn: WsConnection, msg: Message): void {
    conn.alive = true; // any message proves the peer alive, as the seed's heart_beat did
    try {
      this.#host.receive(conn.client!, toBuffer(msg));
    } catch (err) {
      this.reportError(err, conn.client);
    }
  }

  /** No sign of life for a whole heartbeat round: unregistered at once, then terminated. */
  #expire(conn: WsConnection): void {
    this.#host.closed(conn.client!, CloseCode.Abnormal, CloseReason.HeartbeatTimeout);
    conn.terminate();
  }
}

type Adopted = WebSocket & Record<symbol, WsConnection>;

interface Listeners {
  /** where a socket keeps its connection: per transport, so a socket registered with two managers keeps one in each */
  readonly key: symbol;
  error(this: WebSocket, err: Error): void;
  message(this: WebSocket, msg: Message): void;
  pong(this: WebSocket): void;
  close(this: WebSocket, code: number, reason: Buffer): void;
}

// One set of listeners for all of a transport's sockets, finding the connection through the
// socket: closures per socket cost ~280 bytes a client (heap snapshot at 2,000 clients).
function listeners(transport: WsTransport): Listeners {
  const key = Symbol('wshub.connection');
  const connOf = (ws: WebSocket): WsConnection => (ws as Adopted)[key]!;
  return {
    key,
    error(err) {
      transport.socketError(connOf(this), err);
    },
    message(msg) {
      transport.message(connOf(this), msg);
    },
    pong() {
      connOf(this).alive = true;
    },
    close(code, reason) {
      transport.socketClosed(connOf(this), code, reason);
    },
  };
}

function onEarlyError(this: Duplex): void {
  this.destroy(); // ECONNRESET while authenticating: nothing to answer
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
  ) {
    return CloseCode.MessageTooBig;
  }
  if (code === 'WS_ERR_INVALID_UTF8') return CloseCode.InvalidPayload;
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') return CloseCode.PolicyViolation;
  return CloseCode.ProtocolError;
}
