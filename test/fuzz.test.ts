// Property-based fuzzing over a real socket: random bytes, random JSON and random field types, in
// text and binary frames. Every frame gets one well-formed reply or a clean close with a code from
// the table, and an honest client beside the fuzzer is served correctly throughout.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { z } from 'zod';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { trapCrashes } from './helpers/crash.ts';
import { connect, type Reply, okReply } from './helpers/client.ts';
import { clientFrame, rawPeer } from './helpers/raw.ts';
import { within } from './helpers/wait.ts';
import { Code } from '../src/index.ts';

assertNoLeaks();

const RUNS = 500; // per property; the whole file stays near 10 s on 2 cores
const CODES: readonly number[] = Object.values(Code);
const CLOSE_CODES = [1007, 1008, 1009]; // the only closes a single bad frame may cause
const KEYS = ['code', 'msg', 'actioncode', 'data', 'id'];

/** A frame as the fuzzer sends it. */
interface Shot {
  bytes: Buffer;
  binary: boolean;
}

async function setup(t: TestContext) {
  const caught = trapCrashes(t);
  t.after(() => assert.deepEqual(caught, [], 'nothing reached the process crash handlers'));
  const { hub, url, port } = await startHub(t, {
    heartbeat: false,
    actions: {
      echo: (data: unknown) => data,
      strict: { schema: z.object({ n: z.number() }), handler: (data) => data.n * 2 },
      boom() {
        throw new Error('handler failure');
      },
      later: async (data: unknown) => data,
    },
  });
  const honest = await connect(t, url);
  let fuzzer = await connect(t, url);
  const closeOf = (c: typeof fuzzer) =>
    new Promise<{ closed: { code: number; reason: string } }>((r) =>
      c.ws.once('close', (code, reason) => r({ closed: { code, reason: reason.toString() } })),
    );
  let closed = closeOf(fuzzer);
  let closes = 0;
  let n = 0;

  /** Sends one frame; resolves its reply, or null if the server closed the connection cleanly. */
  async function fire(shot: Shot): Promise<Reply | null> {
    fuzzer.ws.send(shot.bytes, { binary: shot.binary });
    const honestReply = honest.request('echo', { n: ++n });
    const first = await within(
      Promise.race([fuzzer.next('fuzz reply').then((reply) => ({ reply })), closed]),
      5000,
      'fuzz outcome',
    );
    assert.deepEqual(await honestReply, okReply('echo', { n }, n));
    if ('reply' in first) return first.reply;
    assert.ok(
      CLOSE_CODES.includes(first.closed.code),
      `closed with ${first.closed.code} ${first.closed.reason}`,
    );
    closes++;
    fuzzer = await connect(t, url);
    closed = closeOf(fuzzer);
    return null;
  }
  return { hub, port, fire, closes: () => closes, honest };
}

/** The shape every reply must have, whatever was sent. */
function assertReply(reply: Reply): void {
  for (const key of Object.keys(reply)) assert.ok(KEYS.includes(key), `unexpected field ${key}`);
  assert.ok(CODES.includes(reply.code), `code ${reply.code} is not in the table`);
  assert.equal(typeof reply.msg, 'string');
  assert.notEqual(reply.msg, '');
  assert.equal(typeof reply.actioncode, 'string');
  assert.ok('data' in reply, 'data is always present');
  if (reply.code !== 0 && reply.code !== 1) assert.equal(reply.data, null);
  if ('id' in reply) assert.ok(typeof reply.id === 'string' || typeof reply.id === 'number');
  assert.doesNotMatch(reply.msg, /handler failure|at .*\.ts:\d+/, 'no error text or stack leaks');
}

const CODES_TRIED = [
  'heart_beat',
  'echo',
  'strict',
  'boom',
  'later',
  '__proto__',
  'constructor',
  'to_string',
  '',
  'has_own_property',
];

/** Mostly a value a client could mean, sometimes anything at all. */
const mostly = <T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { arbitrary: usual, weight: 3 },
    { arbitrary: odd, weight: 1 },
    { arbitrary: fc.anything({ maxDepth: 2 }), weight: 1 },
  );

