// A broker that stalls instead of dying: the connection stays up, nothing is acknowledged. The
// test's own redis-server is paused (CLIENT PAUSE) or frozen (SIGSTOP by PID) under a stream of
// broadcasts; the publishing node must keep its memory bounded and recover by itself.
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { assertNoLeaks } from './helpers/hub.ts';
import { connect } from './helpers/client.ts';
import { trapCrashes } from './helpers/crash.ts';
import { startRedis } from './helpers/redis.ts';
import { startCluster } from './helpers/redis-hubs.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heap = (): number => {
  gc();
  return process.memoryUsage().heapUsed;
};
const MiB = 1024 * 1024;

const BOUND = 300;
/** broadcasts published after the bound was reached, while the broker is still stalled */
const PAST = 10_000;

async function stall(t: TestContext, how: 'CLIENT PAUSE' | 'SIGSTOP'): Promise<void> {
  const crashes = trapCrashes(t);
  const server = await startRedis();
  t.after(() => server.close());
  const [a, b] = await startCluster(t, server, 2, {
    maxPendingMessages: BOUND,
    maxPendingBytes: 256 * 1024,
  });
  const b0 = await connect(t, `${b!.url}?id=b0`);

  // Node a's unacknowledged PUBLISHes, counted at its redis client.
  let outstanding = 0;
  let most = 0;
  const publish = a!.pub.publish.bind(a!.pub);
  Object.assign(a!.pub, {
    publish: (channel: string, message: string) => {
      most = Math.max(most, ++outstanding);
      return publish(channel, message).finally(() => outstanding--);
    },
  });

  // A stream of 1 KB broadcasts from a, 50 per loop turn, until stopped.
  let sent = 0;
  let running = true;
  let onSent: (() => void) | undefined;
  const pad = 'x'.repeat(1000);
  const pump = (): void => {
    if (!running) return;
    for (let i = 0; i < 50; i++) a!.hub.broadcast('tick', { n: sent++, pad });
    onSent?.();
    setImmediate(pump);
  };
  t.after(() => void (running = false));
  pump();
  const sentAtLeast = (n: number): Promise<void> =>
    new Promise((resolve) => (onSent = () => sent >= n && resolve()));
  for (let got = 0; got < 100; got++) await b0.next('ticks on b0 before the stall');
  const before = heap();

  const raw = await server.client();
  if (how === 'SIGSTOP') process.kill(server.pid, 'SIGSTOP');
  else await raw.sendCommand(['CLIENT', 'PAUSE', '5000']);
  await a!.reported(
    /^wshub cluster: the broker has not acknowledged \d+ messages/,
    'the stall report',
  );
  await within(sentAtLeast(sent + PAST), 10_000, `${PAST} more broadcasts during the stall`);
  const grown = heap() - before;
  t.diagnostic(
    `${how}: ${most} publishes in flight at most (bound ${BOUND}); heap +${(grown / MiB).toFixed(1)} MiB after ${PAST} more broadcasts`,
  );
  if (how === 'SIGSTOP') process.kill(server.pid, 'SIGCONT');

  const caughtUp =
    'wshub: the broker acknowledges again; `dropped` messages for other nodes were lost meanwhile';
  await within(a!.log.count(caughtUp, 1), 10_000, 'the end of the stall');
  running = false;
  const [line] = a!.log.lines.filter((l) => l.msg === caughtUp);
  assert.ok(line!.dropped! >= PAST, `counted ${line!.dropped} dropped`);
  assert.ok(most <= BOUND, `${most} publishes in flight, bound ${BOUND}`);
  assert.ok(grown < 16 * MiB, `heap grew ${(grown / MiB).toFixed(1)} MiB during the stall`);
  assert.equal(
    a!.errors.filter((e) => /has not acknowledged/.test(e.message)).length,
    1,
    'one report per stall',
  );

  // Delivery resumes: b0 gets ticks in order (some dropped), then a marker broadcast after the stall.
  a!.hub.broadcast('marker', 'after');
  let last = -1;
  for (;;) {
    const frame = await b0.next('b0: ticks, then the marker');
    if (frame.actioncode === 'marker') break;
    const { n } = frame.data as { n: number };
    assert.ok(n > last, `tick ${n} after ${last}`);
    last = n;
  }
  assert.equal(b!.hub.clients.has('b0'), true, 'the healthy client is still connected');
  assert.deepEqual(await b0.barrier(), []);
  assert.equal(await a!.hub.cluster.size(), 1);
  assert.deepEqual(crashes, []);
}

test('a Redis paused by CLIENT PAUSE: unacknowledged publishes stay under the bound, the rest is dropped and reported once, delivery resumes', (t) =>
  stall(t, 'CLIENT PAUSE'));

test('a Redis frozen by SIGSTOP with its connections up: memory stays bounded, delivery resumes after SIGCONT, no client is closed', (t) =>
  stall(t, 'SIGSTOP'));
