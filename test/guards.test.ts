// The upgrade guards (src/node/upgrade.ts), each alone: plain functions of a request's headers and
// the transport's state, tested without sockets. test/upgrade.test.ts drives the same refusals
// over real connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { resolveOptions } from '../src/core/options.ts';
import type { ManagerOptions } from '../src/index.ts';
import {
  authenticate,
  check,
  GUARDS,
  newId,
  refuseOrigin,
  refuseTruncatedHeaders,
  refuseWhenClosing,
  refuseWhenFull,
  selectProtocol,
  type Gate,
} from '../src/node/upgrade.ts';

/** A request as the guards read it: headers, raw headers and the server's maxHeadersCount. */
function request(
  headers: Record<string, string> = {},
  { rawHeaders = Object.entries(headers).flat(), maxHeadersCount = null as number | null } = {},
): IncomingMessage {
  return {
    headers,
    rawHeaders,
    socket: { server: { maxHeadersCount } },
  } as unknown as IncomingMessage;
}

function gate(
  options: ManagerOptions<unknown, unknown> = {},
  state: { accepting?: boolean; sockets?: number } = {},
): Gate & { reported: unknown[] } {
  const reported: unknown[] = [];
  return {
    options: resolveOptions(options),
    accepting: state.accepting ?? true,
    sockets: state.sockets ?? 0,
    chosen: new WeakMap(),
    reportError: (err) => reported.push(err),
    reported,
  };
}

test('refuseWhenClosing answers 503 once the manager is closing', () => {
  assert.equal(refuseWhenClosing(request(), gate({}, { accepting: true })), 0);
  assert.equal(refuseWhenClosing(request(), gate({}, { accepting: false })), 503);
});

test('refuseWhenFull answers 503 at maxClients sockets, closing ones included', () => {
  assert.equal(refuseWhenFull(request(), gate({ maxClients: 2 }, { sockets: 1 })), 0);
  assert.equal(refuseWhenFull(request(), gate({ maxClients: 2 }, { sockets: 2 })), 503);
  assert.equal(refuseWhenFull(request(), gate({}, { sockets: 1e9 })), 0, 'Infinity by default');
});

test('refuseTruncatedHeaders answers 431 when the server may have dropped headers', () => {
  const raw = (n: number) => Array.from({ length: n }, (_, i) => `x${i}`);
  const g = gate();
  assert.equal(refuseTruncatedHeaders(request({}, { rawHeaders: raw(1998) }), g), 0);
  assert.equal(
    refuseTruncatedHeaders(request({}, { rawHeaders: raw(2000) }), g),
    431,
    'unset: 1,000',
  );
  const set = { maxHeadersCount: 10 };
  assert.equal(refuseTruncatedHeaders(request({}, { rawHeaders: raw(18), ...set }), g), 0);
  assert.equal(refuseTruncatedHeaders(request({}, { rawHeaders: raw(20), ...set }), g), 431);
  const none = { maxHeadersCount: 0 };
  assert.equal(refuseTruncatedHeaders(request({}, { rawHeaders: raw(5000), ...none }), g), 0);
});

test('refuseOrigin passes Origin-less and same-origin upgrades and asks allowOrigin about the rest', () => {
  const g = gate();
  assert.equal(refuseOrigin(request({ host: 'app.example' }), g), 0, 'no Origin');
  const same = { host: 'App.Example:8066', origin: 'https://app.example:8066' };
  assert.equal(refuseOrigin(request(same), g), 0, 'same host, any case');
  const cross = { host: 'app.example', origin: 'https://evil.example' };
  assert.equal(refuseOrigin(request(cross), g), 403);
  assert.equal(refuseOrigin(request({ ...cross, origin: 'not a url' }), g), 403);
  assert.equal(refuseOrigin(request(cross), gate({ allowOrigin: ['https://EVIL.example'] })), 0);
  assert.equal(refuseOrigin(request(cross), gate({ allowOrigin: ['*'] })), 0);
  const throwing = gate({
    allowOrigin: () => {
      throw new Error('allowOrigin bug');
    },
  });
  assert.equal(refuseOrigin(request(cross), throwing), 403);
  assert.deepEqual(
    throwing.reported.map((e) => (e as Error).message),
    ['allowOrigin bug'],
  );
});

test('selectProtocol picks the first offered protocol that is listed, and refuses an offer of none with 400', () => {
  const offer = (protocols: string) => request({ 'sec-websocket-protocol': protocols });
  const open = gate();
  const req = offer('a, b');
  assert.equal(selectProtocol(req, open), 0, 'no protocols option: no check');
  assert.equal(open.chosen.has(req), false);
  const g = gate({ protocols: ['c', 'b', 'a'] });
  const picked = offer('x, b , a');
  assert.equal(selectProtocol(picked, g), 0);
  assert.equal(g.chosen.get(picked), 'b', "the client's first listed offer");
  assert.equal(selectProtocol(request(), g), 0, 'offering none is fine');
  assert.equal(selectProtocol(offer('x, y'), g), 400);
});

test('check runs the guards cheapest first and returns the first refusal', () => {
  assert.deepEqual(
    GUARDS.map((g) => g.name),
    [
      'refuseWhenClosing',
      'refuseWhenFull',
      'refuseTruncatedHeaders',
      'refuseOrigin',
      'selectProtocol',
    ],
  );
  const cross = request({ host: 'a.example', origin: 'https://b.example' });
  assert.equal(check(cross, gate({}, { accepting: false })), 503, 'closing before origin');
  assert.equal(check(cross, gate()), 403);
  assert.equal(check(request({ host: 'a.example' }), gate()), 0);
});

test('authenticate returns the result, or false for false, a throw, a rejection or a timeout', async () => {
  const req = request();
  const auth = (fn: ManagerOptions<unknown, unknown>['authenticate'], timeout = 1000) =>
    authenticate(req, resolveOptions({ authenticate: fn, authenticateTimeout: timeout }));
  assert.equal(await authenticate(req, resolveOptions({})), undefined, 'no authenticate');
  assert.deepEqual(await auth(() => ({ user: 1 })), { user: 1 });
  assert.deepEqual(await auth(() => Promise.resolve({ user: 2 })), { user: 2 });
  assert.equal(await auth(() => false), false);
  assert.equal(
    await auth(() => {
      throw new Error('bad token');
    }),
    false,
  );
  assert.equal(await auth(() => Promise.reject(new Error('bad token'))), false);
  assert.equal(await auth(() => new Promise(() => {}), 20), false, 'never settles');
});

test('newId takes options.id or a nanoid, and refuses anything but a non-empty string', () => {
  const req = request();
  assert.match(newId(req, resolveOptions({})), /^[\w-]{21}$/);
  assert.equal(newId(req, resolveOptions({ id: () => 'mine' })), 'mine');
  assert.throws(
    () => newId(req, resolveOptions({ id: () => '' })),
    /^TypeError: options\.id must return a non-empty string, got string$/,
  );
  assert.throws(
    () => newId(req, resolveOptions({ id: () => 7 as unknown as string })),
    /^TypeError: options\.id must return a non-empty string, got number$/,
  );
});
