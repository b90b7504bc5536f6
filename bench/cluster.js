// The cluster scenario: 3 hub processes on one Redis, clients spread over them, broadcasts from
// node 0 to everyone. wshub + wshub/redis against socket.io 4 + @socket.io/redis-adapter, same
// Redis, same clients (`ws`, parsing only what is measured), interleaved in one run.
//
//   node bench/cluster.js [--quick] [--reps N] [--clients N] [--redis redis://host:port]
//                         [--subjects wshub,wshub-secret,socketio]
//
// wshub-secret is wshub with a cluster `secret`: every message HMAC-signed and verified.
//
// Throughput: N broadcasts as fast as the publisher goes; rate = N / time until the last client
// on the two *other* nodes has all N. Latency: a paced stream, publish-to-receive time of every
// frame on the other nodes (one machine, one clock: performance.timeOrigin + now()).
// Without --redis, a private redis-server is started on a free port and stopped at the end.
import { execFileSync, spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now();
const args = process.argv.slice(2);
const value = (name) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};

// --- a hub node (child process) ---

async function node(subject, url, prefix) {
  process.once('disconnect', () => process.exit(0)); // the orchestrator is gone
  const { createClient } = await import('redis');
  const pub = createClient({ url });
  const onError = (err) => console.error(`[${subject}] redis`, err.message);
  pub.on('error', onError);
  await pub.connect();
  const sub = pub.duplicate();
  sub.on('error', onError);
  await sub.connect();
  const server = createHttpServer();
  let broadcast;
  let close;
  if (subject.startsWith('wshub')) {
    const { createManager } = await import('wshub');
    const { createRedisAdapter } = await import('wshub/redis');
    const secret = subject === 'wshub-secret' ? 'bench secret, 32 bytes long......' : undefined;
    const hub = createManager({
      // The blast outpaces Redis on purpose: let it queue (as socket.io's adapter does) rather
      // than drop past the default in-flight bound, so every broadcast is delivered and timed.
      adapter: createRedisAdapter({
        pub,
        sub,
        prefix,
        secret,
        maxPendingMessages: 1e6,
        maxPendingBytes: 2 ** 30,
      }),
      heartbeat: false,
      // the load generator reads as fast as it can; a bench must not close slow readers
      backpressure: { highWaterMark: 256 * 1024 * 1024 },
    });
    hub.handle(server, '/ws');
    broadcast = (data) => hub.broadcast('push', data);
    close = () => hub.close({ timeout: 100 });
  } else {
    const { Server } = await import('socket.io');
    const { createAdapter } = await import('@socket.io/redis-adapter');
    const io = new Server(server, {
      transports: ['websocket'],
      serveClient: false,
      perMessageDeflate: false,
      pingInterval: 600_000,
      pingTimeout: 600_000,
      adapter: createAdapter(pub, sub, { key: prefix }),
    });
    broadcast = (data) => io.emit('push', data);
    close = () => new Promise((resolve) => io.close(() => resolve()));
  }
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const pad = 'x'.repeat(64);
  process.on('message', async (m) => {
    if (m.cmd === 'blast') {
      // Chunks per loop turn, so the broker connection can drain between them.
      let seq = 0;
      while (seq < m.count) {
        for (let i = 0; i < 200 && seq < m.count; i++) broadcast({ seq: seq++, t: now(), pad });
        await new Promise((r) => setImmediate(r));
      }
      process.send({ cmd: 'blasted' });
    } else if (m.cmd === 'pace') {
      const perTick = Math.max(1, Math.round((m.rate * 10) / 1000));
      let seq = 0;
      const ticks = Math.round(m.ms / 10);
      for (let tick = 0; tick < ticks; tick++) {
        for (let i = 0; i < perTick; i++) broadcast({ seq: seq++, t: now(), pad });
        await new Promise((r) => setTimeout(r, 10));
      }
      process.send({ cmd: 'paced', count: seq });
    } else if (m.cmd === 'cpu') {
      const { user, system } = process.cpuUsage();
      process.send({ cmd: 'cpu', us: user + system });
    } else if (m.cmd === 'mark') {
      broadcast({ mark: m.id, t: now() });
    } else if (m.cmd === 'exit') {
      pub.off('error', onError).on('error', () => {});
      sub.off('error', onError).on('error', () => {});
      await close();
      pub.destroy();
      sub.destroy();
      process.exit(0);
    }
  });
  process.send({ cmd: 'ready', port: server.address().port });
}

