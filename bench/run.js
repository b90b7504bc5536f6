// The benchmark suite: wshub against raw ws, socket.io 4 and a net floor, in one interleaved run.
//
//   node bench/run.js [fanout] [burst] [reqrep] [flood] [memory] [handshake] [cluster]
//                     [--quick] [--reps N] [--subjects wshub,ws,…] [--prof]
//
// Each measurement runs in fresh processes: the server pinned to one core, the load generator
// to another (taskset). Subjects are interleaved (A B C D A B C D …); the table gives medians and
// the medians of per-round ratios. The primary metric is server CPU µs (user + system,
// process.cpuUsage) per delivered message: on 2 cores the load generator, not the server, often
// limits wall-clock throughput. A run that fails the delivery check is reported, never scored.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderChart } from './chart.js';
import { checkTargets, METRICS, summarize } from './summary.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const SCENARIOS = ['fanout', 'burst', 'reqrep', 'flood', 'memory', 'handshake', 'cluster'];
const ALL_SUBJECTS = ['wshub', 'ws', 'socketio', 'floor'];

const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const value = (name) => {
  const i = args.indexOf(name);
  return i === -1 ? undefined : args[i + 1];
};
if (flag('--help') || flag('-h')) {
  console.log(`node bench/run.js [${SCENARIOS.join('] [')}]
                  [--quick] [--reps N] [--subjects ${ALL_SUBJECTS.join(',')}] [--prof]
  subjects may also be wshub:<path to another build's index.js>, floor:plain, floor:lossy`);
  process.exit(0);
}
const quick = flag('--quick');
const prof = flag('--prof');
const reps = Number(value('--reps') ?? (quick ? 1 : 5));
const subjects = (value('--subjects') ?? ALL_SUBJECTS.join(',')).split(',');
const valued = new Set([value('--reps'), value('--subjects')]);
let wanted = args.filter((a) => !a.startsWith('--') && !valued.has(a));
for (const w of wanted)
  if (!SCENARIOS.includes(w)) throw new Error(`unknown scenario ${w}; one of ${SCENARIOS}`);
const clusterBench = join(here, 'cluster.js');
if (wanted.length === 0)
  wanted = SCENARIOS.filter((s) => s !== 'cluster' || existsSync(clusterBench));
const want = new Set(wanted);

// Work per measured window: enough for ~1-3 s of server CPU on the slowest subject.
const SIZES = quick
  ? {
      big: 10_000,
      small: 1_000,
      fan: { 1000: 60, 10000: 8 },
      burst: { 1000: 6, 10000: 1 },
      rr: 1000,
    }
  : {
      big: 10_000,
      small: 1_000,
      fan: { 1000: 200, 10000: 24 },
      burst: { 1000: 20, 10000: 3 },
      rr: 2000,
    };
const VICTIMS = 10; // flood: clients with one request in flight beside the flooder
const FLOOD_BATCH = 2000; // flood: echo requests per TCP write of the flooder
const BURST = 10; // broadcasts per loop turn in the bursty scenario
const WINDOW_MSGS = 40_000; // pushes in flight at most before waiting for the load generator
const CONCURRENCY = 100; // handshakes in flight

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('dist/ is missing: run `npm run build` first (`npm run bench` does).');
  process.exit(1);
}

function hasTaskset() {
  try {
    execFileSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore' });
    return cpus().length >= 2;
  } catch {
    return false;
  }
}
const pinned = hasTaskset();
const SERVER_CORE = 0;
const CLIENT_CORE = 1;
// The orchestrator shares the load generator's core, so the server's core runs only the server.
if (pinned)
  execFileSync('taskset', ['-pc', String(CLIENT_CORE), String(process.pid)], { stdio: 'ignore' });

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const resultsFile = join(resultsDir, `${stamp}.jsonl`);
const record = (obj) => appendFileSync(resultsFile, JSON.stringify(obj) + '\n');

