// Upgrade policy: whether an HTTP upgrade may become a client, decided before any WebSocket exists.
// Each guard is a small named function of the request and the transport's state, returning the
// HTTP status that refuses the upgrade or 0 to go on; `GUARDS` runs them cheapest first. A new
// guard is a function here, an entry in GUARDS, an option and a line in the README's table.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { nanoid } from 'nanoid';
import type { Resolved } from '../core/options.js';

/** What the guards see of the transport. */
export interface Gate {
  readonly options: Resolved;
  /** False once the manager is closing. */
  readonly accepting: boolean;
  /** Sockets open or being upgraded, closing ones included. */
  readonly sockets: number;
  /** The subprotocol each admitted request selected (read by ws's handleProtocols). */
  readonly chosen: WeakMap<IncomingMessage, string>;
  reportError(err: unknown): void;
}

/** A guard: the HTTP status refusing `req`, or 0 to go on. */
export type Guard = (req: IncomingMessage, gate: Gate) => number;

/** 503 once the manager is closing. */
export const refuseWhenClosing: Guard = (_req, gate) => (gate.accepting ? 0 : 503);

/** 503 at `maxClients` sockets: closing sockets count until TCP is gone, so kicked clients cannot pile up. */
export const refuseWhenFull: Guard = (_req, gate) =>
  gate.sockets >= gate.options.maxClients ? 503 : 0;

/**
 * 431 when Node may have dropped some of the request's headers (an Origin among them would go
 * unchecked): it keeps at most `server.maxHeadersCount` (2,000 raw entries, i.e. 1,000 headers,
 * when unset; 0 means no limit) and silently drops the rest.
 */
export const refuseTruncatedHeaders: Guard = (req) => {
  const server = (req.socket as Socket & { server?: { maxHeadersCount?: number | null } }).server;
  const max = server?.maxHeadersCount;
  const entries = typeof max === 'number' ? max * 2 : 2000;
  return entries > 0 && req.rawHeaders.length >= entries ? 431 : 0;
};

/** 403 for a cross-origin browser upgrade that `allowOrigin` does not admit (a throw is reported and refuses). */
export const refuseOrigin: Guard = (req, gate) => {
  const origin = req.headers.origin;
  if (origin === undefined || sameOrigin(origin, req)) return 0;
  try {
    return gate.options.allowOrigin?.(origin, req) === true ? 0 : 403;
  } catch (err) {
    gate.reportError(err);
    return 403;
  }
};

/**
 * 400 when the client offers subprotocols and none is in `protocols`; otherwise records the first
 * offered one that is (no check without `protocols`, or without an offer).
 */
export const selectProtocol: Guard = (req, gate) => {
  const { protocols } = gate.options;
  const offered = req.headers['sec-websocket-protocol'];
  if (!protocols || offered === undefined) return 0;
  const pick = offered
    .split(',')
    .map((p) => p.trim())
    .find((p) => protocols.includes(p));
  if (pick === undefined) return 400;
  gate.chosen.set(req, pick);
  return 0;
};

/** The synchronous guards, cheapest first. */
export const GUARDS: readonly Guard[] = [
  refuseWhenClosing,
  refuseWhenFull,
  refuseTruncatedHeaders,
  refuseOrigin,
  selectProtocol,
];

/** Runs every guard in order. @returns the first refusing status, or 0 */
export function check(req: IncomingMessage, gate: Gate): number {
  for (const guard of GUARDS) {
    const status = guard(req, gate);
    if (status) return status;
  }
  return 0;
}

function sameOrigin(origin: string, req: IncomingMessage): boolean {
  try {
    return new URL(origin).host.toLowerCase() === (req.headers.host ?? '').toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Runs `authenticate` within `authenticateTimeout`. @returns its result (`client.data`), or `false`
 * to refuse with 401 (it returned false, threw, rejected or took too long; logged at debug)
 */
export async function authenticate(req: IncomingMessage, options: Resolved): Promise<unknown> {
  if (!options.authenticate) return undefined;
  try {
    return await withTimeout(
      Promise.resolve(options.authenticate(req)),
      options.authenticateTimeout,
    );
  } catch (err) {
    options.logger.debug?.({ err }, 'wshub: authenticate refused an upgrade');
    return false;
  }
}

/** The new client's id: `options.id(req)` or a nanoid. @throws TypeError if `options.id` returns no non-empty string */
export function newId(req: IncomingMessage, options: Resolved): string {
  const id = options.id ? options.id(req) : nanoid();
  if (typeof id !== 'string' || id === '') {
    throw new TypeError(`options.id must return a non-empty string, got ${typeof id}`);
  }
  return id;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`authenticate did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Refuses an upgrade with an HTTP status before any WebSocket exists (cf. ws's abortHandshake). */
export function refuse(socket: Duplex, status: number, message = STATUS_CODES[status] ?? ''): void {
  if (!socket.writable || socket.destroyed) return void socket.destroy();
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`,
  );
}
