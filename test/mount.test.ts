import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { createManager, type Client, type Manager } from '../src/index.ts';
import { rawSocket } from '../src/node/frame.ts';
import { startHub, assertNoLeaks, listen, closeServer } from './helpers/hub.ts';
import { connect, push, refusedStatus } from './helpers/client.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

/**
 * A bare http.Server on 127.0.0.1:0 and managers made for it. At test end the managers close first,
 * then every socket the server accepted (upgraded ones included) is destroyed, then the server.
 */
async function mount(t: TestContext) {
  const s = createServer();
  const sockets = new Set<Socket>();
  s.on('connection', (socket) => sockets.add(socket));
  const hubs: Manager[] = [];
  await listen(s);
  t.after(async () => {
    await within(
      Promise.all(hubs.map((h) => h.close({ timeout: 500 }))),
      5000,
      'managers to close',
    );
    for (const socket of sockets) socket.destroy();
    await closeServer(s);
  });
  return {
    server: s,
    base: `ws://127.0.0.1:${(s.address() as AddressInfo).port}`,
    /** A manager whose `whoami` action answers `name`. */
    manager(name: string): Manager {
      const hub = createManager({ actions: { whoami: () => name } });
      hubs.push(hub);
      return hub;
    },
  };
}

test('two managers on one server serve /a and /b, refuse /c with 404 and keep serving', async (t) => {
  const { server: s, base, manager } = await mount(t);
  const a = manager('a');
  const b = manager('b');
  a.handle(s, '/a');
  b.handle(s, '/b');
  assert.equal(s.listenerCount('upgrade'), 1, 'one shared upgrade listener');
  const ca = await connect(t, `${base}/a`);
  const cb = await connect(t, `${base}/b`);
  for (const path of ['/c', '/', '/a/', '/ab', '/b/x', '/A'])
    assert.equal(await refusedStatus(`${base}${path}`), 404, path);
  assert.deepEqual(await ca.request('whoami'), { ...push('whoami', 'a'), id: 1 });
  assert.deepEqual(await cb.request('whoami'), { ...push('whoami', 'b'), id: 1 });
  assert.deepEqual([a.clients.size, b.clients.size], [1, 1]);
  assert.equal(a.broadcast('only', 'a'), 1, 'managers do not share clients');
  assert.deepEqual(await ca.barrier(), [push('only', 'a')]);
  assert.deepEqual(await cb.barrier(), []);
});

test('matches the path without its query string', async (t) => {
  const { hub, url } = await startHub(t, {}, '/ws');
  const c = await connect(t, `${url}?token=abc&x=/other`);
  assert.equal((await c.request('heart_beat')).code, 0);
  assert.equal(hub.clients.size, 1);
});

test('the detach function stops new upgrades on that path only and is idempotent', async (t) => {
  const { server: s, base, manager } = await mount(t);
  const a = manager('a');
  const b = manager('b');
  const detachA = a.handle(s, '/a');
  const detachB = b.handle(s, '/b');
  const ca = await connect(t, `${base}/a`);
  detachA();
  detachA();
  assert.equal(await refusedStatus(`${base}/a`), 404);
  assert.equal((await connect(t, `${base}/b`)).ws.protocol, '');
  assert.equal((await ca.request('whoami')).data, 'a', 'clients already connected stay');
  detachB();
  assert.equal(s.listenerCount('upgrade'), 0, 'the shared listener goes with the last manager');
  a.handle(s, '/a');
  assert.equal(
    (await (await connect(t, `${base}/a`)).request('whoami')).data,
    'a',
    'a manager can mount again',
  );
});

