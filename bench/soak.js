// Soak: 10,000 WebSocket connections from a separate process on 127.0.0.1, with churn (clients
// leaving by their own close and by the server's), request/reply and a broadcast every 500 ms,
// for a bounded time. Prints clients, RSS and heap every few seconds and ends by itself.
//
//   npm run soak                       (raises `ulimit -n` to the hard limit, builds, runs 60 s)
//   SOAK_CLIENTS=2000 SOAK_SECONDS=20 node --expose-gc bench/soak.js
//
// Each process holds one descriptor per connection, so both need `ulimit -n` above
// SOAK_CLIENTS + churn (about 11,000 for the defaults).
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const CLIENTS = Number(process.env.SOAK_CLIENTS ?? 10_000);
const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CHURN = Number(process.env.SOAK_CHURN ?? 100); // connections replaced per second
const REPORT_MS = 5000;
const MB = 1024 * 1024;

if (process.argv[2] === 'clients') await clients(Number(process.argv[3]));
else await server();

async function server() {
  const { createManager } = await import('wshub');
  const gc = globalThis.gc ?? (() => {});
  const hub = createManager({
    heartbeat: { interval: 10_000 }, // several sweeps over 10,000 clients within the run
    actions: {
      echo: (data) => data,
      bye: (_data, ctx) => void setImmediate(() => ctx.client.close(1000, 'bye')), // server-side close
    },
  });
  let errors = 0;
  hub.on('error', () => errors++);
  const http = createServer();
  hub.handle(http, '/ws');
  await new Promise((r) => http.listen(0, '127.0.0.1', r));
  const { port } = http.address();

  gc();
  const before = process.memoryUsage();
  const mem = () => process.memoryUsage();
  const line = (label, m, extra = '') =>
    console.log(
      `${label.padEnd(9)} clients ${String(hub.clients.size).padStart(6)}  rss ${(m.rss / MB).toFixed(1).padStart(6)} MB  ` +
        `heap ${(m.heapUsed / MB).toFixed(1).padStart(6)} MB${extra}`,
    );
  console.log(
    `soak: ${CLIENTS} clients, churn ${CHURN}/s, broadcast every 500 ms, ${SECONDS} s, node ${process.version}`,
  );
  line('before', before);

  const child = fork(fileURLToPath(import.meta.url), ['clients', String(port)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let view = { open: 0, received: 0, replies: 0, failures: 0 };
  child.on('message', (m) => (view = m));
  const childExit = new Promise((r) => child.once('exit', r));

  let peakRss = before.rss;
  let peakClients = 0;
  let rssAtPeakClients = before.rss;
  let seq = 0;
  const started = performance.now();
  const broadcaster = setInterval(() => hub.broadcast('tick', { seq: seq++, at: Date.now() }), 500);
  const sampler = setInterval(() => {
    const m = mem();
    peakRss = Math.max(peakRss, m.rss);
    if (hub.clients.size >= peakClients) {
      peakClients = hub.clients.size;
      rssAtPeakClients = m.rss;
    }
  }, 250);
  const reporter = setInterval(() => {
    const s = hub.stats();
    const t = ((performance.now() - started) / 1000).toFixed(0);
    line(
      `t=${t}s`,
      mem(),
      `  out ${s.messagesOut}  in ${s.messagesIn}  dropped ${s.dropped}  errors ${errors}  | peer: open ${view.open} got ${view.received} replies ${view.replies} failures ${view.failures}`,
    );
  }, REPORT_MS);

  await sleep(SECONDS * 1000);
  clearInterval(broadcaster);
  child.send('stop');
  await childExit;
  // Every client is gone once the peer process exits; wait for the hub to see the last close.
  for (let i = 0; i < 200 && hub.clients.size > 0; i++) await sleep(50);
  clearInterval(sampler);
  clearInterval(reporter);
  const s = hub.stats();
  gc();
  await sleep(100);
  gc();
  const after = mem();
  line('after', after);
  const perConn = (rssAtPeakClients - before.rss) / Math.max(peakClients, 1);
  console.log(
    `summary: peak clients ${peakClients}, peak RSS ${(peakRss / MB).toFixed(1)} MB, ` +
      `RSS per connection ${(perConn / 1024).toFixed(1)} KiB, heap before ${(before.heapUsed / MB).toFixed(1)} MB / after ${(after.heapUsed / MB).toFixed(1)} MB, ` +
      `messages out ${s.messagesOut}, in ${s.messagesIn}, dropped ${s.dropped}, errors ${errors}, peer failures ${view.failures}, clients left ${hub.clients.size}`,
  );
  await hub.close({ timeout: 1000 });
  http.close();
  process.exitCode = hub.clients.size === 0 && view.failures === 0 ? 0 : 1;
}

async function clients(port) {
  const { WebSocket } = await import('ws');
  const url = `ws://127.0.0.1:${port}/ws`;
  const open = new Set();
  let received = 0;
  let replies = 0;
  let failures = 0;
  let stopping = false;
  let nextId = 0;

  function add() {
    return new Promise((resolve) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.on('message', (data) => {
        const text = data.toString();
        if (text.includes('"actioncode":"echo"')) replies++;
        else received++;
      });
      ws.on('open', () => {
        open.add(ws);
        resolve();
      });
      ws.on('error', () => {
        failures++;
        resolve();
      });
      ws.on('close', (code) => {
        open.delete(ws);
        if (!stopping && code !== 1000) failures++;
      });
    });
  }

  const report = () => process.send({ open: open.size, received, replies, failures });
  const reporter = setInterval(report, 1000);
  for (let i = 0; i < CLIENTS; i += 500) {
    await Promise.all(Array.from({ length: Math.min(500, CLIENTS - i) }, add));
  }
  report();

  let turn = 0;
  const churn = setInterval(() => {
    const list = [...open];
    const picked = new Set();
    for (let i = 0; i < CHURN; i++) {
      const ws = list[Math.floor(Math.random() * list.length)];
      if (!ws || picked.has(ws) || ws.readyState !== WebSocket.OPEN) continue;
      picked.add(ws);
      if (i % 2) ws.close(1000);
      else ws.send(JSON.stringify({ actioncode: 'bye' }));
      void add();
    }
    // A request from a slice of the clients each second.
    for (let i = turn++ % 20; i < list.length; i += 20) {
      const ws = list[i];
      if (ws.readyState === WebSocket.OPEN)
        ws.send(JSON.stringify({ actioncode: 'echo', id: ++nextId, data: { n: nextId } }));
    }
  }, 1000);

  await new Promise((r) => process.once('message', r));
  stopping = true;
  clearInterval(churn);
  const closes = [...open].map((ws) => new Promise((r) => (ws.once('close', r), ws.close(1000))));
  await Promise.race([Promise.all(closes), sleep(10_000, undefined, { ref: false })]);
  report();
  clearInterval(reporter);
  process.disconnect();
}
