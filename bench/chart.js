// Draws a run's medians as a plain SVG bar chart: every scenario's server cost relative to raw ws.
//
//   node bench/chart.js [bench/results/<run>.jsonl]   → bench/chart.svg (newest run by default),
//                                                      and prints README's table
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkTargets, summarize } from './summary.js';

const COLORS = { wshub: '#2563eb', ws: '#6b7280', socketio: '#d97706', floor: '#16a34a' };
const LABELS = { wshub: 'wshub', ws: 'raw ws', socketio: 'socket.io 4', floor: 'net floor' };
const TITLES = {
  fanout: (n) => `fan-out, ${n.toLocaleString('en-US')} clients (µs/msg)`,
  burst: (n) => `10 per turn, ${n.toLocaleString('en-US')} clients (µs/msg)`,
  reqrep: (n) => `request/reply, ${n.toLocaleString('en-US')} clients (µs/req)`,
  flood: (n) => `${n} victims' p99 beside a flooder (µs)`,
  memory: (n) => `idle connection, ${n.toLocaleString('en-US')} (KB RSS)`,
  handshake: () => 'handshake (µs/conn)',
};
const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** The SVG for `rows` (run.js's summary rows): bars are each subject's median ÷ raw ws's. */
export function renderChart(rows, meta) {
  const groups = [];
  const order = Object.keys(TITLES);
  rows = [...rows].sort(
    (a, b) => order.indexOf(a.scenario) - order.indexOf(b.scenario) || a.n - b.n,
  );
  for (const r of rows) {
    let g = groups.find((x) => x.scenario === r.scenario && x.n === r.n);
    if (!g) groups.push((g = { scenario: r.scenario, n: r.n, rows: [] }));
    g.rows.push(r);
  }
  const CAP = 3; // bars past 3× are cut; their label still gives the ratio
  const W = 760;
  const LEFT = 250;
  const PLOT = W - LEFT - 90;
  const BAR = 13;
  const top = 76;
  const groupH = (g) => 22 + g.rows.length * (BAR + 3) + 10;
  const H = top + groups.reduce((h, g) => h + groupH(g), 0) + 30;
  const x = (ratio) => LEFT + (Math.min(ratio, CAP) / CAP) * PLOT;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="12" y="22" font-size="15" font-weight="600">Server cost relative to raw ws — lower is better</text>`,
    `<text x="12" y="40" fill="#555">Server CPU µs per message, request or connection; RSS KB per idle connection.</text>`,
    `<text x="12" y="56" fill="#555">${esc(`Medians of ${meta.reps} interleaved runs · ${meta.cpu ?? 'cpu'} ×${meta.cores} · Node ${meta.node} · ${meta.date.slice(0, 10)}`)}</text>`,
  ];
  for (let t = 0; t <= CAP; t += 0.5) {
    const gx = x(t).toFixed(1);
    out.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${H - 26}" stroke="${t === 1 ? '#111' : '#e5e7eb'}" stroke-width="${t === 1 ? 1.2 : 1}"${t === 1 ? ' stroke-dasharray="4 3"' : ''}/>`,
    );
    out.push(`<text x="${gx}" y="${H - 12}" text-anchor="middle" fill="#555">${t}×</text>`);
  }
  let y = top;
  for (const g of groups) {
    out.push(`<text x="12" y="${y + 14}" font-weight="600">${esc(TITLES[g.scenario](g.n))}</text>`);
    y += 22;
    for (const r of g.rows) {
      const ratio = r.vsWs ?? 0;
      out.push(
        `<text x="${LEFT - 8}" y="${y + BAR - 2}" text-anchor="end">${esc(LABELS[r.subject] ?? r.subject)}</text>`,
      );
      out.push(
        `<rect x="${LEFT}" y="${y}" width="${(x(ratio) - LEFT).toFixed(1)}" height="${BAR}" fill="${COLORS[r.subject] ?? '#999'}"/>`,
      );
      const digits = r.value >= 100 ? 0 : r.value >= 10 ? 1 : 2;
      out.push(
        `<text x="${(x(ratio) + 5).toFixed(1)}" y="${y + BAR - 2}" fill="#333" stroke="#fff" stroke-width="4" stroke-linejoin="round" paint-order="stroke">${ratio.toFixed(2)}× · ${r.value.toFixed(digits)}</text>`,
      );
      y += BAR + 3;
    }
    y += 10;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** The medians as a Markdown table (README's Performance section). */
export function markdownTable(rows) {
  const lines = [
    '| scenario | metric | wshub | raw ws | socket.io 4 | net floor | wshub ÷ ws | wshub ÷ socket.io |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const k = (n) => (n >= 1000 ? `${n / 1000}k` : String(n));
  const line = (scenario, n, label, metric, key, digits) => {
    const at = (subject) =>
      rows.find((r) => r.scenario === scenario && r.n === n && r.subject === subject)?.[key];
    const v = Object.fromEntries(['wshub', 'ws', 'socketio', 'floor'].map((s) => [s, at(s)]));
    if (v.wshub === undefined) return;
    const wshub = rows.find((r) => r.scenario === scenario && r.n === n && r.subject === 'wshub');
    const f = (x) =>
      x === undefined
        ? '–'
        : x.toLocaleString('en-US', {
            maximumFractionDigits: digits,
            minimumFractionDigits: digits,
          });
    const r = (other) => {
      const x = wshub.ratios[other]?.[key === 'p99ms' ? 'p99' : key];
      return x === undefined ? '–' : `${x.toFixed(2)}×`;
    };
    lines.push(
      `| ${label} | ${metric} | **${f(v.wshub)}** | ${f(v.ws)} | ${f(v.socketio)} | ${f(v.floor)} | ${r('ws')} | ${r('socketio')} |`,
    );
  };
  const ns = (scenario) =>
    [...new Set(rows.filter((r) => r.scenario === scenario).map((r) => r.n))].sort((a, b) => a - b);
  for (const n of ns('fanout'))
    line('fanout', n, `(a) fan-out, ${k(n)} clients`, 'CPU µs/msg', 'usPerMsg', 2);
  for (const n of ns('burst'))
    line('burst', n, `(b) 10 per turn, ${k(n)} clients`, 'CPU µs/msg', 'usPerMsg', 2);
  for (const n of ns('reqrep')) {
    line('reqrep', n, `(c) request/reply, ${k(n)} clients`, 'CPU µs/req', 'usPerReq', 1);
    line('reqrep', n, `(c) request/reply, ${k(n)} clients`, 'req/s', 'reqPerSec', 0);
    line('reqrep', n, `(c) request/reply, ${k(n)} clients`, 'p99 ms', 'p99ms', 1);
  }
  for (const n of ns('memory')) {
    line('memory', n, `(d) idle connections, ${k(n)}`, 'RSS KB/conn', 'rssKB', 2);
    line('memory', n, `(d) idle connections, ${k(n)}`, 'heap KB/conn', 'heapKB', 2);
  }
  for (const n of ns('handshake')) {
    line('handshake', n, `(e) handshakes, ${k(n)}`, 'CPU µs/conn', 'usPerConn', 0);
    line('handshake', n, `(e) handshakes, ${k(n)}`, 'conn/s', 'perSec', 0);
  }
  return lines.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = join(here, 'results');
  const file =
    process.argv[2] ??
    join(
      dir,
      readdirSync(dir)
        .filter((f) => f.endsWith('.jsonl'))
        .sort()
        .at(-1),
    );
  const lines = readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const meta = lines.find((l) => l.type === 'meta');
  const summary = lines.findLast((l) => l.type === 'summary');
  const rows = summarize(lines.filter((l) => l.type === 'measurement'));
  writeFileSync(join(here, 'chart.svg'), renderChart(rows, meta));
  const load = (l) => (l ?? []).map((x) => x.toFixed(1)).join(' ');
  console.log(
    `bench/chart.svg from ${file}; load ${load(meta.loadBefore)} → ${load(summary?.loadAfter)}\n`,
  );
  console.log(
    markdownTable(rows.map((r) => (r.p99 === undefined ? r : { ...r, p99ms: r.p99 / 1000 }))),
  );
  for (const t of checkTargets(rows))
    console.log(`${t.met ? 'met   ' : 'MISSED'} ${t.target.padEnd(36)} ${t.ratio.toFixed(2)}`);
}