const message = fc.record(
  {
    actioncode: mostly(
      fc.constantFrom(...CODES_TRIED),
      fc.string({ unit: 'binary', maxLength: 20 }),
    ),
    id: mostly(fc.oneof(fc.integer(), fc.string({ maxLength: 8 })), fc.double()),
    data: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.anything({ maxDepth: 3 })),
    is_broadcast: mostly(fc.constant(false), fc.boolean()),
    client_ids: mostly(fc.constant([]), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 })),
    token: fc.anything({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);

test('random bytes in text and binary frames get an error reply or a clean close; the honest client is served', async (t) => {
  const { hub, fire, closes } = await setup(t);
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, binary) => {
      const reply = await fire({ bytes: Buffer.from(bytes), binary });
      if (reply === null)
        return assert.equal(binary, false, 'only a text frame can be invalid UTF-8');
      assertReply(reply);
    }),
    { numRuns: RUNS },
  );
  t.diagnostic(`${closes()} of ${RUNS} random text frames were invalid UTF-8 (1007)`);
  assert.ok(hub.clients.size <= 2);
});

test('random JSON values get a reply with code 1 unless they are an object with a usable actioncode', async (t) => {
  const { fire } = await setup(t);
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 5 }), fc.boolean(), async (value, binary) => {
      const reply = await fire({ bytes: Buffer.from(JSON.stringify(value)), binary });
      assert.notEqual(reply, null, 'valid UTF-8 JSON never closes the connection');
      assertReply(reply!);
      const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
      if (!isObject)
        assert.deepEqual(reply, {
          code: 1,
          msg: 'message must be a JSON object',
          actioncode: '',
          data: null,
        });
    }),
    { numRuns: RUNS },
  );
});

test('random field types get exactly the reply the contract gives, echoing a valid id', async (t) => {
  const { fire } = await setup(t);
  await fc.assert(
    fc.asyncProperty(message, fc.boolean(), async (m, binary) => {
      const text = JSON.stringify(m);
      const sent = JSON.parse(text) as Record<string, unknown>; // what the server sees
      const reply = await fire({ bytes: Buffer.from(text), binary });
      assert.notEqual(reply, null, 'valid UTF-8 JSON never closes the connection');
      assertReply(reply!);
      const validId =
        typeof sent.id === 'string' || (typeof sent.id === 'number' && Number.isFinite(sent.id));
      const badId = sent.id !== undefined && sent.id !== null && !validId;
      if (validId) assert.deepEqual(reply!.id, sent.id);
      else assert.equal('id' in reply!, false);
      if (badId || typeof sent.actioncode !== 'string' || sent.actioncode === '')
        assert.equal(reply!.code, 1);
      const clean =
        !badId &&
        (sent.is_broadcast === undefined ||
          sent.is_broadcast === null ||
          sent.is_broadcast === false) &&
        (sent.client_ids === undefined ||
          sent.client_ids === null ||
          (Array.isArray(sent.client_ids) && sent.client_ids.length === 0));
      if (clean && sent.actioncode === 'heart_beat')
        assert.deepEqual([reply!.code, reply!.data], [0, true]);
      if (clean && (sent.actioncode === 'echo' || sent.actioncode === 'later'))
        assert.deepEqual([reply!.code, reply!.data], [0, sent.data ?? null]);
      if (clean && sent.actioncode === 'boom')
        assert.deepEqual([reply!.code, reply!.msg], [4, 'server error']);
      if (clean && sent.actioncode === '__proto__') assert.equal(reply!.code, 5);
    }),
    { numRuns: RUNS },
  );
});

