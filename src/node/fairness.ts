// Per-turn fairness: each socket has TURN_BUDGET messages per loop turn; past it the socket is
// paused and what it had already sent waits in a backlog, drained TURN_BUDGET per turn, so a client
// that pipelines thousands of requests in one TCP write takes turns with everyone else.
import { HELD_BY_BACKLOG, type Message, type WsConnection } from './ws-connection.js';

/**
 * Messages one socket may have handled per loop turn. (ws's own `allowSynchronousEvents: false`
 * would allow one message per turn: in the bench it halved a pipelining client's throughput, and
 * it reaches only the hub's own upgrades, not adopted sockets.)
 */
export const TURN_BUDGET = 16;

/** Where a message goes once its turn has come. */
export interface Receiver {
  deliver(conn: WsConnection, msg: Message): void;
}

export class Turns {
  readonly #receiver: Receiver;
  // A turn ends with a setImmediate scheduled by its first message (one per loop turn, not per
  // message); `touched` are the sockets with messages handled in it, `waiting` those with a backlog.
  #turnEnding = false;
  #touched: WsConnection[] = [];
  #waiting: WsConnection[] = [];

  constructor(receiver: Receiver) {
    this.#receiver = receiver;
  }

  /** A message from a registered socket: delivered now within its budget, else kept for later turns. */
  take(conn: WsConnection, msg: Message): void {
    if (conn.backlog) return void conn.backlog.messages.push(msg);
    if (conn.handled++ === 0) {
      this.#touched.push(conn);
      this.#endTurnSoon();
    }
    if (conn.handled <= TURN_BUDGET) return this.#receiver.deliver(conn, msg);
    // ws hands over every message of a TCP read at once, pause or not: keep the rest for later turns.
    conn.backlog = { messages: [msg], head: 0 };
    conn.hold(HELD_BY_BACKLOG);
    this.#waiting.push(conn);
  }

  #endTurnSoon(): void {
    if (this.#turnEnding) return;
    this.#turnEnding = true;
    setImmediate(() => this.#endTurn());
  }

  #endTurn(): void {
    this.#turnEnding = false;
    for (const conn of this.#touched) conn.handled = 0;
    this.#touched = [];
    const ready = this.#waiting;
    this.#waiting = [];
    for (const conn of ready) this.#drainBacklog(conn);
  }

  /** Delivers up to TURN_BUDGET of a socket's backlog (its share of the new turn); reads again once it is empty. */
  #drainBacklog(conn: WsConnection): void {
    const backlog = conn.backlog;
    if (!backlog) return; // let go meanwhile
    const { messages } = backlog;
    this.#touched.push(conn);
    this.#endTurnSoon();
    while (backlog.head < messages.length && conn.handled < TURN_BUDGET) {
      if (conn.backlog !== backlog || !conn.client) return;
      conn.handled++;
      this.#receiver.deliver(conn, messages[backlog.head++]!);
    }
    if (conn.backlog !== backlog) return;
    if (backlog.head < messages.length) return void this.#waiting.push(conn);
    conn.backlog = undefined;
    conn.release(HELD_BY_BACKLOG);
  }
}
