// Liveness: one ping sweep for every registered socket of a transport, every `interval` ms. A
// socket that has shown no sign of life (a pong or a message) since the last round is dead.
/** What the sweep needs of a socket. */
export interface Beating {
  /** A pong or a message arrived since the last round. */
  alive: boolean;
  /** Still a registered client's socket (not let go, not gone). */
  readonly registered: boolean;
  /** Paused by the core (the rate limit): its pongs wait unread, so it cannot be heard. */
  readonly held: boolean;
  ping(): void;
}

export class Heartbeat<S extends Beating> {
  readonly #interval: number;
  readonly #sockets: Iterable<S>;
  readonly #dead: (socket: S) => void;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param interval - ms between rounds; 0 turns liveness checks off
   * @param sockets - swept each round (unregistered ones are skipped)
   * @param dead - called for a registered socket silent for a whole round
   */
  constructor(interval: number, sockets: Iterable<S>, dead: (socket: S) => void) {
    this.#interval = interval;
    this.#sockets = sockets;
    this.#dead = dead;
  }

  /** Runs the sweep, if it is not running; one timer for every socket. */
  start(): void {
    if (this.#timer || this.#interval === 0) return;
    // unref'd so it never keeps the process alive on its own
    this.#timer = setInterval(() => this.#sweep(), this.#interval).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    for (const socket of this.#sockets) {
      if (!socket.registered) continue;
      if (!socket.alive && !socket.held) {
        this.#dead(socket);
        continue;
      }
      socket.alive = false;
      socket.ping();
    }
  }
}
