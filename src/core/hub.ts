// The manager's insides: the registry of clients, the counters and the events, and the one object
// behind every port the manager hands out (to its transport, its clients, its adapter and its
// pipeline), each wired to a named method here.
import type { IncomingMessage } from 'node:http';
import type { Adapter, AdapterHost } from './adapter.js';
import { compileActions } from './actions.js';
import { Client, kConn, kOpen, kPush, type ClientHost } from './client.js';
import type { Connection, TransportHost } from './connection.js';
import { assertClose, CloseCode, CloseReason } from './errors.js';
import type { Manager } from './manager.js';
import { resolveOptions, type Resolved } from './options.js';
import { Pipeline, type PipelineHost } from './pipeline.js';
import type { Frame } from './protocol.js';
import { RateLimiter } from './rate-limit.js';
import type { Logger, ManagerEvents, ManagerOptions } from './types.js';

type Events = ManagerEvents<unknown>;

export class Hub implements TransportHost, ClientHost, AdapterHost, PipelineHost {
  readonly options: Resolved;
  /** This node's clients by id, in connection order. */
  readonly clients = new Map<string, Client<unknown>>();
  readonly counters = {
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    dropped: 0,
    errors: 0,
  };
  readonly highWaterMark: number;
  readonly logger: Logger;
  readonly adapter: Adapter;
  readonly manager: Manager<unknown>;
  readonly #limiter: RateLimiter | undefined;
  readonly #pipeline: Pipeline;
  /** Set by `close()`: from then on new clients are refused (and the manager's calls throw). */
  closing = false;

  constructor(manager: Manager<unknown>, options: ManagerOptions<unknown, unknown>) {
    this.manager = manager;
    this.options = resolveOptions(options);
    this.highWaterMark = this.options.backpressure.highWaterMark;
    this.logger = this.options.logger;
    const actions = compileActions(options.actions, this.options.clientFanout);
    this.#limiter = this.options.rateLimit && new RateLimiter(this.options.rateLimit);
    this.#pipeline = new Pipeline(this, actions, this.#limiter);
    this.adapter = this.options.adapter(this);
  }

  get accepting(): boolean {
    return !this.closing;
  }

  has(id: string): boolean {
    return this.clients.has(id);
  }

  // --- TransportHost ---

  open(
    conn: Connection,
    id: string,
    data: unknown,
    req: IncomingMessage | undefined,
  ): Client<unknown> {
    const client = new Client<unknown>(id, data, conn, this);
    this.clients.set(id, client);
    this.adapter.added(client);
    this.emit('connection', client, req);
    return client;
  }

  receive(client: Client<unknown>, data: Buffer): void {
    this.#pipeline.receive(client, data);
  }

  closed(client: Client<unknown>, code: number, reason: string): void {
    if (this.clients.get(client.id) === client) this.remove(client, code, reason);
  }

  // --- ClientHost, AdapterHost ---

  /** Closes and forgets a registered client. @throws RangeError for a code or reason ws cannot send */
  unregister(client: Client<unknown>, code: number, reason: string): boolean {
    if (this.clients.get(client.id) !== client) return false;
    assertClose(code, reason);
    this.remove(client, code, reason);
    client[kConn].close(code, reason);
    return true;
  }

  overflow(client: Client<unknown>): void {
    this.counters.dropped++;
    if (this.options.backpressure.policy === 'close') {
      this.unregister(client, CloseCode.TryAgainLater, CloseReason.Backpressure);
    }
    this.emit('drop', client, 'backpressure');
  }

  deliver(client: Client<unknown>, frame: Frame): boolean {
    return client[kPush](frame);
  }

  reportError(err: unknown, client?: Client<unknown>): void {
    this.counters.errors++;
    const error = err instanceof Error ? err : new Error(describe(err), { cause: err });
    this.logger.error?.({ err: error, clientId: client?.id }, 'wshub: error');
    this.emit('error', error, client);
  }

  // --- the registry ---

  /** Takes a client out of the registry, its rooms and the rate limit; then `disconnect`. */
  remove(client: Client<unknown>, code: number, reason: string): void {
    client[kOpen] = false;
    this.#limiter?.forget(client);
    this.clients.delete(client.id);
    this.adapter.removed(client);
    this.emit('disconnect', client, code, reason);
  }

  // A throwing listener must not corrupt the registry or escape into ws's event loop.
  emit<E extends keyof Events>(event: E, ...args: Parameters<Events[E]>): void {
    try {
      (this.manager.emit as (e: E, ...a: unknown[]) => boolean).call(this.manager, event, ...args);
    } catch (err) {
      this.logger.error?.({ err, event }, 'wshub: an event listener threw');
    }
  }
}

// String() throws for a null-prototype object; a handler may throw anything.
function describe(v: unknown): string {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
