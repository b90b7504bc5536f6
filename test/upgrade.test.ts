// Upgrade checks, attacked: every refusal happens before a WebSocket exists and leaves nothing
// registered, pending or open behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createManager } from '../src/index.ts';
import { startHub, assertNoLeaks, listen, closeServer } from './helpers/hub.ts';
import { connect, refusedStatus, TestClient, okReply } from './helpers/client.ts';
import { exchange, readToEnd, tcp, upgradeRequest } from './helpers/raw.ts';
import { times, within } from './helpers/wait.ts';

assertNoLeaks();

const statusLine = (answer: string): string => answer.split('\r\n')[0]!;

test('admits same-origin and Origin-less upgrades and refuses a cross-origin one with 403', async (t) => {
  const { hub, url, port } = await startHub(t);
  await connect(t, url, { origin: `http://127.0.0.1:${port}` });
  await connect(t, url);
  assert.equal(await refusedStatus(url, { origin: 'https://evil.example' }), 403);
  assert.equal(
    await refusedStatus(url, { origin: `http://127.0.0.1:${port + 1}` }),
    403,
    'another port is another origin',
  );
  assert.equal(
    await refusedStatus(url, { origin: 'null' }),
    403,
    'opaque origin of a sandboxed page',
  );
  assert.equal(await refusedStatus(url, { origin: 'not a url' }), 403);
  assert.equal(hub.clients.size, 2);
});

test('allowOrigin as a list admits exactly the listed origins, case-insensitively', async (t) => {
  const { hub, url } = await startHub(t, { allowOrigin: ['https://app.example.com'] });
  await connect(t, url, { origin: 'https://APP.example.com' });
  assert.equal(await refusedStatus(url, { origin: 'https://app.example.com.evil.example' }), 403);
  assert.equal(
    await refusedStatus(url, { origin: 'http://app.example.com' }),
    403,
    'scheme is part of the origin',
  );
  assert.equal(hub.clients.size, 1);
});

test("allowOrigin ['*'] admits any origin", async (t) => {
  const { hub, url } = await startHub(t, { allowOrigin: ['*'] });
  await connect(t, url, { origin: 'https://anything.example' });
  await connect(t, url, { origin: 'null' });
  assert.equal(hub.clients.size, 2);
});

test('allowOrigin as a function decides with the origin and request; a throw refuses with 403', async (t) => {
  const seen: string[] = [];
  const { hub, url } = await startHub(t, {
    allowOrigin(origin: string, req: IncomingMessage) {
      seen.push(`${origin} ${req.url}`);
      if (origin === 'https://boom.example') throw new Error('origin check failed');
      return origin.endsWith('.trusted.example');
    },
  });
  const errors: string[] = [];
  hub.on('error', (err) => errors.push(err.message));
  await connect(t, `${url}?a=1`, { origin: 'https://x.trusted.example' });
  assert.equal(await refusedStatus(url, { origin: 'https://x.untrusted.example' }), 403);
  assert.equal(await refusedStatus(url, { origin: 'https://boom.example' }), 403);
  assert.deepEqual(seen, [
    'https://x.trusted.example /ws?a=1',
    'https://x.untrusted.example /ws',
    'https://boom.example /ws',
  ]);
  assert.deepEqual(errors, ['origin check failed']);
  assert.equal(hub.clients.size, 1);
});

test('authenticate: missing or bad credentials, false, a throw and a rejection all get 401 and register nothing', async (t) => {
  const { hub, url } = await startHub(t, {
    authenticate(req) {
      const auth = req.headers.authorization;
      if (auth === 'Bearer throw') throw new Error('auth backend down');
      if (auth === 'Bearer reject') return Promise.reject(new Error('auth backend down'));
      if (auth === 'Bearer async-false') return Promise.resolve(false);
      return auth === 'Bearer good' ? { user: 'ada' } : false;
    },
  });
  const connections = times(1, 'connection');
  hub.on('connection', connections.hit);
  assert.equal(await refusedStatus(url), 401, 'no credentials');
  assert.equal(await refusedStatus(url, { headers: { authorization: 'Bearer bad' } }), 401);
  assert.equal(await refusedStatus(url, { headers: { authorization: 'Bearer throw' } }), 401);
  assert.equal(await refusedStatus(url, { headers: { authorization: 'Bearer reject' } }), 401);
  assert.equal(await refusedStatus(url, { headers: { authorization: 'Bearer async-false' } }), 401);
  assert.equal(hub.clients.size, 0);
  await connect(t, url, { headers: { authorization: 'Bearer good' } });
  await within(connections.done, 5000, 'the one connection');
});

