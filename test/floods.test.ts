// Floods: one client's pipelined burst takes turns with everyone else's requests; past rateLimit
// a message is refused before it is parsed and the client is not read until its window ends; and
// ping floods, from a peer that reads its pongs and one that does not, end in a termination.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, type Reply, idFromQuery, okReply } from './helpers/client.ts';
import { clientFrame, rawPeer } from './helpers/raw.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

const text = (value: unknown) => clientFrame(0x1, Buffer.from(JSON.stringify(value)));

test("a client pipelining 5,000 requests in one TCP write does not hold up another client's request", async (t) => {
  const handled: string[] = [];
  let started!: () => void;
  const flooding = new Promise<void>((r) => (started = r));
  const { port, url } = await startHub(t, {
    id: idFromQuery,
    actions: {
      echo(data: unknown, ctx) {
        if (handled.push(ctx.client.id) === 1) started();
        return data;
      },
    },
  });
  const victim = await connect(t, `${url}?id=victim`);
  const flooder = await rawPeer(t, port, '/ws?id=flooder');
  const N = 5000;
  flooder.socket.write(
    Buffer.concat(
      Array.from({ length: N }, (_, i) => text({ actioncode: 'echo', data: i, id: i })),
    ),
  );
  // The server is inside the flood (its first TCP read alone holds over a thousand requests).
  await within(flooding, 5000, 'the flood to start');
  assert.deepEqual(await victim.request('echo', 'me'), okReply('echo', 'me', 1));
  const position = handled.indexOf('victim');
  t.diagnostic(`the victim's request was handled after ${position} of the flooder's`);
  assert.ok(position >= 0 && position < 100, `handled after ${position} flood requests`);
  // The rest of the flood is read later, in full and in order.
  for (let i = 0; i < N; i++) {
    const reply = JSON.parse((await flooder.frames()).payload.toString()) as Reply;
    assert.equal(reply.id, i);
  }
  assert.equal(handled.length, N + 1);
});

test('past rateLimit a 1 MiB message is refused unparsed, and the client is not read until its window ends', async (t) => {
  const realParse = JSON.parse;
  let bigParses = 0;
  JSON.parse = function parse(text: string, reviver?: Parameters<typeof realParse>[1]) {
    if (typeof text === 'string' && text.length > 512 * 1024) bigParses++;
    return realParse(text, reviver);
  } as typeof JSON.parse;
  t.after(() => {
    JSON.parse = realParse;
  });
  const { hub, url } = await startHub(t, { rateLimit: { messages: 3, interval: 300 } });
  const c = await connect(t, url);
  const pad = 'x'.repeat(1_000_000);
  for (let id = 1; id <= 16; id++)
    c.raw(JSON.stringify({ actioncode: 'heart_beat', id, data: pad }));
  assert.deepEqual(await within(c.closed(), 10_000, 'the 1008 close'), {
    code: 1008,
    reason: 'rate limited',
  });
  const replies = c.frames.map((f) => realParse(f) as Reply);
  const ok = replies.filter((r) => r.code === 0);
  const refused = replies.filter((r) => r.code === 429);
  t.diagnostic(
    `${ok.length} admitted, ${refused.length} refused, ${hub.stats().messagesIn} of 16 read, ${bigParses} parsed`,
  );
  assert.equal(ok.length + refused.length, replies.length);
  assert.deepEqual(
    refused,
    refused.map(() => ({ code: 429, msg: 'rate limited', actioncode: '', data: null })),
    'too big to echo: never parsed',
  );
  assert.equal(bigParses, ok.length, 'JSON.parse ran for admitted messages only');
  assert.ok(
    ok.every((r, i) => i === 0 || (r.id as number) > (ok[i - 1]!.id as number)),
    'admitted in order',
  );
  // Paused until each window ended, it was admitted again in later windows instead of being read
  // (and refused) all at once; the refusals added up over those windows to the close.
  assert.ok(ok.length > 3, `admitted in more than one window (${ok.length})`);
  assert.ok(hub.stats().messagesIn < 16, 'the rest was never read');
});

