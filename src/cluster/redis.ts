// `wshub/redis`: the cluster adapter over Redis pub/sub with the official `redis` client. Only the
// transport lives here; what the messages mean is cluster-adapter.ts. Nothing here imports `redis`
// by value: users hand in their own connected clients.
import type { AdapterFactory, AdapterHost } from '../core/adapter.js';
import { ClusterAdapter } from './cluster-adapter.js';
import {
  resolveClusterOptions,
  type ClusterOptions,
  type ResolvedClusterOptions,
} from './options.js';

// Wide enough for node-redis's `PubSubListener<boolean>` (cluster clients' unsubscribe takes one).
type Listener = (message: string | Buffer, channel: string | Buffer) => void;

/**
 * The part of a node-redis client (`createClient()` of `redis` v5 or v6) wshub uses. A cluster
 * client (`createCluster()`) fits too, with `sharded: true`.
 */
export interface RedisClient {
  readonly isReady: boolean;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: Listener): Promise<unknown>;
  unsubscribe(channel: string, listener?: Listener): Promise<unknown>;
  sPublish?(channel: string, message: string): Promise<unknown>;
  sSubscribe?(channel: string, listener: Listener): Promise<unknown>;
  sUnsubscribe?(channel: string, listener?: Listener): Promise<unknown>;
  on(event: ClientEvent, listener: (err?: unknown) => void): unknown;
  off(event: ClientEvent, listener: (err?: unknown) => void): unknown;
}

type ClientEvent = 'error' | 'ready' | 'node-error' | 'node-ready';

// A cluster client (createCluster) never emits 'ready', and 'error' only when topology discovery
// fails: its node connections report as 'node-error' / 'node-ready' (@redis/client
// cluster/cluster-slots.js #createClient). 'node-ready' after a failover is when an SSUBSCRIBE
// that failed while its shard had no master can be retried: node-redis drops it (#14). A single
// client never emits the node- events.
const ERROR_EVENTS = ['error', 'node-error'] as const;
const READY_EVENTS = ['ready', 'node-ready'] as const;

/** Options of {@link createRedisAdapter}. Durations in ms. */
export interface RedisAdapterOptions extends ClusterOptions {
  /** A connected client for publishing; may be shared with the application. */
  pub: RedisClient;
  /** A second connected client, used only for subscribing (Redis puts it in subscriber mode). */
  sub: RedisClient;
  /**
   * Use sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+) so Redis Cluster spreads channels over
   * shards. Order is then kept per channel, not across channels.
   * @default false
   */
  sharded?: boolean | undefined;
}

class RedisAdapter extends ClusterAdapter {
  readonly #pub: RedisClient;
  readonly #sub: RedisClient;
  readonly #sharded: boolean;
  readonly #listener: Listener = (message, channel) =>
    this.receive(String(message), String(channel));
  /** Set at the first error of an outage; one report per outage, not one per reconnect attempt. */
  #down = false;
  readonly #onError = (err?: unknown): void => {
    if (this.#down) return void this.host.logger.debug?.({ err }, 'wshub: redis still unreachable');
    this.#down = true;
    this.host.reportError(
      new Error('wshub: redis unreachable; delivering locally only', { cause: err }),
    );
  };
  readonly #onReady = (): void => {
    // The outage ends when both connections are back; until then a failure of either is the same outage.
    if (this.#down && this.#pub.isReady && this.#sub.isReady) {
      this.#down = false;
      this.host.logger.info?.({ prefix: this.channels.prefix }, 'wshub: redis reachable again');
    }
    this.connected();
  };
  readonly #onPublishError = (err: unknown): void => this.#onError(err);

  constructor(host: AdapterHost, options: RedisAdapterOptions, resolved: ResolvedClusterOptions) {
    super(host, resolved);
    this.#pub = options.pub;
    this.#sub = options.sub;
    this.#sharded = options.sharded === true;
    this.ordered = !this.#sharded;
    // node-redis emits 'error' on every failed reconnect; unlistened, that is a crash.
    for (const client of new Set([this.#pub, this.#sub])) {
      for (const event of ERROR_EVENTS) client.on(event, this.#onError);
      for (const event of READY_EVENTS) client.on(event, this.#onReady);
    }
    this.start();
  }

  protected publish(channel: string, message: string): Promise<unknown> | false {
    if (!this.#pub.isReady) return false; // no offline queue: an outage must not grow memory
    try {
      return (
        this.#sharded ? this.#pub.sPublish!(channel, message) : this.#pub.publish(channel, message)
      ).catch(this.#onPublishError);
    } catch (err) {
      this.#onPublishError(err);
      return false;
    }
  }

  protected async subscribe(channel: string): Promise<void> {
    await (this.#sharded
      ? this.#sub.sSubscribe!(channel, this.#listener)
      : this.#sub.subscribe(channel, this.#listener));
  }

  protected async unsubscribe(channel: string): Promise<void> {
    // A command to a disconnected client waits in its offline queue; do not let close() hang on it.
    if (!this.#sub.isReady) return;
    await (this.#sharded
      ? this.#sub.sUnsubscribe!(channel, this.#listener)
      : this.#sub.unsubscribe(channel, this.#listener));
  }

  override async close(): Promise<void> {
    try {
      await super.close();
    } finally {
      for (const client of new Set([this.#pub, this.#sub])) {
        for (const event of ERROR_EVENTS) client.off(event, this.#onError);
        for (const event of READY_EVENTS) client.off(event, this.#onReady);
      }
    }
  }
}

/**
 * Creates the Redis cluster adapter: hubs created with the same `prefix` on one Redis share
 * broadcasts, rooms, `send` by id and presence. Local delivery happens at once; other nodes get
 * the message over Redis. A Redis outage never stops local delivery: it is reported once through
 * the `error` event and the logger, and cluster delivery resumes when the clients reconnect.
 *
 * `pub` and `sub` are yours: connect them before, attach your own `'error'` listeners, and quit
 * them after `hub.close()`. wshub never duplicates, connects or quits a client.
 *
 * @throws TypeError if `pub` or `sub` is missing, or `sharded` is set on clients without SPUBLISH
 * @throws RangeError for a non-positive duration
 * @example
 * import { createClient } from 'redis';
 * import { createManager } from 'wshub';
 * import { createRedisAdapter } from 'wshub/redis';
 *
 * const pub = await createClient({ url: 'redis://127.0.0.1:6379' }).on('error', console.error).connect();
 * const sub = await pub.duplicate().on('error', console.error).connect();
 * const hub = createManager({ adapter: createRedisAdapter({ pub, sub, prefix: 'chat' }) });
 */
export function createRedisAdapter(options: RedisAdapterOptions): AdapterFactory {
  const { pub, sub } = options ?? {};
  for (const [name, client] of [
    ['pub', pub],
    ['sub', sub],
  ] as const) {
    if (typeof client?.publish !== 'function' || typeof client.subscribe !== 'function') {
      throw new TypeError(`createRedisAdapter: options.${name} must be a node-redis client`);
    }
  }
  if (
    options.sharded === true &&
    (typeof pub.sPublish !== 'function' || typeof sub.sSubscribe !== 'function')
  ) {
    throw new TypeError(
      'createRedisAdapter: options.sharded needs clients with sPublish/sSubscribe (redis >= 4.6, Redis >= 7)',
    );
  }
  if (pub === sub)
    throw new TypeError(
      'createRedisAdapter: options.sub must be a separate connection from options.pub (pub.duplicate())',
    );
  const resolved = resolveClusterOptions(options);
  return (host) => new RedisAdapter(host, options, resolved);
}