test("authenticate's result becomes client.data, seen by handlers", async (t) => {
  const { url } = await startHub(t, {
    authenticate: async (req) => ({ user: req.headers['x-user'] as string, roles: ['reader'] }),
    actions: { whoami: (_data: unknown, ctx) => ctx.client.data },
  });
  const c = await connect(t, url, { headers: { 'x-user': 'ada' } });
  assert.deepEqual(
    await c.request('whoami'),
    okReply('whoami', { user: 'ada', roles: ['reader'] }, 1),
  );
});

test('an authenticate that never settles is refused with 401 after authenticateTimeout and leaks no slot', async (t) => {
  const { hub, url } = await startHub(t, {
    maxClients: 1,
    authenticateTimeout: 100,
    authenticate: (req) =>
      req.url?.includes('hang') ? new Promise<false>(() => {}) : { ok: true },
  });
  assert.equal(await refusedStatus(`${url}?hang`), 401);
  assert.equal(await refusedStatus(`${url}?hang`), 401);
  // With maxClients 1, a pending slot left behind by either refusal would make this a 503.
  await connect(t, url);
  assert.equal(hub.clients.size, 1);
});

test('a peer that hangs up while authenticate runs leaves nothing behind', async (t) => {
  let release!: (v: { ok: true }) => void;
  const called = times(1, 'authenticate');
  const { hub, port, url } = await startHub(t, {
    maxClients: 1,
    authenticate: (req): { ok: true } | Promise<{ ok: true }> => {
      if (!req.url?.includes('slow')) return { ok: true };
      called.hit();
      return new Promise((r) => (release = r));
    },
  });
  const errors: Error[] = [];
  hub.on('error', (err) => errors.push(err));
  const socket = await tcp(t, port);
  socket.write(upgradeRequest(port, '/ws?slow'));
  await within(called.done, 5000, 'authenticate to be called');
  const gone = new Promise((r) => socket.once('close', r));
  socket.destroy();
  await within(gone, 5000, 'socket close');
  release({ ok: true });
  await connect(t, url); // the slot is free again
  assert.equal(hub.clients.size, 1);
  assert.deepEqual(errors, []);
});

test('protocols: the first offered protocol on the list is selected', async (t) => {
  const { hub, url } = await startHub(t, { protocols: ['chat.v2', 'chat.v1'] });
  const server = new Promise<string>((r) => hub.once('connection', (client) => r(client.protocol)));
  const c = await connect(t, url, { protocols: ['x.unknown', 'chat.v1', 'chat.v2'] });
  assert.equal(c.ws.protocol, 'chat.v1');
  assert.equal(await within(server, 5000, 'connection event'), 'chat.v1');
});

test('protocols: offered but none acceptable is refused with 400; none offered passes', async (t) => {
  const { hub, url } = await startHub(t, { protocols: ['chat.v2'] });
  assert.equal(await refusedStatus(url, { protocols: ['chat.v1', 'mqtt'] }), 400);
  const c = await connect(t, url);
  assert.equal(c.ws.protocol, '');
  assert.equal(hub.clients.size, 1);
});