/** A child process spoken to over IPC: `call(t, payload)` resolves its answer with the same seq. */
class Proc {
  #seq = 0;
  #waiting = new Map();
  #early = [];
  constructor(file, argv, core, nodeFlags = []) {
    const cmd = [...nodeFlags, join(here, file), ...argv];
    this.child = pinned
      ? spawn('taskset', ['-c', String(core), process.execPath, ...cmd], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          cwd: root,
        })
      : spawn(process.execPath, cmd, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], cwd: root });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.on('message', (m) => {
      const key = m.seq === undefined ? m.t : `${m.t}#${m.seq}`;
      const w = this.#waiting.get(key);
      if (!w) return void this.#early.push(m);
      this.#waiting.delete(key);
      clearTimeout(w.timer);
      if (m.error) w.reject(new Error(`${file} ${m.t}: ${m.error}`));
      else w.resolve(m);
    });
    this.child.once('exit', (code) => {
      for (const w of this.#waiting.values()) w.reject(new Error(`${file} exited with ${code}`));
      this.#waiting.clear();
    });
  }

  #wait(key, ms) {
    const early = this.#early.findIndex(
      (m) => (m.seq === undefined ? m.t : `${m.t}#${m.seq}`) === key,
    );
    if (early !== -1) return Promise.resolve(this.#early.splice(early, 1)[0]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(key);
        reject(new Error(`timed out after ${ms} ms waiting for ${key}`));
      }, ms);
      this.#waiting.set(key, { resolve, reject, timer });
    });
  }

  first(t, ms = 30_000) {
    return this.#wait(t, ms);
  }

  call(t, payload = {}, ms = 120_000) {
    const seq = ++this.#seq;
    const answer = this.#wait(`${t}#${seq}`, ms);
    this.child.send({ ...payload, t, seq });
    return answer;
  }

  async stop() {
    if (this.child.exitCode !== null) return;
    this.child.send({ t: 'exit' });
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }
}

const measurements = [];
function measured(m) {
  measurements.push(m);
  record({ type: 'measurement', ...m });
}

/** Both processes' CPU over one window, as the share of one core each. */
const util = (srv, cli) => ({ srvUtil: srv.cpu / srv.wall, cliUtil: cli.cpu / cli.wall });

async function both(srv, cli, t) {
  const [s, c] = await Promise.all([srv.call(t), cli.call(t)]);
  return [s, c];
}

/**
 * One fan-out measurement: `turns` loop turns of `perTurn` broadcasts to `n` clients, in windows
 * small enough that no socket buffer fills, after one unmeasured window of warm-up (unless `warm`).
 */
async function fanout(srv, cli, state, n, turns, perTurn, warm = false) {
  const windowTurns = Math.max(1, Math.floor(WINDOW_MSGS / (n * perTurn)));
  const run = async (count) => {
    for (let done = 0; done < count;) {
      const k = Math.min(windowTurns, count - done);
      const broadcasts = k * perTurn;
      state.pushes += broadcasts * n;
      // A window is at most WINDOW_MSGS pushes, a second or two: a missing push fails fast.
      const arrived = cli.call('expect', { total: state.pushes }, 20_000);
      const sent = await srv.call('fan', { turns: k, perTurn, seq: state.seq });
      state.seq += broadcasts;
      if (sent.queued !== broadcasts * n)
        throw new Error(`server queued ${sent.queued}, expected ${broadcasts * n}`);
      await arrived.catch(async (err) => {
        const check = await cli.call('verify', { perConn: state.seq });
        throw new Error(`delivery check failed: ${[err.message, ...check.problems].join('; ')}`);
      });
      done += k;
    }
  };
  if (!warm) await run(Math.min(windowTurns, turns));
  await both(srv, cli, 'mark');
  await run(turns);
  const [s, c] = await both(srv, cli, 'read');
  const deliveries = turns * perTurn * n;
  return {
    deliveries,
    usPerMsg: s.cpu / deliveries,
    msgPerSec: deliveries / (c.wall / 1e6),
    ...util(s, c),
  };
}

