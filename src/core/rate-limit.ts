// The per-client rate limit: a fixed window, one clock read per message. Its state lives here, one
// entry per client that has sent a message since the limit was configured, and goes with the client.
import { kConn, type Client } from './client.js';

/** A message within the limit, one refused with 429, or the refusal that closes the client. */
export type Verdict = 'admit' | 'refuse' | 'close';

interface Window {
  /** when the window started (ms, monotonic) */
  start: number;
  /** messages in it */
  count: number;
  /** refusals carried over from consecutive windows over the limit */
  rejected: number;
  /** resumes reading when a paused window ends */
  resume: NodeJS.Timeout | undefined;
}

/**
 * At most `messages` per `interval` ms per client. A refused message is answered 429 (by the
 * caller) and the client's socket is paused until its window ends; refusals add up over
 * consecutive windows that each went over the limit, and at `messages` of them the verdict is
 * `'close'` (the caller closes with 1008).
 */
export class RateLimiter {
  readonly #messages: number;
  readonly #interval: number;
  readonly #windows = new Map<Client<unknown>, Window>();

  constructor(limit: { readonly messages: number; readonly interval: number }) {
    this.#messages = limit.messages;
    this.#interval = limit.interval;
  }

  admit(client: Client<unknown>): Verdict {
    const messages = this.#messages;
    const interval = this.#interval;
    let w = this.#windows.get(client);
    if (!w) this.#windows.set(client, (w = { start: 0, count: 0, rejected: 0, resume: undefined }));
    const now = performance.now();
    if (now - w.start >= interval) {
      // A window within the limit, or a quiet one in between, forgives earlier refusals.
      if (w.count <= messages || now - w.start >= 2 * interval) w.rejected = 0;
      w.start = now;
      w.count = 0;
    }
    if (++w.count <= messages) return 'admit';
    if (++w.rejected >= messages) return 'close';
    if (!w.resume) this.#pause(client, w, w.start + interval - now);
    return 'refuse';
  }

  /** The client is gone: its window and timer with it. */
  forget(client: Client<unknown>): void {
    clearTimeout(this.#windows.get(client)?.resume);
    this.#windows.delete(client);
  }

  #pause(client: Client<unknown>, w: Window, ms: number): void {
    const conn = client[kConn];
    conn.pause(); // what the client sends meanwhile waits in its TCP buffers, unread
    w.resume = setTimeout(() => {
      // The window is over (a timer may fire a hair early by performance.now()): the next one
      // starts now, carrying this one's refusals.
      w.start = performance.now();
      w.count = 0;
      w.resume = undefined;
      conn.resume();
    }, ms);
  }
}
