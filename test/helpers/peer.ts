// A `ws` client that records every frame it receives, verbatim and in order, for tests that compare
// a client's whole stream with a model's. Unlike TestClient it never takes frames out of the record.
import type { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { within } from './wait.ts';

export interface Closed {
  code: number;
  reason: string;
}

export class Peer {
  readonly ws: WebSocket;
  /** Every frame received, as text, in arrival order. */
  readonly frames: string[] = [];
  /** The close as this client saw it, once it has happened. */
  closedWith: Closed | undefined;
  /** The server's end of this connection, once the test has found it (for `serverCaughtUp`). */
  server: Socket | undefined;
  readonly opened: Promise<void>;
  readonly #watchers = new Set<() => void>();

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data) => {
      this.frames.push(data.toString());
      this.#notify();
    });
    this.ws.on('error', () => {}); // failures surface through `opened` and the close
    this.ws.on('close', (code, reason) => {
      this.closedWith = { code, reason: reason.toString() };
      this.#notify();
    });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('unexpected-response', (_req, res) =>
        reject(new Error(`HTTP ${res.statusCode}`)),
      );
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
  }

  /** Whether this client's side of the connection is still open (it may still send). */
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Resolves once `done()` holds, checked now and after every frame and the close. */
  until(done: () => boolean, ms: number, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    let watch!: () => void;
    const reached = new Promise<void>((resolve) => {
      watch = () => done() && resolve();
      this.#watchers.add(watch);
    });
    return within(reached, ms, what).finally(() => this.#watchers.delete(watch));
  }

  /** Resolves once the client has seen its connection close. */
  closed(ms: number, what: string): Promise<Closed> {
    return this.until(() => this.closedWith !== undefined, ms, what).then(() => this.closedWith!);
  }

  /**
   * Resolves once the server has read every byte this client has written, or has stopped reading
   * it (its socket is paused or gone). `ws` dispatches the messages of a chunk synchronously in
   * its 'data' listener, which runs before ours: once this resolves, the server has handled every
   * message this client sent (synchronous handlers included). Needed for a client that cannot
   * read a reply (a paused reader) or must not get one (a client the hub has let go).
   */
  serverCaughtUp(ms: number, what: string): Promise<void> {
    const server = this.server;
    if (!server) throw new Error(`${what}: the server side of this connection is unknown`);
    const written = (this.ws as unknown as { _socket: Socket })._socket.bytesWritten;
    const done = () =>
      server.bytesRead >= written || server.destroyed || server.readableFlowing === false;
    if (done()) return Promise.resolve();
    let watch!: () => void;
    const caughtUp = new Promise<void>((resolve) => {
      watch = () => done() && resolve();
      server.on('data', watch);
      server.on('close', watch);
    });
    return within(caughtUp, ms, what).finally(() => {
      server.off('data', watch);
      server.off('close', watch);
    });
  }

  /** Drops the connection without a close frame: FIN (`'terminate'`) or RST (`'reset'`). */
  drop(how: 'terminate' | 'reset'): void {
    if (how === 'terminate') return this.ws.terminate();
    const socket = (this.ws as unknown as { _socket?: Socket })._socket;
    if (socket && !socket.destroyed) socket.resetAndDestroy();
    else this.ws.terminate();
  }

  #notify(): void {
    for (const watch of this.#watchers) watch();
  }
}