test('leaves other paths to another upgrade listener on the same server', async (t) => {
  const { server: s, base, manager } = await mount(t);
  const other = new WebSocketServer({ noServer: true });
  t.after(() => other.close());
  other.on('connection', (ws) => ws.send('other says hi'));
  s.on('upgrade', (req: IncomingMessage, socket, head) => {
    if (req.url === '/other')
      other.handleUpgrade(req, socket, head, (ws) => other.emit('connection', ws, req));
  });
  const hub = manager('hub');
  hub.handle(s, '/ws');
  const first = await within(
    new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${base}/other`);
      t.after(() => ws.terminate());
      ws.on('error', reject);
      ws.once('message', (data) => resolve(data.toString()));
    }),
    5000,
    'the other listener to greet',
  );
  assert.equal(first, 'other says hi');
  assert.equal((await (await connect(t, `${base}/ws`)).request('whoami')).data, 'hub');
  assert.equal(hub.clients.size, 1);
});

test('handle() throws for a taken path, a bad path, a non-server, or after close()', async (t) => {
  const { server: s, manager } = await mount(t);
  const a = manager('a');
  const b = manager('b');
  a.handle(s, '/x');
  assert.throws(() => b.handle(s, '/x'), /^Error: a manager already handles \/x on this server$/);
  assert.throws(
    () => b.handle(s, 'x'),
    /^TypeError: path must be a string starting with "\/", got "x"$/,
  );
  assert.throws(
    () => b.handle({} as never, '/y'),
    /^TypeError: handle\(\) needs an http\.Server or https\.Server$/,
  );
  await b.close();
  assert.throws(() => b.handle(s, '/y'), /^Error: handle\(\) called after close\(\)$/);
});

test('handleUpgrade serves upgrades the user routes', async (t) => {
  const { server: s, base, manager } = await mount(t);
  const hub = manager('routed');
  s.on('upgrade', (req: IncomingMessage, socket, head) => {
    if (req.url?.startsWith('/v1/')) hub.handleUpgrade(req, socket, head);
    else socket.destroy();
  });
  const c = await connect(t, `${base}/v1/anything`);
  assert.equal((await c.request('whoami')).data, 'routed');
});

/** A separate ws server whose sockets are handed to `hub.register()`. */
async function foreign(t: TestContext, perMessageDeflate: boolean) {
  const { server: s, base } = await mount(t);
  const wss = new WebSocketServer({ server: s, path: '/raw', perMessageDeflate });
  t.after(() => wss.close());
  const adopted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  return { url: `${base}/raw`, adopted };
}

test('register() adopts a socket from a separate WebSocketServer: replies and broadcasts reach it', async (t) => {
  const { hub, url: hubUrl } = await startHub(t, {
    authenticate: () => ({ n: 0 }),
    actions: { whoami: (_: unknown, ctx) => [ctx.client.id, ctx.client.data] },
  });
  const connections: [string, IncomingMessage | undefined][] = [];
  hub.on('connection', (client, req) => connections.push([client.id, req]));
  const { url, adopted } = await foreign(t, false);
  const c = await connect(t, url);
  const ws = await within(adopted, 5000, 'foreign connection');
  assert.ok(
    rawSocket(ws),
    'rawSocket() finds the socket of a ws WebSocket: the fast path is in use',
  );
  const client: Client<{ n: number }> = hub.register(ws, { id: 'ext', data: { n: 1 } });
  assert.deepEqual(
    [client.id, client.data, client.remoteAddress, client.protocol],
    ['ext', { n: 1 }, '127.0.0.1', ''],
  );
  assert.deepEqual(connections, [['ext', undefined]]);
  assert.deepEqual(await c.request('whoami'), { ...push('whoami', ['ext', { n: 1 }]), id: 1 });
  const other = await connect(t, hubUrl);
  assert.equal(hub.broadcast('all', 1), 2);
  assert.deepEqual(await c.barrier(), [push('all', 1)]);
  assert.deepEqual(await other.barrier(), [push('all', 1)]);
  assert.equal(hub.send('ext', 'one', 2), true);
  assert.deepEqual(await c.barrier(), [push('one', 2)]);
  assert.throws(() => hub.register(ws), /^Error: this WebSocket is already registered$/);
  assert.equal(hub.unregister('ext', 4000, 'done'), true);
  assert.deepEqual(await c.closed(), { code: 4000, reason: 'done' });
  assert.throws(() => hub.register(ws), /^Error: register\(\) needs an open WebSocket$/);
});

test('register() falls back to ws.send for a socket with permessage-deflate, and still delivers', async (t) => {
  const { hub } = await startHub(t);
  const { url, adopted } = await foreign(t, true);
  const c = await connect(t, url, { perMessageDeflate: true });
  const ws = await within(adopted, 5000, 'foreign connection');
  assert.equal(rawSocket(ws), undefined, 'compressed sockets are never written to directly');
  hub.register(ws);
  assert.equal(hub.broadcast('zip', 'a'.repeat(1000)), 1);
  assert.deepEqual(await c.barrier(), [push('zip', 'a'.repeat(1000))]);
  assert.deepEqual(await c.request('heart_beat'), { ...push('heart_beat', true), id: 2 });
});

test('register() refuses a taken id, a non-socket, and calls after close()', async (t) => {
  const { hub, url: hubUrl } = await startHub(t, { id: () => 'taken' });
  await connect(t, hubUrl);
  const { url, adopted } = await foreign(t, false);
  await connect(t, url);
  const ws = await within(adopted, 5000, 'foreign connection');
  assert.throws(
    () => hub.register(ws, { id: 'taken' }),
    /^Error: client id "taken" is already registered$/,
  );
  assert.throws(
    () => hub.register(ws, { id: '' }),
    /^TypeError: register\(\) init\.id must be a non-empty string$/,
  );
  assert.throws(() => hub.register({} as never), /^TypeError: register\(\) needs a ws WebSocket$/);
  await hub.close({ timeout: 500 });
  assert.throws(() => hub.register(ws), /^Error: register\(\) called after close\(\)$/);
});

// A self-signed P-256 certificate for 127.0.0.1 (valid until 2126), only for the test below.
const tls = {
  key: `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgY88l+bkyG6hqaQNp
S0+jSahk62y3PiT2G9gK0WE7JW+hRANCAASfOpD8izD2M2DYl6SUS/2JbKlwLQaV
nuh7Ai6mYmjUXrl7E6/kPkEwsA+6xZWc5C1hE/uO7i1q9SIshHdYcGds
-----END PRIVATE KEY-----`,
  cert: `-----BEGIN CERTIFICATE-----
MIIBjzCCATagAwIBAgIUSLxNuyD8GFA0q8+Q59C5/luG3IQwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJMTI3LjAuMC4xMCAXDTI2MTEyNjAwMzI1NVoYDzIxMjYxMTAy
MDAzMjU1WjAUMRIwEAYDVQQDDAkxMjcuMC4wLjEwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASfOpD8izD2M2DYl6SUS/2JbKlwLQaVnuh7Ai6mYmjUXrl7E6/kPkEw
sA+6xZWc5C1hE/uO7i1q9SIshHdYcGdso2QwYjAdBgNVHQ4EFgQUSEyQWsrkt+AG
YzqyvvPBNSCg/P8wHwYDVR0jBBgwFoAUSEyQWsrkt+AGYzqyvvPBNSCg/P8wDwYD
VR0TAQH/BAUwAwEB/zAPBgNVHREECDAGhwR/AAABMAoGCCqGSM49BAMCA0cAMEQC
IFr3IUd5mFMPU/c5t0y/0Q/N9xNHaLgB9+0QwsjwO0ZRAiAprVtGZObS0y6U7W/z
FDOx0wiWIWUkY869FQfErD1L0Q==
-----END CERTIFICATE-----`,
};

test('handle() serves an https.Server (wss://)', async (t) => {
  const s = createHttpsServer(tls);
  const hub = createManager({ actions: { secure: () => 'yes' } });
  hub.handle(s, '/ws');
  await within(
    new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve)),
    5000,
    'https listen',
  );
  t.after(async () => {
    await within(hub.close({ timeout: 500 }), 5000, 'hub.close()');
    s.closeAllConnections();
    await within(new Promise((resolve) => s.close(resolve)), 5000, 'https close');
  });
  const base = `wss://127.0.0.1:${(s.address() as AddressInfo).port}`;
  const c = await connect(t, `${base}/ws`, { ca: tls.cert });
  assert.deepEqual(await c.request('secure'), { ...push('secure', 'yes'), id: 1 });
  assert.equal(await refusedStatus(`${base}/other`, { ca: tls.cert }), 404);
});
