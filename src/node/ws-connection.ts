// A Connection over a `ws` WebSocket: writing frames, pausing for the core or for fairness, and the
// close handshake bounded by closeTimeout.
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import type { Client } from '../core/client.js';
import type { Connection } from '../core/connection.js';
import type { Frame } from '../core/protocol.js';
import { corkedWrite, payloadOf, rawSocket, senderIdle, wireOf } from './frame.js';
import type { Beating } from './heartbeat.js';

export type Message = Buffer | ArrayBuffer | Buffer[];

// Why a socket is paused; it reads again only once no reason is left.
const HELD_BY_HOST = 1; // the rate limit
export const HELD_BY_BACKLOG = 2; // messages past the turn budget are waiting

/** Messages read past the turn budget, oldest at `head`; the socket is paused while any wait. */
export interface Backlog {
  readonly messages: Message[];
  head: number;
}

/** What a transport shares with its connections (kept there, not per socket). */
export interface Pool {
  readonly closeTimeout: number;
  /** closing sockets and their termination timers */
  readonly closing: Map<WsConnection, NodeJS.Timeout>;
  /** `conn` no longer belongs to a registered client: the core let it go, or it is gone. */
  released(conn: WsConnection): void;
}

// Every field here is paid by every idle connection (heap per connection is a bench target), so
// state that only some sockets need lives elsewhere: a backlog object, the pool's `closing`.
export class WsConnection implements Connection, Beating {
  /** The registered client; undefined once the hub let it go or it is gone. */
  client: Client<unknown> | undefined = undefined;
  /** Messages handled this loop turn; 0 until the first, which puts the socket on `touched`. */
  handled = 0;
  backlog: Backlog | undefined = undefined;
  /** A pong or a message arrived since the last heartbeat round. */
  alive = true;
  readonly #ws: WebSocket;
  readonly #raw: Socket | undefined;
  readonly #pool: Pool;
  #held = 0;

  constructor(
    ws: WebSocket,
    readonly remoteAddress: string | undefined,
    pool: Pool,
  ) {
    this.#ws = ws;
    this.#raw = rawSocket(ws);
    this.#pool = pool;
  }

  get protocol(): string {
    return this.#ws.protocol;
  }

  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  get registered(): boolean {
    return this.client !== undefined;
  }

  get held(): boolean {
    return (this.#held & HELD_BY_HOST) !== 0;
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
    // Its pongs waited unread too: a full heartbeat round to be heard again.
    this.alive = true;
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
    this.#unregister();
    this.release(HELD_BY_HOST | HELD_BY_BACKLOG);
    const { closing, closeTimeout } = this.#pool;
    if (!closing.has(this)) {
      closing.set(this, setTimeout(() => this.#ws.terminate(), closeTimeout).unref());
    }
  }

  terminate(): void {
    this.#unregister();
    this.#ws.terminate();
  }

  /** TCP is gone. */
  ended(): void {
    this.#unregister();
    const { closing } = this.#pool;
    clearTimeout(closing.get(this));
    closing.delete(this);
  }

  #unregister(): void {
    this.backlog = undefined;
    if (this.client === undefined) return;
    this.client = undefined;
    this.#pool.released(this);
  }
}