// --- the orchestrator and load generator ---

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createNetServer().unref();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

async function startRedis() {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
    child.stdout.on('data', (c) => {
      out += c;
      if (out.includes('Ready to accept connections')) resolve();
    });
  });
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

function startNode(subject, url, prefix) {
  const child = spawn(process.execPath, [self, '--node', subject, url, prefix], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waiters = new Map();
  child.on('message', (m) => {
    const w = waiters.get(m.cmd);
    if (w) {
      waiters.delete(m.cmd);
      w(m);
    }
  });
  const wait = (cmd, ms = 60_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${subject} node: no '${cmd}' within ${ms} ms`)),
        ms,
      );
      waiters.set(cmd, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  return { child, wait, send: (m) => child.send(m) };
}

/** One client: counts pushes; in `timing` mode, records publish-to-receive latency. */
class Client {
  count = 0;
  marks = new Set();
  timing = false;
  latencies = [];
  constructor(WebSocket, subject, port, remote) {
    this.sio = subject === 'socketio';
    this.remote = remote;
    const path = this.sio ? '/socket.io/?EIO=4&transport=websocket' : '/ws';
    this.ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
    this.ws.on('error', (err) => console.error('client', err.message));
    this.ready = new Promise((resolve) => {
      this.ws.on('message', (buf) => {
        if (this.sio) {
          // engine.io: 0 open, 2 ping; socket.io: 40 connected, 42 event
          if (buf[0] === 0x30) return void this.ws.send('40');
          if (buf[0] === 0x32) return void this.ws.send('3');
          if (buf[0] === 0x34 && buf[1] === 0x30) return resolve();
          if (buf[1] !== 0x32) return;
        }
        this.onPush(buf);
      });
      if (!this.sio) this.ws.once('open', resolve);
    });
  }
  onPush(buf) {
    if (this.timing || buf.includes('"mark"')) {
      const t = now();
      const data = this.sio ? JSON.parse(buf.subarray(2))[1] : JSON.parse(buf).data;
      if (data.mark !== undefined) return void this.marks.add(data.mark);
      if (this.remote) this.latencies.push(t - data.t);
    }
    this.count++;
  }
}

function until(pred, what, ms = 120_000) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const check = () => {
      if (pred()) return resolve();
      if (Date.now() - started > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 5);
    };
    check();
  });
}

const pct = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function run(subject, url, sizes) {
  const { WebSocket } = await import('ws');
  const prefix = `bench-${subject}-${Math.random().toString(36).slice(2)}`;
  const nodes = [0, 1, 2].map(() => startNode(subject, url, prefix));
  const ports = (await Promise.all(nodes.map((n) => n.wait('ready')))).map((m) => m.port);
  const clients = [];
  for (const [i, port] of ports.entries()) {
    for (let c = 0; c < sizes.perNode; c++)
      clients.push(new Client(WebSocket, subject, port, i !== 0));
  }
  await Promise.all(clients.map((c) => c.ready));
  const remote = clients.filter((c) => c.remote);
  // Marks until every client has one: subscriptions are in place everywhere. Then everything
  // before the last mark has arrived (one publisher's messages are ordered), so counts restart.
  let mark = 0;
  const settle = async () => {
    for (;;) {
      const id = ++mark;
      nodes[0].send({ cmd: 'mark', id });
      try {
        await until(() => clients.every((c) => c.marks.has(id)), 'mark', 500);
        break;
      } catch {}
    }
    for (const c of clients) c.count = 0;
  };

  const cpu = async () => {
    const answers = nodes.map((n) => n.wait('cpu'));
    for (const n of nodes) n.send({ cmd: 'cpu' });
    return (await Promise.all(answers)).reduce((sum, m) => sum + m.us, 0);
  };
  await settle();
  const cpu0 = await cpu();
  const t0 = now();
  nodes[0].send({ cmd: 'blast', count: sizes.blast });
  await until(() => remote.every((c) => c.count >= sizes.blast), 'blast delivered');
  const seconds = (now() - t0) / 1000;
  const throughput = sizes.blast / seconds;
  // Server CPU (3 nodes, user + system) per broadcast: independent of how the OS shares the cores.
  const cpuPer = (await cpu()) - cpu0;

  await settle();
  for (const c of remote) c.timing = true;
  nodes[0].send({ cmd: 'pace', rate: sizes.rate, ms: sizes.paceMs });
  const { count } = await nodes[0].wait('paced');
  await until(() => remote.every((c) => c.count >= count), 'paced stream delivered');
  const lat = remote.flatMap((c) => c.latencies).sort((a, b) => a - b);

  for (const c of clients) c.ws.terminate();
  for (const n of nodes) n.send({ cmd: 'exit' });
  await Promise.all(nodes.map((n) => new Promise((r) => n.child.once('exit', r))));
  return {
    subject,
    throughput,
    cpu: cpuPer / sizes.blast,
    p50: pct(lat, 50),
    p99: pct(lat, 99),
    samples: lat.length,
  };
}

async function main() {
  // bench/run.js pins itself (and so its children) to one core; 3 nodes, Redis and the clients
  // need them all, as in production. Node CPU per broadcast is reported too, independent of this.
  try {
    execFileSync('taskset', ['-apc', `0-${cpus().length - 1}`, String(process.pid)], {
      stdio: 'ignore',
    });
  } catch {}
  const quick = args.includes('--quick');
  const reps = Number(value('--reps') ?? (quick ? 1 : 3));
  const perNode = Number(value('--clients') ?? 10);
  const sizes = quick
    ? { perNode, blast: 5000, rate: 500, paceMs: 1000 }
    : { perNode, blast: 20000, rate: 1000, paceMs: 3000 };
  const own = value('--redis') ? undefined : await startRedis();
  const url = value('--redis') ?? own.url;
  const fmt = (r) =>
    `${r.subject.padEnd(8)} ${Math.round(r.throughput).toString().padStart(7)} broadcasts/s  ${r.cpu.toFixed(0).padStart(4)} µs node CPU/broadcast  p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  (${r.samples} samples)`;
  console.log(
    `3 nodes x ${perNode} clients, broadcasts from node 0; latency on nodes 1-2 at ${sizes.rate}/s; ${reps} rep(s), interleaved`,
  );
  const subjects = (value('--subjects') ?? 'wshub,socketio').split(',');
  const results = Object.fromEntries(subjects.map((s) => [s, []]));
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const subject of subjects) {
        const r = await run(subject, url, sizes);
        results[subject].push(r);
        console.log(`  ${fmt(r)}`);
      }
    }
  } finally {
    own?.stop();
  }
  const med = (subject, key) => median(results[subject].map((r) => r[key]));
  if (results['wshub-secret'] && results.wshub) {
    const cpuOf = (s) => med(s, 'cpu');
    console.log(
      `secret: node CPU per broadcast ${cpuOf('wshub-secret').toFixed(0)} µs vs ${cpuOf('wshub').toFixed(0)} µs without (${(cpuOf('wshub-secret') - cpuOf('wshub')).toFixed(1)} µs, ${(cpuOf('wshub-secret') / cpuOf('wshub')).toFixed(2)}x); throughput ${(med('wshub-secret', 'throughput') / med('wshub', 'throughput')).toFixed(2)}x`,
    );
  }
  if (!results.socketio || !results.wshub) return;
  const tp = med('wshub', 'throughput') / med('socketio', 'throughput');
  const p99 = med('wshub', 'p99') / med('socketio', 'p99');
  const p50 = med('wshub', 'p50') / med('socketio', 'p50');
  const cpu = med('wshub', 'cpu') / med('socketio', 'cpu');
  console.log(
    `medians: wshub ${Math.round(med('wshub', 'throughput'))}/s p50 ${med('wshub', 'p50').toFixed(2)} p99 ${med('wshub', 'p99').toFixed(2)} ms; socket.io ${Math.round(med('socketio', 'throughput'))}/s p50 ${med('socketio', 'p50').toFixed(2)} p99 ${med('socketio', 'p99').toFixed(2)} ms`,
  );
  console.log(
    `ratios (wshub / socket.io): throughput ${tp.toFixed(2)}x (target >= 1.5x), node CPU per broadcast ${cpu.toFixed(2)}x, p50 ${p50.toFixed(2)}x, p99 ${p99.toFixed(2)}x (target < 1)`,
  );
  process.exitCode = 0;
}

if (args[0] === '--node') await node(args[1], args[2], args[3]);
else await main();