/** With --prof, the server writes a CPU profile per run to bench/results/prof/. */
function profFlags(session, subject, n, rep) {
  if (!prof) return [];
  const name = `${session}-${n}-${subject.replace(/[^\w.-]+/g, '_')}-${rep}.cpuprofile`;
  return ['--cpu-prof', `--cpu-prof-dir=${join(resultsDir, 'prof')}`, `--cpu-prof-name=${name}`];
}

/** One process pair with `n` idle clients, measuring whatever the wanted scenarios ask at `n`. */
async function clientsSession(subject, n, rep) {
  const srv = new Proc('server.js', [subject], SERVER_CORE, [
    '--expose-gc',
    ...profFlags('clients', subject, n, rep),
  ]);
  const cli = new Proc('load.js', [], CLIENT_CORE);
  try {
    const [{ port, path }] = await Promise.all([srv.first('listening'), cli.first('ready')]);
    const base = want.has('memory') && n === SIZES.big ? await srv.call('mem') : undefined;
    await both(srv, cli, 'mark');
    const conn = await cli.call('connect', { n, port, path, concurrency: CONCURRENCY }, 300_000);
    const [s, c] = await both(srv, cli, 'read');
    if (conn.connected !== n || s.clients !== n)
      throw new Error(`connected ${conn.connected}, server sees ${s.clients}`);
    if (want.has('handshake') && n === SIZES.big) {
      measured({
        scenario: 'handshake',
        n,
        subject,
        rep,
        perSec: n / (conn.wall / 1e6),
        usPerConn: s.cpu / n,
        ...util(s, c),
      });
    }
    if (base) {
      await new Promise((r) => setTimeout(r, 200));
      const after = await srv.call('mem');
      const per = (k) => (after[k] - base[k]) / n / 1024;
      measured({
        scenario: 'memory',
        n,
        subject,
        rep,
        rssKB: per('rss'),
        heapKB: per('heapUsed'),
        externalKB: per('external'),
      });
    }
    const state = { seq: 0, pushes: 0 };
    if (want.has('fanout')) {
      const r = await fanout(srv, cli, state, n, SIZES.fan[n], 1);
      measured({ scenario: 'fanout', n, subject, rep, ...r });
    }
    if (want.has('burst')) {
      const r = await fanout(srv, cli, state, n, SIZES.burst[n], BURST, want.has('fanout'));
      measured({ scenario: 'burst', n, subject, rep, ...r });
    }
    // The correctness gate: every connection got exactly every push, each a well-formed frame.
    const check = await cli.call('verify', { perConn: state.seq });
    if (!check.ok) throw new Error(`delivery check failed: ${check.problems.join('; ')}`);
  } finally {
    await Promise.all([srv.stop(), cli.stop()]);
  }
}

/** Request/reply: every client keeps one `echo` request in flight. */
async function reqrepSession(subject, n, rep) {
  const srv = new Proc('server.js', [subject], SERVER_CORE, profFlags('reqrep', subject, n, rep));
  const cli = new Proc('load.js', [], CLIENT_CORE);
  try {
    const [{ port, path }] = await Promise.all([srv.first('listening'), cli.first('ready')]);
    await cli.call('connect', { n, port, path, concurrency: CONCURRENCY }, 120_000);
    await cli.call('rrStart');
    await new Promise((r) => setTimeout(r, 500));
    await both(srv, cli, 'mark');
    await new Promise((r) => setTimeout(r, SIZES.rr));
    const [s, c] = await both(srv, cli, 'read');
    await cli.call('rrStop');
    if (!c.ok) throw new Error(`reply check failed: ${c.problems.join('; ')}`);
    if (s.served === 0) throw new Error('no requests served');
    measured({
      scenario: 'reqrep',
      n,
      subject,
      rep,
      usPerReq: s.cpu / s.served,
      reqPerSec: c.replies / (c.wall / 1e6),
      p50: c.p50,
      p99: c.p99,
      ...util(s, c),
    });
  } finally {
    await Promise.all([srv.stop(), cli.stop()]);
  }
}

