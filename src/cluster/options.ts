// Options every cluster adapter shares, checked and defaulted once at creation.
import { positive } from '../core/options.js';

/** Options every cluster adapter shares. Durations in ms. Give every node of a cluster the same. */
export interface ClusterOptions {
  /** Channel prefix; nodes with the same prefix form one cluster. @default 'wshub' */
  prefix?: string | undefined;
  /** How often a node announces itself. @default 5000 */
  heartbeatInterval?: number | undefined;
  /**
   * A node not heard from for this long is dropped from presence and routing; it is noticed at
   * the next heartbeat tick, so a dead node is forgotten within `heartbeatTimeout + heartbeatInterval`.
   * @default 3 × heartbeatInterval
   */
  heartbeatTimeout?: number | undefined;
  /** How long `cluster.size()` / `has()` wait for other nodes' answers. @default 2000 */
  requestTimeout?: number | undefined;
  /**
   * Shared key (at least 16 bytes; 32 random bytes recommended): every message is signed with
   * HMAC-SHA256, and one without a valid tag is dropped, so whoever can publish on the broker
   * without the key cannot forge cluster traffic. Every node of the cluster needs the same key.
   * @default none: messages are only checked for shape, types and sizes
   * @example secret: process.env.WSHUB_CLUSTER_SECRET
   */
  secret?: string | Uint8Array | undefined;
  /**
   * Largest frame (UTF-8 bytes of its JSON) that crosses nodes. A bigger broadcast or send is
   * delivered to this node's clients only and reported through `error`; a bigger one received is dropped.
   * @default 1048576 (1 MiB)
   */
  maxFrameSize?: number | undefined;
  /**
   * Messages published to the broker and not yet acknowledged, past which further messages for
   * other nodes are dropped (counted, reported once per stall) instead of queued: a broker that
   * stalls without disconnecting cannot grow this node's memory without bound.
   * @default 10000
   */
  maxPendingMessages?: number | undefined;
  /**
   * The same bound in characters of those messages (bytes, for ASCII text). The default matches a
   * client's default `backpressure.highWaterMark`, so the backlog a stalled broker releases at once
   * cannot by itself push a healthy client over it, and it stays well under Redis's pub/sub output
   * buffer limits (8 MiB soft, 32 MiB hard).
   * @default 1048576 (1 MiB)
   */
  maxPendingBytes?: number | undefined;
}

export interface ResolvedClusterOptions {
  readonly prefix: string;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly requestTimeout: number;
  readonly secret: Uint8Array | undefined;
  readonly maxFrameSize: number;
  readonly maxPendingMessages: number;
  readonly maxPendingBytes: number;
}

// What resolveClusterOptions returned: the adapter factory resolves, the adapter takes it as it is.
const resolved = new WeakSet<object>();

/**
 * Checks and defaults {@link ClusterOptions}, once: options it returned come back as they are.
 * @throws TypeError / RangeError naming the option
 */
export function resolveClusterOptions(options: ClusterOptions): ResolvedClusterOptions {
  if (resolved.has(options)) return options as ResolvedClusterOptions;
  const prefix = options.prefix ?? 'wshub';
  if (typeof prefix !== 'string' || prefix === '')
    throw new TypeError(`options.prefix must be a non-empty string, got ${String(prefix)}`);
  const heartbeatInterval = ms('heartbeatInterval', options.heartbeatInterval, 5000);
  const o: ResolvedClusterOptions = {
    prefix,
    heartbeatInterval,
    heartbeatTimeout: ms('heartbeatTimeout', options.heartbeatTimeout, 3 * heartbeatInterval),
    requestTimeout: ms('requestTimeout', options.requestTimeout, 2000),
    secret: secret(options.secret),
    maxFrameSize: count('maxFrameSize', options.maxFrameSize, 1024 * 1024),
    maxPendingMessages: count('maxPendingMessages', options.maxPendingMessages, 10_000),
    maxPendingBytes: count('maxPendingBytes', options.maxPendingBytes, 1024 * 1024),
  };
  resolved.add(Object.freeze(o));
  return o;
}

function secret(v: unknown): Uint8Array | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' && !(v instanceof Uint8Array))
    throw new TypeError('options.secret must be a string or a Uint8Array');
  const key = Buffer.from(v as string); // a string as UTF-8, bytes as they are
  if (key.length < 16)
    throw new RangeError(`options.secret must be at least 16 bytes, got ${key.length}`);
  return key;
}

const ms = (name: string, v: unknown, fallback: number): number =>
  positive(name, v, fallback, { integer: false, unit: 'ms' });
const count = (name: string, v: unknown, fallback: number): number => positive(name, v, fallback);
