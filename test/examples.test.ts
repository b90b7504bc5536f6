// Every example runs as its own process (PORT=0, the bound URL read from its stdout) and is
// driven with real `ws` clients, so the examples are tested exactly as a user runs them,
// through the package's self-reference to dist/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoLeaks } from './helpers/hub.ts';
import { connect, refusedStatus } from './helpers/client.ts';
import { run, http, type Program } from './helpers/child.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

const ok = (actioncode: string, data: unknown, id?: number) =>
  id === undefined
    ? { code: 0, msg: 'success', actioncode, data }
    : { code: 0, msg: 'success', actioncode, data, id };

async function stopped(program: Program): Promise<void> {
  assert.deepEqual(await program.stop(), { code: 0, signal: null }, 'exits cleanly on SIGTERM');
}

test('examples/http: rooms through a bare node:http server', async (t) => {
  const program = await run(t, 'examples/http/server.js');
  const url = `ws://127.0.0.1:${program.port}/ws`;
  const a = await connect(t, url);
  const b = await connect(t, url);
  assert.deepEqual(await a.request('heart_beat'), ok('heart_beat', true, 1));
  assert.deepEqual(await a.request('join', { room: 'lobby' }), ok('join', { room: 'lobby' }, 2));
  assert.deepEqual(
    await b.request('say', { room: 'lobby', text: 'hello' }),
    ok('say', { sent: 1 }, 1),
  );
  const said = await a.next('said push');
  assert.equal(said.actioncode, 'said');
  assert.deepEqual(said.data, { from: (said.data as { from: string }).from, text: 'hello' });
  assert.deepEqual(await b.barrier(), [], 'b is not in the room');
  assert.deepEqual(await a.request('join', {}), {
    code: 1,
    msg: 'room required',
    actioncode: 'join',
    data: null,
    id: 3,
  });
  assert.equal((await http(`http://127.0.0.1:${program.port}/`)).status, 200);
  await stopped(program);
});

for (const name of ['express', 'koa', 'hono'] as const) {
  test(`examples/${name}: the hub shares app.listen()'s server with the app's routes`, async (t) => {
    const program = await run(t, `examples/${name}/server.js`);
    const c = await connect(t, `ws://127.0.0.1:${program.port}/ws`);
    const health = await http(`http://127.0.0.1:${program.port}/health`);
    assert.deepEqual([health.status, JSON.parse(health.body)], [200, { clients: 1 }]);
    assert.deepEqual(await c.request('heart_beat'), ok('heart_beat', true, 1));
    assert.deepEqual(
      await c.request('chat_send', { text: 'hi' }),
      ok('chat_send', { ok: true }, 2),
    );
    const push = await c.next('chat_message push');
    assert.equal(push.actioncode, 'chat_message');
    assert.equal((push.data as { text: string }).text, 'hi');
    assert.equal(await refusedStatus(`ws://127.0.0.1:${program.port}/elsewhere`), 404);
    await stopped(program);
  });
}

test('examples/express: an HTTP route pushes to WebSocket clients', async (t) => {
  const program = await run(t, 'examples/express/server.js');
  const c = await connect(t, `ws://127.0.0.1:${program.port}/ws`);
  const res = await http(`http://127.0.0.1:${program.port}/announce`, {
    method: 'POST',
    body: { text: 'at 5' },
  });
  assert.deepEqual(JSON.parse(res.body), { sent: 1 });
  assert.deepEqual(await c.next('announcement push'), ok('announcement', { text: 'at 5' }));
  await stopped(program);
});

test('examples/fastify: @fastify/websocket hands sockets to register(); a hook refuses a bad token with 401', async (t) => {
  const program = await run(t, 'examples/fastify/server.js');
  const base = `ws://127.0.0.1:${program.port}/ws`;
  assert.equal(await refusedStatus(base), 401);
  assert.equal(await refusedStatus(`${base}?token=wrong`), 401);
  const c = await connect(t, `${base}?token=demo&user=alice`);
  const who = await c.request('whoami');
  assert.deepEqual(who, ok('whoami', { id: (who.data as { id: string }).id, user: 'alice' }, 1));
  assert.deepEqual(await c.request('chat_send', { text: 'hi' }), ok('chat_send', { ok: true }, 2));
  assert.deepEqual(
    await c.next('chat_message push'),
    ok('chat_message', { from: 'alice', text: 'hi' }),
  );
  const health = await http(`http://127.0.0.1:${program.port}/health`);
  assert.deepEqual(JSON.parse(health.body), { clients: 1 });
  await stopped(program);
});