/**
 * A flood: VICTIMS clients each keep one `echo` in flight, first alone (their unloaded latency),
 * then beside one client that writes FLOOD_BATCH echo requests per TCP write, two batches in
 * flight, reading its replies. The metric is the victims' p99 under the flood; `slowdown` is that
 * over their unloaded p99 in the same process pair.
 */
async function floodSession(subject, rep) {
  const srv = new Proc(
    'server.js',
    [subject],
    SERVER_CORE,
    profFlags('flood', subject, VICTIMS, rep),
  );
  const cli = new Proc('load.js', [], CLIENT_CORE);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  try {
    const [{ port, path }] = await Promise.all([srv.first('listening'), cli.first('ready')]);
    await cli.call('connect', { n: 1 + VICTIMS, port, path, concurrency: CONCURRENCY }, 60_000);
    await cli.call('rrStart', { from: 1 });
    await sleep(500);
    await both(srv, cli, 'mark');
    await sleep(SIZES.rr);
    const [, idle] = await both(srv, cli, 'read');
    await cli.call('floodStart', { batch: FLOOD_BATCH });
    await sleep(500);
    await both(srv, cli, 'mark');
    await sleep(SIZES.rr);
    const [s, c] = await both(srv, cli, 'read');
    await cli.call('floodStop');
    await cli.call('rrStop');
    if (!c.ok) throw new Error(`reply check failed: ${c.problems.join('; ')}`);
    if (!c.floodReplies || !c.replies)
      throw new Error(`no progress: ${c.floodReplies} flood replies, ${c.replies} victim replies`);
    measured({
      scenario: 'flood',
      n: VICTIMS,
      subject,
      rep,
      p99: c.p99,
      p50: c.p50,
      idleP50: idle.p50,
      idleP99: idle.p99,
      slowdown: c.p99 / idle.p99,
      victimPerSec: c.replies / (c.wall / 1e6),
      floodPerSec: c.floodReplies / (c.wall / 1e6),
      ...util(s, c),
    });
  } finally {
    await Promise.all([srv.stop(), cli.stop()]);
  }
}

const sessions = [];
if (want.has('handshake') || want.has('memory') || want.has('fanout') || want.has('burst')) {
  sessions.push({ name: `clients ${SIZES.big}`, run: (s, r) => clientsSession(s, SIZES.big, r) });
}
if (want.has('fanout') || want.has('burst')) {
  sessions.unshift({
    name: `clients ${SIZES.small}`,
    run: (s, r) => clientsSession(s, SIZES.small, r),
  });
}
if (want.has('reqrep')) {
  for (const n of [100, 1000])
    sessions.push({ name: `reqrep ${n}`, run: (s, r) => reqrepSession(s, n, r) });
}
if (want.has('flood')) sessions.push({ name: 'flood', run: floodSession });

// --- reporting ---

const fmt = (v, how) => {
  if (v === undefined || Number.isNaN(v)) return '–';
  if (how === '%') return `${Math.round(v * 100)}%`;
  return v.toLocaleString('en-US', { maximumFractionDigits: how, minimumFractionDigits: how });
};

