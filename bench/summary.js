// Medians and ratios of a run's measurements, and the targets checked on them.
//
// A ratio is the median of per-repetition ratios: wshub's run and raw ws's run of the same
// repetition are seconds apart, so the machine's slow drifts cancel out of each pair.

export const median = (xs) => {
  const s = xs.filter((x) => x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (!s.length) return undefined;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Fan-out, steady or bursty: server CPU per delivered push. */
const PUSHES = {
  key: 'usPerMsg',
  unit: 'µs/msg',
  cols: [
    ['msgPerSec', 'msg/s', 0],
    ['srvUtil', 'srv%', '%'],
    ['cliUtil', 'load%', '%'],
  ],
};

/** Per scenario: the metric the ratios are taken on, and the columns printed. */
export const METRICS = {
  fanout: PUSHES,
  burst: PUSHES,
  reqrep: {
    key: 'usPerReq',
    unit: 'µs/req',
    cols: [
      ['reqPerSec', 'req/s', 0],
      ['p50', 'p50 µs', 0],
      ['p99', 'p99 µs', 0],
      ['srvUtil', 'srv%', '%'],
    ],
  },
  flood: {
    key: 'p99',
    unit: 'p99 µs',
    cols: [
      ['slowdown', '÷ idle p99', 2],
      ['p50', 'p50 µs', 0],
      ['idleP99', 'idle p99', 0],
      ['floodPerSec', 'flood/s', 0],
      ['victimPerSec', 'victim/s', 0],
    ],
  },
  memory: {
    key: 'rssKB',
    unit: 'KB RSS/conn',
    cols: [
      ['heapKB', 'heap KB', 2],
      ['externalKB', 'ext KB', 2],
    ],
  },
  handshake: {
    key: 'usPerConn',
    unit: 'µs/conn',
    cols: [
      ['perSec', 'conn/s', 0],
      ['srvUtil', 'srv%', '%'],
      ['cliUtil', 'load%', '%'],
    ],
  },
};

/**
 * One row per scenario, size and subject: the median of every metric, and `ratios.ws[key]` /
 * `ratios.socketio[key]` (paired, see above); `value`, `vsWs`, `vsSocketio` are the primary metric's.
 */
export function summarize(measurements) {
  const groups = new Map();
  for (const m of measurements) {
    const key = `${m.scenario} ${m.n}`;
    if (!groups.has(key)) groups.set(key, { scenario: m.scenario, n: m.n, subjects: new Map() });
    const g = groups.get(key).subjects;
    if (!g.has(m.subject)) g.set(m.subject, []);
    g.get(m.subject).push(m);
  }
  const rows = [];
  for (const { scenario, n, subjects } of groups.values()) {
    const spec = METRICS[scenario];
    const keys = [spec.key, ...spec.cols.map((c) => c[0])];
    for (const [subject, ms] of subjects) {
      const row = { scenario, n, subject, runs: ms.length, ratios: {} };
      for (const k of keys) row[k] = median(ms.map((m) => m[k]));
      for (const other of ['ws', 'socketio']) {
        const base = subjects.get(other);
        if (!base) continue;
        row.ratios[other] = {};
        for (const k of keys) {
          const pairs = ms.map((m) => {
            const b = base.find((x) => x.rep === m.rep);
            return b ? m[k] / b[k] : undefined;
          });
          row.ratios[other][k] = median(pairs);
        }
      }
      row.value = row[spec.key];
      row.vsWs = row.ratios.ws?.[spec.key];
      row.vsSocketio = row.ratios.socketio?.[spec.key];
      rows.push(row);
    }
  }
  return rows;
}

/** The targets, on the paired ratios. */
export function checkTargets(rows) {
  const out = [];
  const check = (label, scenario, n, key, other, limit, atLeast = false) => {
    const r = rows.find((x) => x.scenario === scenario && x.n === n && x.subject === 'wshub')
      ?.ratios[other]?.[key];
    if (r === undefined) return;
    out.push({ target: label, ratio: r, limit, met: atLeast ? r >= limit : r <= limit });
  };
  const sizes = (scenario) =>
    [...new Set(rows.filter((r) => r.scenario === scenario).map((r) => r.n))].sort((a, b) => a - b);
  for (const n of sizes('fanout')) {
    check(`fanout ${n}: wshub ≤ 0.85× ws`, 'fanout', n, 'usPerMsg', 'ws', 0.85);
    check(`fanout ${n}: wshub ≤ 0.6× socket.io`, 'fanout', n, 'usPerMsg', 'socketio', 0.6);
  }
  for (const n of sizes('burst')) {
    check(`burst ${n}: wshub ≤ 0.25× ws`, 'burst', n, 'usPerMsg', 'ws', 0.25);
    check(`burst ${n}: wshub ≤ 0.6× socket.io`, 'burst', n, 'usPerMsg', 'socketio', 0.6);
  }
  for (const n of sizes('reqrep')) {
    check(`reqrep ${n}: µs/req ≤ 1.1× ws`, 'reqrep', n, 'usPerReq', 'ws', 1.1);
    check(`reqrep ${n}: p99 ≤ 1.1× ws`, 'reqrep', n, 'p99', 'ws', 1.1);
  }
  // Fairness is the victims' own slowdown, not a comparison with ws (whose default is unfair).
  for (const r of rows.filter((x) => x.scenario === 'flood' && x.subject === 'wshub')) {
    out.push({
      target: 'flood: victim p99 ≤ 2× unloaded',
      ratio: r.slowdown,
      limit: 2,
      met: r.slowdown <= 2,
    });
  }
  for (const n of sizes('memory')) {
    check(`memory ${n}: RSS/conn ≤ 1.15× ws`, 'memory', n, 'rssKB', 'ws', 1.15);
    check(`memory ${n}: heap/conn ≤ 1.15× ws`, 'memory', n, 'heapKB', 'ws', 1.15);
  }
  for (const n of sizes('handshake'))
    check(`handshakes/s ≥ 0.9× ws`, 'handshake', n, 'perSec', 'ws', 0.9, true);
  return out;
}