test('schema-checked data of random shape gets code 0 or code 1 with issues, never anything else', async (t) => {
  const { fire } = await setup(t);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.jsonValue({ maxDepth: 3 }),
        fc.record({
          n: fc.oneof(
            fc.double({ noNaN: true, noDefaultInfinity: true }),
            fc.jsonValue({ maxDepth: 1 }),
          ),
        }),
      ),
      async (data) => {
        const reply = await fire({
          bytes: Buffer.from(JSON.stringify({ actioncode: 'strict', id: 'x', data })),
          binary: false,
        });
        assertReply(reply!);
        const n = (data as { n?: unknown } | null)?.n;
        if (
          typeof data === 'object' &&
          data !== null &&
          !Array.isArray(data) &&
          typeof n === 'number'
        ) {
          assert.deepEqual(reply, okReply('strict', JSON.parse(JSON.stringify(n * 2)), 'x')); // as JSON: -0 → 0, Infinity → null
        } else {
          assert.equal(reply!.code, 1);
          assert.ok(Array.isArray(reply!.data) && reply!.data.length > 0, 'issues listed');
        }
      },
    ),
    { numRuns: RUNS },
  );
});

const wireFrame = fc.record({
  opcode: fc.oneof(
    { arbitrary: fc.constantFrom(0x1, 0x2), weight: 8 }, // text, binary
    { arbitrary: fc.constantFrom(0x0, 0x8, 0x9, 0xa), weight: 3 }, // continuation, close, ping, pong
    { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 1 }, // reserved ones too
  ),
  fin: fc.oneof(
    { arbitrary: fc.constant(true), weight: 6 },
    { arbitrary: fc.constant(false), weight: 1 },
  ),
  masked: fc.oneof(
    { arbitrary: fc.constant(true), weight: 12 },
    { arbitrary: fc.constant(false), weight: 1 },
  ),
  rsv: fc.oneof(
    { arbitrary: fc.constant(0), weight: 12 },
    { arbitrary: fc.integer({ min: 1, max: 7 }), weight: 1 },
  ),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    message.map((m) => new TextEncoder().encode(JSON.stringify(m))),
    fc.uint8Array({ minLength: 2, maxLength: 2 }), // close codes, valid and not
  ),
});

test('random frame sequences (opcodes, fragments, masking, reserved bits) get replies or a clean close', async (t) => {
  const { hub, port, honest } = await setup(t);
  let n = 0;
  const outcomes = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(fc.array(wireFrame, { minLength: 1, maxLength: 4 }), async (frames) => {
      const peer = await rawPeer(t, port);
      for (const f of frames)
        peer.socket.write(clientFrame(f.opcode, Buffer.from(f.payload), f.fin, f));
      const id = `end-${++n}`;
      peer.socket.write(
        clientFrame(0x1, Buffer.from(JSON.stringify({ actioncode: 'heart_beat', id }))),
      );
      const honestReply = honest.request('echo', { n });
      const outcome = await within(
        (async (): Promise<string> => {
          for (;;) {
            const next = await Promise.race([
              peer.take(),
              peer.ended.then((closed) => ({ closed })),
            ]);
            if ('closed' in next) return `tcp end ${next.closed.code}`;
            if (next.opcode === 0x8)
              return `close ${next.payload.length >= 2 ? next.payload.readUInt16BE(0) : 1005}`;
            if (next.opcode === 0xa) continue; // pong to our ping
            assert.equal(next.opcode, 0x1, 'replies are text frames');
            const reply = JSON.parse(next.payload.toString()) as Reply;
            assertReply(reply);
            if (reply.id === id) return 'replied';
          }
        })(),
        5000,
        'outcome of a raw frame sequence',
      );
      peer.socket.destroy();
      assert.deepEqual(await honestReply, okReply('echo', { n }, n));
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      if (outcome === 'replied') return;
      const sentClose = frames.some((f) => f.opcode === 0x8);
      // A close frame of ours is echoed (or refused with 1002); otherwise only these codes.
      if (!sentClose)
        assert.ok(['close 1002', 'close 1007', 'close 1009'].includes(outcome), outcome);
    }),
    { numRuns: 300 },
  );
  t.diagnostic(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}`);
  // Every raw peer was unregistered; only the honest client and the fuzzer remain.
  await within(
    (async () => {
      while (hub.clients.size > 2) await new Promise((r) => setImmediate(r));
    })(),
    5000,
    'raw peers to be unregistered',
  );
});