function printTable(rows) {
  const lines = [];
  const pad = (s, w, right) => (right ? String(s).padStart(w) : String(s).padEnd(w));
  for (const scenario of Object.keys(METRICS)) {
    const rs = rows.filter((r) => r.scenario === scenario);
    if (!rs.length) continue;
    const spec = METRICS[scenario];
    // × columns: the median of per-repetition ratios (bench/summary.js)
    const head = [
      'scenario',
      'subject',
      spec.unit,
      '× ws',
      '× socket.io',
      ...spec.cols.map((c) => c[1]),
    ];
    lines.push(head.map((h, i) => pad(h, i < 2 ? 14 : 12, i >= 2)).join(''));
    for (const r of rs) {
      const cells = [
        `${scenario} ${r.n >= 1000 ? `${r.n / 1000}k` : r.n}`,
        r.subject,
        fmt(r.value, 2),
        fmt(r.vsWs, 2),
        fmt(r.vsSocketio, 2),
        ...spec.cols.map(([k, , how]) => fmt(r[k], how)),
      ];
      lines.push(cells.map((c, i) => pad(c, i < 2 ? 14 : 12, i >= 2)).join(''));
    }
    lines.push('');
  }
  console.log(lines.join('\n'));
}

function printTargets(targets) {
  for (const t of targets)
    console.log(`${t.met ? 'met   ' : 'MISSED'} ${t.target.padEnd(36)} ${t.ratio.toFixed(2)}`);
}

// --- main ---

const meta = {
  type: 'meta',
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model,
  cores: cpus().length,
  memGiB: Math.round(totalmem() / 2 ** 30),
  pinned,
  reps,
  quick,
  scenarios: wanted,
  subjects,
  versions: Object.fromEntries(
    ['ws', 'socket.io', 'engine.io'].map((p) => [
      p,
      JSON.parse(readFileSync(join(root, 'node_modules', p, 'package.json'), 'utf8')).version,
    ]),
  ),
  loadBefore: loadavg(),
};
record(meta);
console.log(
  `wshub bench: ${meta.cpu} ×${meta.cores}, Node ${meta.node}, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}` +
    `${pinned ? `, server on core ${SERVER_CORE}, load generator on core ${CLIENT_CORE}` : ', NOT pinned (no taskset)'}`,
);
console.log(
  `scenarios: ${wanted.join(' ')}; subjects: ${subjects.join(' ')}; ${reps} repetition(s)\n`,
);

const started = Date.now();
let failures = 0;
for (const session of sessions) {
  for (let rep = 1; rep <= reps; rep++) {
    for (const subject of subjects) {
      const t0 = Date.now();
      try {
        await session.run(subject, rep);
        process.stderr.write(
          `  ${session.name} ${subject} #${rep} ${((Date.now() - t0) / 1000).toFixed(1)} s\n`,
        );
      } catch (err) {
        failures++;
        record({
          type: 'failure',
          session: session.name,
          subject,
          rep,
          error: String(err.message),
        });
        console.error(`  ${session.name} ${subject} #${rep} FAILED: ${err.message}`);
      }
    }
  }
}

if (measurements.length) {
  const rows = summarize(measurements);
  console.log('');
  printTable(rows);
  const targets = checkTargets(rows);
  printTargets(targets);
  meta.loadAfter = loadavg();
  record({
    type: 'summary',
    rows,
    targets,
    loadAfter: meta.loadAfter,
    seconds: (Date.now() - started) / 1000,
  });
  const svg = join(resultsDir, `${stamp}.svg`);
  writeFileSync(svg, renderChart(rows, meta));
  console.log(
    `\nraw results: ${resultsFile}\nchart: ${svg} (node bench/chart.js updates bench/chart.svg)`,
  );
}
if (want.has('cluster')) {
  console.log('\ncluster (bench/cluster.js):');
  const forward = [
    ...(quick ? ['--quick'] : []),
    ...(value('--reps') ? ['--reps', value('--reps')] : []),
  ];
  const child = spawn(process.execPath, [clusterBench, ...forward], {
    stdio: 'inherit',
    cwd: root,
  });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  if (code !== 0) failures++;
}
console.log(
  `\n${((Date.now() - started) / 1000).toFixed(0)} s, load ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
process.exitCode = failures ? 1 : 0;
