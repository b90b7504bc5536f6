// The built package as users get it (run after `npm run build`, as `npm test` does): loaded by
// name from a child process, packed, and linted with publint and attw.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers/child.ts';
import { within } from './helpers/wait.ts';

const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  exports: Record<string, unknown>;
};

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program from the repo root; resolves its exit code and output (never rejects on exit code). */
function exec(file: string, args: string[], ms = 30_000): Promise<Ran> {
  const ran = new Promise<Ran>((resolve, reject) => {
    execFile(file, args, { cwd: ROOT, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (err && code === -1)
        reject(err as Error); // ExecFileException is an Error
      else resolve({ code, stdout, stderr });
    });
  });
  return within(ran, ms, `${file} ${args.join(' ')}`);
}

const node = (args: string[]) => exec(process.execPath, args);
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);

before(() => {
  assert.ok(
    existsSync(join(ROOT, 'dist/index.js')),
    'dist/ is missing: run `npm run build` first (npm test does)',
  );
});

const VALUES = [
  'CloseCode',
  'Code',
  'HubError',
  'InMemoryAdapter',
  'createManager',
  'toCamel',
  'toSnake',
];

test("require('wshub') by name from CommonJS gets the same module instance as import()", async () => {
  const script = `
    const cjs = require('wshub');
    import('wshub').then((esm) => {
      const hub = cjs.createManager({ actions: { getV2Data: () => 1 } });
      console.log(JSON.stringify({
        keys: Object.keys(cjs).filter((k) => k !== '__esModule').sort(),
        same: Object.keys(esm).every((k) => esm[k] === cjs[k]),
        snake: cjs.toSnake('getV2Data'),
        size: hub.clients.size,
        code: new cjs.HubError(cjs.Code.MethodNotFound, 'x').code,
      }));
      return hub.close();
    });
  `;
  const ran = await node(['--input-type=commonjs', '-e', script]);
  assert.equal(ran.stderr, '', 'no warnings');
  assert.equal(ran.code, 0);
  const out = JSON.parse(ran.stdout) as { keys: string[] };
  assert.deepEqual(out, { keys: out.keys, same: true, snake: 'get_v2_data', size: 0, code: 5 });
  for (const name of VALUES) assert.ok(out.keys.includes(name), `exports ${name}`);
});

test("import('wshub') by name resolves the exports map to dist/", async () => {
  const script = `
    const m = await import('wshub');
    console.log(JSON.stringify({ url: import.meta.resolve('wshub'), keys: Object.keys(m).sort() }));
  `;
  const ran = await node(['--input-type=module', '-e', script]);
  assert.equal(ran.code, 0, ran.stderr);
  const out = JSON.parse(ran.stdout) as { url: string; keys: string[] };
  assert.equal(out.url, new URL('dist/index.js', `file://${ROOT}`).href);
  for (const name of VALUES) assert.ok(out.keys.includes(name), `exports ${name}`);
});

test("'wshub/redis' loads by name with require() and import()", async () => {
  const script = `
    const cjs = require('wshub/redis');
    import('wshub/redis').then((esm) => {
      console.log(JSON.stringify({
        cjs: typeof cjs.createRedisAdapter,
        same: esm.createRedisAdapter === cjs.createRedisAdapter,
      }));
    });
  `;
  const ran = await node(['--input-type=commonjs', '-e', script]);
  assert.equal(ran.code, 0, ran.stderr);
  assert.deepEqual(JSON.parse(ran.stdout), { cjs: 'function', same: true });
});

test('the root entry never loads the redis adapter or the redis client', async () => {
  // Walk dist/index.js's static import graph: `redis` is an optional peer and must stay behind
  // the 'wshub/redis' subpath.
  const seen = new Set<string>();
  const external = new Set<string>();
  const walk = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = await readFile(join(ROOT, 'dist', file), 'utf8');
    for (const [, spec] of text.matchAll(
      /(?:^|;|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    )) {
      if (spec === undefined) continue;
      if (spec.startsWith('.')) await walk(join(file, '..', spec));
      else external.add(spec.replace(/^node:.*/, 'node:'));
    }
  };
  await walk('index.js');
  for (const redis of ['redis.js', 'cluster/redis.js']) {
    assert.ok(!seen.has(redis), `dist/${redis} reached from index.js via ${[...seen].join(', ')}`);
  }
  assert.deepEqual([...external].sort(), ['eventemitter3', 'nanoid', 'node:', 'ws']);
});

test('the published types hold no internals: no symbol-keyed members, no @internal declarations', async () => {
  // Every .d.ts reachable from the two entries, as a user's compiler reads them.
  const seen = new Set<string>();
  const walk = async (file: string): Promise<void> => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = await readFile(join(ROOT, 'dist', file), 'utf8');
    for (const [, spec] of text.matchAll(/(?:from|import\()\s*['"](\.[^'"]+)['"]/g)) {
      await walk(join(file, '..', spec!.replace(/\.js$/, '.d.ts')));
    }
  };
  await walk('index.d.ts');
  await walk('redis.d.ts');
  assert.ok(seen.has('core/client.d.ts'), [...seen].join(', '));
  for (const file of seen) {
    const text = await readFile(join(ROOT, 'dist', file), 'utf8');
    assert.doesNotMatch(text, /\[k[A-Z]\w*\]|\bk(?:Push|Conn|Open)\b/, `${file} shows a k-symbol`);
    assert.doesNotMatch(text, /@internal/, `${file} declares an internal`);
  }
});

test('dependencies are exactly ws, nanoid and eventemitter3', () => {
  assert.deepEqual(Object.keys(pkg.dependencies).sort(), ['eventemitter3', 'nanoid', 'ws']);
});

test('the tarball holds only dist, README.md, CHANGELOG.md, LICENSE and package.json; publint and attw pass', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wshub-pack-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // --ignore-scripts: `prepack` would rebuild dist/ under the other test files' feet.
  const packed = await exec('npm', [
    'pack',
    '--ignore-scripts',
    '--json',
    '--pack-destination',
    dir,
  ]);
  assert.equal(packed.code, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[];
  const files = info!.files.map((f) => f.path);
  const outside = files.filter(
    (f) =>
      !f.startsWith('dist/') &&
      !['README.md', 'CHANGELOG.md', 'LICENSE', 'package.json'].includes(f),
  );
  assert.deepEqual(outside, [], 'only what users need');
  for (const f of [
    'README.md',
    'CHANGELOG.md',
    'LICENSE',
    'package.json',
    'dist/index.js',
    'dist/index.d.ts',
  ]) {
    assert.ok(files.includes(f), `the tarball has ${f}`);
  }
  assert.ok(!files.some((f) => f.endsWith('.tsbuildinfo')), 'no build info');
  const tarball = join(dir, info!.filename);

  const lint = await exec(bin('publint'), ['run', tarball, '--strict']);
  assert.equal(lint.code, 0, `publint:\n${lint.stdout}${lint.stderr}`);
  assert.doesNotMatch(lint.stdout, /Errors:|Warnings:|Suggestions:/, lint.stdout);

  const types = await exec(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'json']);
  const report = JSON.parse(types.stdout) as {
    problems?: unknown[];
    analysis?: { problems?: unknown[] };
  };
  const problems = report.problems ?? report.analysis?.problems ?? [];
  assert.equal(types.code, 0, `attw problems:\n${JSON.stringify(problems, null, 2)}`);
});
