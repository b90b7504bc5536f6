// A connected client: what handlers and users see, over a transport-agnostic Connection.
import type { Connection } from './connection.js';
import { encodePush, Frame } from './protocol.js';
import { CloseCode } from './errors.js';

/** What a client asks of its manager: counters, backpressure and the registry. */
export interface ClientHost {
  readonly counters: { messagesOut: number; bytesOut: number };
  readonly highWaterMark: number;
  /** A frame did not fit under the high-water mark: apply the policy. */
  overflow(client: Client<unknown>): void;
  unregister(client: Client<unknown>, code: number, reason: string): boolean;
}

/** @internal */ export const kPush = Symbol('wshub.push');
/** @internal */ export const kOpen = Symbol('wshub.open');
/** @internal */ export const kConn = Symbol('wshub.conn');

/** A connected client. Create one with `hub.register()` or by a WebSocket upgrade, never directly. */
export class Client<Data = unknown> {
  /** Unique among this manager's clients (cluster-wide with nanoid ids). */
  readonly id: string;
  /** What `authenticate` returned (or `register`'s `init.data`). */
  data: Data;
  /** The rooms this client is in. Change them with `hub.join()` / `hub.leave()`. */
  readonly rooms: ReadonlySet<string> = new Set<string>();

  /** @internal whether it is registered; the manager clears it when it lets the client go */
  [kOpen] = true;
  /** @internal */
  readonly [kConn]: Connection;
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
    return this[kPush](new Frame(encodePush(actioncode, data)));
  }

  /** Closes and unregisters this client; the same as `hub.unregister(client, code, reason)`. */
  close(code?: number, reason?: string): void {
    this.#host.unregister(this, code ?? CloseCode.Normal, reason ?? '');
  }

  /** @internal Queues an encoded frame, applying backpressure (what `AdapterHost.deliver` does). */
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