test('maxClients counts upgrades still authenticating and refuses the rest with 503', async (t) => {
  const releases: (() => void)[] = [];
  let called: () => void = () => {};
  const inAuthenticate = (n: number, what: string) =>
    within(new Promise<void>((r) => (called = () => releases.length === n && r())), 5000, what);
  const { hub, url } = await startHub(t, {
    maxClients: 2,
    authenticate: () =>
      new Promise<{ ok: true }>((r) => {
        releases.push(() => r({ ok: true }));
        called();
      }),
  });
  const twoPending = inAuthenticate(2, 'two upgrades in authenticate');
  const a = new TestClient(url);
  const b = new TestClient(url);
  t.after(() => (a.close(), b.close()));
  await twoPending;
  assert.equal(hub.clients.size, 0);
  assert.equal(await refusedStatus(url), 503, 'two pending upgrades fill maxClients 2');
  for (const release of releases.splice(0)) release();
  await within(Promise.all([a.opened, b.opened]), 5000, 'both pending upgrades open');
  assert.equal(hub.clients.size, 2);
  assert.equal(await refusedStatus(url), 503, 'two clients fill maxClients 2');
  const gone = new Promise((r) => hub.once('disconnect', r));
  a.ws.close();
  await within(gone, 5000, 'disconnect');
  const thirdPending = inAuthenticate(1, 'third upgrade in authenticate');
  const third = new TestClient(url);
  t.after(() => third.close());
  await thirdPending;
  releases[0]!();
  await within(third.opened, 5000, 'a freed slot admits a new client');
  assert.equal(hub.clients.size, 2);
});

test('a burst of 60 concurrent upgrades against maxClients 10 admits exactly 10; the rest get 503', async (t) => {
  // authenticate holds every upgrade until all 60 have reached the server, so the limit must
  // count upgrades in flight, not only clients already open.
  let arrived = 0;
  let allArrived!: () => void;
  const gate = new Promise<void>((r) => (allArrived = r));
  const { hub, server, url } = await startHub(t, {
    maxClients: 10,
    authenticate: async () => {
      await gate;
      return { ok: true };
    },
  });
  server.on('upgrade', () => ++arrived === 60 && allArrived());
  const burst = Array.from({ length: 60 }, () => new TestClient(url));
  t.after(() => burst.forEach((c) => c.close()));
  const outcomes = await within(
    Promise.all(
      burst.map((c) =>
        c.opened.then(
          () => 'open',
          (err: Error) => err.message,
        ),
      ),
    ),
    10_000,
    'the burst to settle',
  );
  const count = (what: string) => outcomes.filter((o) => o === what).length;
  assert.deepEqual([count('open'), count('HTTP 503')], [10, 50]);
  assert.equal(hub.clients.size, 10);
});

test('close() refuses new upgrades with 503 at once and resolves within its timeout when a peer never answers', async (t) => {
  const { hub, url } = await startHub(t);
  const deaf = await connect(t, url);
  deaf.ws.pause(); // reads nothing, so never answers the close handshake
  const started = performance.now();
  const closing = hub.close({ timeout: 300 });
  assert.equal(await refusedStatus(url), 503);
  await within(closing, 3000, 'hub.close() with a deaf peer');
  assert.ok(performance.now() - started >= 250, 'waited for the deaf peer first');
  assert.equal(hub.clients.size, 0);
  assert.equal(hub.stats().clients, 0);
});

test('an id already connected is refused with 409', async (t) => {
  const { hub, url } = await startHub(t, {
    id: (req) => new URL(req.url!, 'http://x').searchParams.get('id') ?? 'anon',
  });
  await connect(t, `${url}?id=alice`);
  assert.equal(await refusedStatus(`${url}?id=alice`), 409);
  await connect(t, `${url}?id=bob`);
  assert.deepEqual([...hub.clients.keys()].sort(), ['alice', 'bob']);
});

