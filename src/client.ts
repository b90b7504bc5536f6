// A connected client: what handlers and users see, over a transport-agnostic Connection.
import { encode, Frame } from './protocol.js';
import { Code } from './errors.js';

/** What the core needs from an open socket; transport.ts implements it over `ws`. */
export interface Connection {
  readonly protocol: string;
  readonly remoteAddress: string | undefined;
  /** Bytes queued for this peer and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** Queues a frame after every frame queued before it; returns the bytes queued. */
  send(frame: Frame): number;
  ping(): void;
  /** Stops reading from the peer (what it sends waits in TCP buffers) until `resume()`. */
  pause(): void;
  resume(): void;
  /**
   * Starts the close handshake; the peer has the manager's `closeTimeout` to complete it before
   * the socket is terminated. Nothing it sends afterwards reaches the manager.
   */
  close(code: number, reason: string): void;
  terminate(): void;
}

/** The manager's side of a client: counters, backpressure and the registry. */
export interface ClientHost {
  readonly counters: { messagesOut: number; bytesOut: number };
  readonly highWaterMark: number;
  /** A frame did not fit under the high-water mark: apply the policy. */
  overflow(client: Client<any>): void; // eslint-disable-line @typescript-eslint/no-explicit-any -- any client data
  unregister(client: Client<any>, code: number, reason: string): boolean; // eslint-disable-line @typescript-eslint/no-explicit-any -- any client data
}

export const kPush = Symbol('wshub.push');
export const kOpen = Symbol('wshub.open');
export const kAlive = Symbol('wshub.alive');
export const kConn = Symbol('wshub.conn');
export const kRate = Symbol('wshub.rate');

/** A connected client. Create one with `hub.register()` or by a WebSocket upgrade, never directly. */
export class Client<Data = unknown> {
  /** Unique among this manager's clients (cluster-wide with nanoid ids). */
  readonly id: string;
  /** What `authenticate` returned (or `register`'s `init.data`). */
  data: Data;
  /** The rooms this client is in. Change them with `hub.join()` / `hub.leave()`. */
  readonly rooms: ReadonlySet<string> = new Set<string>();

  /** @internal */ [kOpen] = true;
  /** @internal */ [kAlive] = true;
  /**
   * @internal rate-limit window: its start (ms), messages in it, refusals carried over, and the
   * timer that resumes reading when a paused window ends; created on first use
   */
  [kRate]:
    | { start: number; count: number; rejected: number; resume: NodeJS.Timeout | undefined }
    | undefined = undefined;
  /** @internal */ readonly [kConn]: Connection;
  readonly #host: ClientHost;

  /** @internal */
  constructor(id: string, data: Data, conn: Connection, host: ClientHost) {
    // nanoid builds ids with `+=`, which V8 keeps as a chain of ~9 cons strings (~320 bytes per
    // client, for the client's lifetime); reading a char flattens it in place to ~40 bytes.
    id.charCodeAt(0);
    this.id = id;
    this.data = data;
    this[kConn] = conn;
    this.#host = host;
  }

  /** The peer's IP address, if the transport knows it. */
  get remoteAddress(): string | undefined {
    return this[kConn].remoteAddress;
  }

  /** The negotiated subprotocol, `''` if none. */
  get protocol(): string {
    return this[kConn].protocol;
  }

  /** Whether the client is still registered. */
  get connected(): boolean {
    return this[kOpen];
  }

  /**
   * Pushes `{code:0,msg:"success",actioncode,data}` to this client.
   * @returns whether the frame was queued (false once closed, or dropped by backpressure)
   * @throws TypeError if `data` cannot be encoded as JSON
   */
  send(actioncode: string, data: unknown): boolean {
    return this[kPush](new Frame(encodeOrThrow(actioncode, data)));
  }

  /** Closes and unregisters this client; the same as `hub.unregister(client, code, reason)`. */
  close(code?: number, reason?: string): void {
    this.#host.unregister(this, code ?? 1000, reason ?? '');
  }

  /** @internal Queues an encoded frame, applying backpressure. */
  [kPush](frame: Frame): boolean {
    if (!this[kOpen]) return false;
    const conn = this[kConn];
    const host = this.#host;
    if (conn.bufferedAmount > host.highWaterMark) {
      host.overflow(this);
      return false;
    }
    host.counters.bytesOut += conn.send(frame);
    host.counters.messagesOut++;
    return true;
  }
}

/** Encodes a push, turning JSON failures into a TypeError that names the actioncode. */
export function encodeOrThrow(actioncode: string, data: unknown): string {
  if (typeof actioncode !== 'string' || actioncode === '') {
    throw new TypeError(
      `actioncode must be a non-empty string, got ${JSON.stringify(actioncode) ?? String(actioncode)}`,
    );
  }
  try {
    return encode(Code.Success, 'success', actioncode, data);
  } catch (err) {
    throw new TypeError(
      `data for "${actioncode}" cannot be encoded as JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
