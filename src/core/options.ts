// Options are checked and defaulted once, at createManager; the hot path reads plain fields.
import type { IncomingMessage } from 'node:http';
import { InMemoryAdapter, type AdapterFactory } from './adapter.js';
import type { Logger, ManagerOptions } from './types.js';

export const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_HEARTBEAT_INTERVAL = 30_000;
export const DEFAULT_AUTHENTICATE_TIMEOUT = 10_000;
export const DEFAULT_MAX_FRAGMENTS = 1024;
export const DEFAULT_CLOSE_TIMEOUT = 5000;
export const DEFAULT_MAX_ROOMS_PER_CLIENT = 1000;

/**
 * Enough TCP reads to carry a `maxPayload` message in 512-byte pieces (smaller than any real
 * segment), and never fewer than 1,024: each read ws holds costs ~200 bytes of heap on top of its
 * data, so a peer dribbling one byte per read pins ~0.4 × maxPayload of bookkeeping.
 */
export function defaultMaxBufferedChunks(maxPayload: number): number {
  return Math.max(1024, Math.ceil(maxPayload / 512));
}

export interface Resolved {
  readonly authenticate: ((req: IncomingMessage) => unknown) | undefined;
  readonly authenticateTimeout: number;
  readonly id: ((req: IncomingMessage) => string) | undefined;
  /** undefined: only same-origin and Origin-less upgrades pass */
  readonly allowOrigin: ((origin: string, req: IncomingMessage) => boolean) | undefined;
  readonly protocols: readonly string[] | undefined;
  readonly maxPayload: number;
  readonly maxFragments: number;
  readonly maxBufferedChunks: number;
  readonly closeTimeout: number;
  readonly maxClients: number;
  readonly maxRoomsPerClient: number;
  /** interval 0: off */
  readonly heartbeat: { readonly interval: number };
  readonly backpressure: { readonly highWaterMark: number; readonly policy: 'close' | 'drop' };
  readonly rateLimit: { readonly messages: number; readonly interval: number } | undefined;
  readonly clientFanout: boolean;
  readonly adapter: AdapterFactory;
  readonly logger: Logger;
}

/**
 * The one check of a positive option, shared by the manager's and the cluster's options: `fallback`
 * when undefined, else a number > 0 (an integer unless `integer: false`; Infinity only if
 * `infinite`). @throws RangeError naming the option, its unit and the value received
 */
export function positive(
  name: string,
  v: unknown,
  fallback: number,
  { integer = true, infinite = false, unit = '' } = {},
): number {
  if (v === undefined) return fallback;
  const ok =
    typeof v === 'number' &&
    v > 0 &&
    (infinite || Number.isFinite(v)) &&
    (!integer || v === Infinity || Number.isInteger(v));
  if (!ok) {
    const what = `${integer ? 'integer' : 'number'}${unit && ` of ${unit}`}`;
    throw new RangeError(`options.${name} must be a positive ${what}, got ${String(v)}`);
  }
  return v;
}

function fn<T>(name: string, v: unknown): T | undefined {
  if (v !== undefined && typeof v !== 'function')
    throw new TypeError(`options.${name} must be a function, got ${typeof v}`);
  return v as T | undefined;
}

function stringList(name: string, v: unknown): readonly string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && x !== '')) {
    throw new TypeError(`options.${name} must be an array of non-empty strings`);
  }
  return Object.freeze([...v]);
}

function originCheck(v: ManagerOptions['allowOrigin']): Resolved['allowOrigin'] {
  if (typeof v === 'function') return v;
  const list = stringList('allowOrigin', v);
  if (!list) return undefined;
  if (list.includes('*')) return () => true;
  const allowed = new Set(list.map((o) => o.toLowerCase()));
  return (origin) => allowed.has(origin.toLowerCase());
}

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

// wshub logs from timers, socket and broker callbacks: a logger that throws there would be an
// uncaught exception, so every method is wrapped once, here, instead of at each call site.
function guarded(logger: Logger): Logger {
  const safe: Logger = {};
  for (const level of LEVELS) {
    const method = logger[level];
    if (typeof method !== 'function') continue;
    safe[level] = (...args: unknown[]) => {
      try {
        method.apply(logger, args);
      } catch {
        // nowhere left to report it
      }
    };
  }
  return safe;
}

export function resolveOptions(o: ManagerOptions<unknown, unknown>): Resolved {
  if (typeof o !== 'object' || o === null)
    throw new TypeError('createManager options must be an object');
  const heartbeat =
    o.heartbeat === false
      ? { interval: 0 }
      : {
          interval: positive(
            'heartbeat.interval',
            o.heartbeat?.interval,
            DEFAULT_HEARTBEAT_INTERVAL,
          ),
        };
  const policy = o.backpressure?.policy ?? 'close';
  if (policy !== 'close' && policy !== 'drop') {
    throw new TypeError(
      `options.backpressure.policy must be 'close' or 'drop', got ${JSON.stringify(policy)}`,
    );
  }
  let rateLimit: Resolved['rateLimit'];
  if (o.rateLimit !== undefined) {
    rateLimit = {
      messages: positive('rateLimit.messages', o.rateLimit?.messages ?? NaN, 0),
      interval: positive('rateLimit.interval', o.rateLimit?.interval ?? NaN, 0),
    };
  }
  if (o.clientFanout !== undefined && typeof o.clientFanout !== 'boolean') {
    throw new TypeError(`options.clientFanout must be a boolean, got ${typeof o.clientFanout}`);
  }
  const logger = o.logger ?? {};
  if (typeof logger !== 'object' || logger === null)
    throw new TypeError('options.logger must be an object');
  const maxPayload = positive('maxPayload', o.maxPayload, DEFAULT_MAX_PAYLOAD);
  const resolved: Resolved = {
    authenticate: fn('authenticate', o.authenticate),
    authenticateTimeout: positive(
      'authenticateTimeout',
      o.authenticateTimeout,
      DEFAULT_AUTHENTICATE_TIMEOUT,
    ),
    id: fn('id', o.id),
    allowOrigin: originCheck(o.allowOrigin),
    protocols: stringList('protocols', o.protocols),
    maxPayload,
    maxFragments: positive('maxFragments', o.maxFragments, DEFAULT_MAX_FRAGMENTS),
    maxBufferedChunks: positive(
      'maxBufferedChunks',
      o.maxBufferedChunks,
      defaultMaxBufferedChunks(maxPayload),
    ),
    closeTimeout: positive('closeTimeout', o.closeTimeout, DEFAULT_CLOSE_TIMEOUT),
    maxClients: positive('maxClients', o.maxClients, Infinity, { infinite: true }),
    maxRoomsPerClient: positive(
      'maxRoomsPerClient',
      o.maxRoomsPerClient,
      DEFAULT_MAX_ROOMS_PER_CLIENT,
      { infinite: true },
    ),
    heartbeat,
    backpressure: {
      highWaterMark: positive(
        'backpressure.highWaterMark',
        o.backpressure?.highWaterMark,
        DEFAULT_HIGH_WATER_MARK,
      ),
      policy,
    },
    rateLimit,
    clientFanout: o.clientFanout ?? false,
    adapter: fn<AdapterFactory>('adapter', o.adapter) ?? ((host) => new InMemoryAdapter(host)),
    logger: guarded(logger as Logger),
  };
  return Object.freeze(resolved);
}
