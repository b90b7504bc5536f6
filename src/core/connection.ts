// The seam between the core and a transport (graphql-ws's opened()/closed() idea): what the core
// asks of a transport, per socket (Connection) and per manager (Transport), and what a transport
// is given in return (TransportHost). node/transport.ts implements the first two over `ws`; an
// in-memory test transport would implement them over nothing.
import type { IncomingMessage, Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Client } from './client.js';
import type { Resolved } from './options.js';
import type { Frame } from './protocol.js';

/** What the core needs from an open socket. */
export interface Connection {
  readonly protocol: string;
  readonly remoteAddress: string | undefined;
  /** Bytes queued for this peer and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** Queues a frame after every frame queued before it; returns the bytes queued. */
  send(frame: Frame): number;
  /**
   * Stops reading from the peer (what it sends waits in TCP buffers) until `resume()`. The
   * transport's liveness check leaves a paused peer alone: its pongs wait unread too.
   */
  pause(): void;
  resume(): void;
  /**
   * Starts the close handshake; the peer has the manager's `closeTimeout` to complete it before
   * the socket is terminated. Nothing it sends afterwards reaches the manager.
   */
  close(code: number, reason: string): void;
}

/** `register()`'s optional id and data. */
export interface RegisterInit<Data> {
  /** The client's id; one already connected throws. @default nanoid() */
  id?: string | undefined;
  /** Becomes `client.data` (what `authenticate` returns for an upgrade). @default undefined */
  data?: Data | undefined;
}

/** What the manager asks of its transport: the SPEC's `handle`/`handleUpgrade`/`register` and shutdown. */
export interface Transport {
  handle(server: Server | HttpsServer, path: string): () => void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  register(ws: WebSocket, init: RegisterInit<unknown>): Client<unknown>;
  /** Resolves once every socket has closed, terminating those still open after `timeout` ms. */
  drain(timeout: number): Promise<void>;
  /** Detaches from every server `handle()` attached to. */
  detachAll(): void;
}

/**
 * What a transport is given: the manager's options and registry. A transport calls `open` for a
 * new socket, `receive` per message, and `closed` once when a registered socket is gone without
 * the core having closed it (TCP ended, protocol violation, heartbeat timeout).
 */
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
  closed(client: Client<unknown>, code: number, reason: string): void;
  /** A socket or callback failed: `error` event and logger, never a throw. */
  reportError(err: unknown, client?: Client<unknown>): void;
}

/** Builds a manager's transport; `createManager` passes the `ws` one. */
export type TransportFactory = (host: TransportHost) => Transport;