test('examples/pino: wshub logs a handler failure through the pino logger', async (t) => {
  const program = await run(t, 'examples/pino/server.js');
  const c = await connect(t, `ws://127.0.0.1:${program.port}/ws`);
  await program.line(/"msg":"client connected"/, 'the connection log line');
  assert.deepEqual(await c.request('echo', 'hi'), ok('echo', 'hi', 1));
  assert.deepEqual(await c.request('crash'), {
    code: 4,
    msg: 'server error',
    actioncode: 'crash',
    data: null,
    id: 2,
  });
  const line = JSON.parse(
    await program.line(/"msg":"wshub: error"/, 'the error log line'),
  ) as Record<string, any>;
  assert.equal(line.level, 50);
  assert.equal(line.component, 'wshub');
  assert.equal(
    line.clientId,
    JSON.parse(await program.line(/"msg":"client connected"/, 'connection')).clientId,
  );
  assert.equal(line.err.message, 'handler bug');
  assert.match(
    line.err.stack,
    /^Error: handler bug\n\s+at Object.crash .*examples\/pino\/server.js/,
  );
  c.close();
  await program.line(/"msg":"client disconnected"/, 'the disconnect log line');
  await stopped(program);
});

test('examples/metrics: /metrics exposes stats() and connection counters', async (t) => {
  const program = await run(t, 'examples/metrics/server.js');
  const url = `ws://127.0.0.1:${program.port}/ws`;
  const a = await connect(t, url);
  const b = await connect(t, url);
  assert.deepEqual(await a.request('chat_send', { text: 'hi' }), ok('chat_send', { ok: true }, 1));
  await b.next('chat_message push to b');
  const scrape = async () => {
    const res = await http(`http://127.0.0.1:${program.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.type, /^text\/plain/);
    return res.body;
  };
  const metric = (text: string, name: string) => {
    const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const text = await scrape();
  assert.deepEqual(
    Object.fromEntries(
      [
        'wshub_clients',
        'wshub_connections_total',
        'wshub_messages_received_total',
        'wshub_messages_sent_total',
        'wshub_dropped_total',
        'wshub_errors_total',
      ].map((name) => [name, metric(text, name)]),
    ),
    {
      wshub_clients: 2,
      wshub_connections_total: 2,
      wshub_messages_received_total: 1,
      wshub_messages_sent_total: 3, // the push to a and b, and a's reply
      wshub_dropped_total: 0,
      wshub_errors_total: 0,
    },
  );
  assert.ok(metric(text, 'wshub_received_bytes_total')! > 0);
  assert.match(text, /^process_cpu_user_seconds_total /m, 'default metrics too');

  b.ws.close(1000);
  await b.closed('b closed');
  // The server's disconnect is not observable from here; scrape until it shows, bounded.
  let waiting = true;
  const counted = (async () => {
    while (waiting) {
      const now = await scrape();
      if (metric(now, 'wshub_disconnections_total{code="1000"}') === 1) return now;
    }
    return '';
  })();
  const after = await within(counted, 5000, 'wshub_disconnections_total{code="1000"} 1').finally(
    () => (waiting = false),
  );
  assert.equal(metric(after, 'wshub_clients'), 1);
  await stopped(program);
});

test('examples/chat: the demo answers set_name and chat_send with the name', async (t) => {
  const program = await run(t, 'examples/chat/server.js');
  const page = await http(`http://127.0.0.1:${program.port}/`);
  assert.deepEqual([page.status, page.type], [200, 'text/html; charset=utf-8']);
  const c = await connect(t, `ws://127.0.0.1:${program.port}/ws`);
  const welcome = await c.next('welcome');
  assert.deepEqual(
    welcome,
    ok('welcome', { id: (welcome.data as { id: string }).id, name: 'guest' }),
  );
  assert.deepEqual(await c.next('online'), ok('online', { count: 1 }));
  assert.deepEqual(
    await c.request('set_name', { name: ' ada ' }),
    ok('set_name', { name: 'ada' }, 1),
  );
  assert.deepEqual(await c.request('chat_send', { text: 'hi' }), ok('chat_send', { ok: true }, 2));
  const push = await c.next('chat_message');
  assert.deepEqual(
    push,
    ok('chat_message', { from: 'ada', text: 'hi', at: (push.data as { at: number }).at }),
  );
  assert.deepEqual(await c.request('chat_send', { text: ' ' }), {
    code: 1,
    msg: 'text must be 1-500 characters',
    actioncode: 'chat_send',
    data: null,
    id: 3,
  });
  await stopped(program);
});