test('a client paused by the rate limit is not taken for dead by the heartbeat, and is served when its window ends', async (t) => {
  const { hub, url } = await startHub(t, {
    rateLimit: { messages: 2, interval: 600 },
    heartbeat: { interval: 100 },
  });
  const c = await connect(t, url);
  let pings = 0;
  c.ws.on('ping', () => pings++);
  const reply = (id: number): Reply => ({
    code: 0,
    msg: 'success',
    actioncode: 'heart_beat',
    data: true,
    id,
  });
  for (const id of [1, 2, 3]) c.raw(JSON.stringify({ actioncode: 'heart_beat', id }));
  assert.deepEqual([await c.next('reply 1'), await c.next('reply 2')], [reply(1), reply(2)]);
  assert.deepEqual(await c.next('429 for 3'), {
    code: 429,
    msg: 'rate limited',
    actioncode: 'heart_beat',
    data: null,
    id: 3,
  });
  // The socket is paused now: 4 waits, unread, for the next window, and so do the client's pongs
  // while several heartbeat sweeps pass.
  c.raw(JSON.stringify({ actioncode: 'heart_beat', id: 4 }));
  assert.deepEqual(await c.next('reply 4, in the next window'), reply(4));
  t.diagnostic(`${pings} pings while paused`);
  assert.ok(pings >= 3, `${pings} heartbeat rounds passed`);
  assert.equal(hub.clients.size, 1);
});

test('a peer writing 20,000 pings at once is terminated after 60 unanswered pongs; others are served', async (t) => {
  const { hub, port, url } = await startHub(t);
  const bystander = await connect(t, url);
  const flooder = await rawPeer(t, port);
  const gone = new Promise<number>((r) => hub.once('disconnect', (_c, code) => r(code)));
  flooder.socket.write(
    Buffer.concat(Array.from({ length: 20_000 }, () => clientFrame(0x9, Buffer.alloc(0)))),
  );
  let pongs = 0;
  for (;;) {
    const f = await Promise.race([flooder.take(), flooder.ended.then(() => undefined)]);
    if (!f) break;
    if (f.opcode === 0xa) pongs++;
  }
  assert.equal(await within(gone, 5000, 'disconnect'), 1006);
  assert.ok(pongs <= 60, `${pongs} pongs`);
  assert.deepEqual(await bystander.request('heart_beat'), okReply('heart_beat', true, 1));
});

test('a peer that pings at its own pace and reads its pongs is answered every time', async (t) => {
  const { hub, port } = await startHub(t);
  const peer = await rawPeer(t, port);
  for (let round = 0; round < 100; round++) {
    peer.socket.write(
      Buffer.concat(Array.from({ length: 20 }, () => clientFrame(0x9, Buffer.from(`r${round}`)))),
    );
    for (let i = 0; i < 20; i++) {
      const f = await peer.frames();
      assert.deepEqual([f.opcode, f.payload.toString()], [0xa, `r${round}`]);
    }
  }
  assert.equal(hub.clients.size, 1);
});

test('a peer that pings without reading is terminated before its pongs pile up', async (t) => {
  const { hub, port, url } = await startHub(t);
  const bystander = await connect(t, url);
  const peer = await rawPeer(t, port);
  peer.socket.pause(); // reads nothing: the server's pongs fill the kernel buffers, then wait in the server
  let gone = false;
  hub.once('disconnect', () => (gone = true));
  const ping = Buffer.concat(
    Array.from({ length: 20 }, () => clientFrame(0x9, Buffer.alloc(125, 0x70))),
  );
  let sent = 0;
  await within(
    (async () => {
      while (!gone && sent < 2_000_000) {
        if (!peer.socket.destroyed) peer.socket.write(ping);
        sent += 20;
        await new Promise((r) => setImmediate(r));
      }
    })(),
    15_000,
    'the non-reading ping flooder to be terminated',
  );
  t.diagnostic(`terminated after ${sent} pings`);
  assert.ok(gone, `still connected after ${sent} pings`);
  assert.equal(hub.clients.size, 1);
  assert.deepEqual(await bystander.request('heart_beat'), okReply('heart_beat', true, 1));
});