test('garbage and malformed handshakes get an HTTP error and register nothing', async (t) => {
  const { hub, port, url } = await startHub(t);
  const errors: Error[] = [];
  hub.on('error', (err) => errors.push(err));
  const ask = (bytes: string | Buffer, what: string) =>
    exchange(t, port, bytes, what).then(statusLine);

  assert.match(
    await ask(Buffer.from('16030100a5010000a10303', 'hex'), 'TLS hello'),
    /^HTTP\/1\.1 400 /,
  );
  assert.match(await ask('\x00\xff\r\n\r\n', 'binary junk'), /^HTTP\/1\.1 400 /);
  const noKey = upgradeRequest(port).replace(/Sec-WebSocket-Key: .*\r\n/, '');
  assert.equal(await ask(noKey, 'no key'), 'HTTP/1.1 400 Bad Request');
  const badKey = upgradeRequest(port).replace(
    /Sec-WebSocket-Key: .*\r\n/,
    'Sec-WebSocket-Key: short\r\n',
  );
  assert.equal(await ask(badKey, 'bad key'), 'HTTP/1.1 400 Bad Request');
  const badVersion = upgradeRequest(port).replace(
    'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Version: 12',
  );
  assert.equal(await ask(badVersion, 'bad version'), 'HTTP/1.1 400 Bad Request');
  assert.equal(
    await ask(upgradeRequest(port).replace('GET', 'POST'), 'POST upgrade'),
    'HTTP/1.1 405 Method Not Allowed',
  );
  assert.equal(
    await ask(upgradeRequest(port, '/elsewhere'), 'unknown path'),
    'HTTP/1.1 404 Not Found',
  );
  const huge = upgradeRequest(port, '/ws', [`X-Pad: ${'a'.repeat(20_000)}`]);
  assert.equal(
    await ask(huge, 'oversized headers'),
    'HTTP/1.1 431 Request Header Fields Too Large',
  );

  assert.equal(hub.clients.size, 0);
  assert.deepEqual(errors, []);
  await connect(t, url); // still serving
});

test('an Origin that Node dropped past maxHeadersCount cannot slip through: truncated headers get 431', async (t) => {
  const { hub, server, port } = await startHub(t);
  const ask = (count: number, what: string) => {
    const junk = Array.from({ length: count }, (_, i) => `X-${i}: 1`);
    return exchange(
      t,
      port,
      upgradeRequest(port, '/ws', [...junk, 'Origin: https://evil.example']),
      what,
    ).then(statusLine);
  };
  // Unset, Node keeps 2,000 raw entries (1,000 headers): the Origin after 1,100 others is lost.
  assert.equal(
    await ask(1100, 'Origin after 1,100 headers'),
    'HTTP/1.1 431 Request Header Fields Too Large',
  );
  assert.equal(
    await ask(900, 'Origin after 900 headers'),
    'HTTP/1.1 403 Forbidden',
    'below the limit the Origin is seen',
  );
  server.maxHeadersCount = 50;
  assert.equal(
    await ask(60, 'Origin after 60 headers, maxHeadersCount 50'),
    'HTTP/1.1 431 Request Header Fields Too Large',
  );
  server.maxHeadersCount = 0; // no limit: nothing is dropped
  assert.equal(await ask(1100, 'Origin after 1,100 headers, no limit'), 'HTTP/1.1 403 Forbidden');
  assert.equal(hub.clients.size, 0);
});

test('slow headers are cut by Node within headersTimeout + connectionsCheckingInterval', async (t) => {
  // SECURITY.md states the bound with Node's defaults (60 s + 30 s); the same rule, scaled down.
  const headersTimeout = 300;
  const connectionsCheckingInterval = 100;
  const server = createServer({ headersTimeout, requestTimeout: 0, connectionsCheckingInterval });
  const hub = createManager();
  hub.handle(server, '/ws');
  await listen(server);
  t.after(async () => {
    await hub.close();
    await closeServer(server);
  });
  const socket = await tcp(t, (server.address() as AddressInfo).port);
  socket.write('GET /ws HTTP/1.1\r\nHost: x\r\n');
  const started = performance.now();
  const drip = setInterval(() => socket.writable && socket.write('X-Slow: 1\r\n'), 20);
  t.after(() => clearInterval(drip));
  const answer = await readToEnd(socket, 'Node to cut a slow-headers peer');
  const elapsed = performance.now() - started;
  assert.match(answer, /^HTTP\/1\.1 408 /);
  assert.ok(
    elapsed >= headersTimeout && elapsed < headersTimeout + connectionsCheckingInterval + 1000,
    `cut after ${elapsed} ms`,
  );
  assert.equal(hub.clients.size, 0);
});
