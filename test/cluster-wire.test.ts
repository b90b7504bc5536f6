// The cluster wire format (pure): every message a node publishes decodes to itself; everything
// else is refused with a reason, never a throw. Hostile inputs are what anyone who can publish
// on the broker could send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, frameFault } from '../src/cluster/decode.ts';
import { Signer } from '../src/cluster/guard.ts';
import {
  encode,
  header as build,
  MAX_NAME,
  TAG_LENGTH,
  type Header,
  type Via,
} from '../src/cluster/messages.ts';
import { encode as encodeFrame } from '../src/core/protocol.ts';

const F = 'V1StGXR8_Z5jdHi6B-myT';
const cx = { maxFrameSize: 1024, authentic: false };
const frame = encodeFrame(0, 'success', 'news', { text: 'hi' });
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

test('every kind a node publishes decodes to exactly its fields', () => {
  const cases: [Header, string | undefined, Via, object][] = [
    [
      { f: F, k: 'b', t: undefined },
      frame,
      'all',
      { from: F, kind: 'b', target: undefined, copy: undefined, frame },
    ],
    [
      { f: F, k: 'b', t: { to: ['x'], rooms: ['r'], except: [''] }, m: 3 },
      frame,
      'room',
      { from: F, kind: 'b', target: { to: ['x'], rooms: ['r'], except: [''] }, copy: 3, frame },
    ],
    [
      { f: F, k: 's', i: 'x' },
      encodeFrame(0, 'success', 'dm', 1, 'req-1'),
      'node',
      { from: F, kind: 's', clientId: 'x', frame: encodeFrame(0, 'success', 'dm', 1, 'req-1') },
    ],
    [
      { f: F, k: 'j', i: 'x', r: 'red' },
      undefined,
      'all',
      { from: F, kind: 'j', clientId: 'x', room: 'red' },
    ],
    [
      { f: F, k: 'l', i: 'x', r: 'red' },
      undefined,
      'node',
      { from: F, kind: 'l', clientId: 'x', room: 'red' },
    ],
    [
      { f: F, k: '+', i: 'x', s: 1 },
      undefined,
      'all',
      { from: F, kind: '+', clientId: 'x', seq: 1 },
    ],
    [
      { f: F, k: '-', i: 'x', s: 2 },
      undefined,
      'all',
      { from: F, kind: '-', clientId: 'x', seq: 2 },
    ],
    [{ f: F, k: 'h', s: 0 }, undefined, 'node', { from: F, kind: 'h', seq: 0 }],
    [{ f: F, k: 'hi', s: 7 }, undefined, 'all', { from: F, kind: 'hi', seq: 7 }],
    [{ f: F, k: 'sync' }, undefined, 'node', { from: F, kind: 'sync' }],
    [
      { f: F, k: 'snap', s: 2 },
      '["x","y"]',
      'node',
      { from: F, kind: 'snap', seq: 2, ids: ['x', 'y'] },
    ],
    [
      { f: F, k: 'q', q: 1, i: undefined },
      undefined,
      'all',
      { from: F, kind: 'q', question: 1, clientId: undefined },
    ],
    [
      { f: F, k: 'a', q: 1, n: 0, h: false },
      undefined,
      'node',
      { from: F, kind: 'a', question: 1, count: 0, has: false },
    ],
    [{ f: F, k: 'bye' }, undefined, 'all', { from: F, kind: 'bye' }],
  ];
  for (const [header, body, via, expected] of cases)
    assert.deepEqual(decode(encode(header, body), via, cx), expected, header.k);
});

test('the header builders write the wire bytes nodes have always published', () => {
  const t = { rooms: ['r'] };
  const wire: [Header, string][] = [
    [build.broadcast(F, undefined), `{"f":"${F}","k":"b"}`],
    [build.broadcast(F, { except: ['x'] }), `{"f":"${F}","k":"b","t":{"except":["x"]}}`],
    [build.broadcast(F, t, 2), `{"f":"${F}","k":"b","t":{"rooms":["r"]},"m":2}`],
    [build.send(F, 'x'), `{"f":"${F}","k":"s","i":"x"}`],
    [build.join(F, 'x', 'r'), `{"f":"${F}","k":"j","i":"x","r":"r"}`],
    [build.leave(F, 'x', 'r'), `{"f":"${F}","k":"l","i":"x","r":"r"}`],
    [build.added(F, 'x', 1), `{"f":"${F}","k":"+","i":"x","s":1}`],
    [build.removed(F, 'x', 2), `{"f":"${F}","k":"-","i":"x","s":2}`],
    [build.heartbeat(F, 3), `{"f":"${F}","k":"h","s":3}`],
    [build.hello(F, 4), `{"f":"${F}","k":"hi","s":4}`],
    [build.syncRequest(F), `{"f":"${F}","k":"sync"}`],
    [build.snapshot(F, 5), `{"f":"${F}","k":"snap","s":5}`],
    [build.question(F, 6, undefined), `{"f":"${F}","k":"q","q":6}`],
    [build.question(F, 6, 'x'), `{"f":"${F}","k":"q","q":6,"i":"x"}`],
    [build.answer(F, 6, 7, true), `{"f":"${F}","k":"a","q":6,"n":7,"h":true}`],
    [build.bye(F), `{"f":"${F}","k":"bye"}`],
  ];
  for (const [h, bytes] of wire) assert.equal(encode(h), bytes);
});

test('refuses each malformed field, kind or channel with a reason', () => {
  const h = (o: object, body?: string) =>
    JSON.stringify({ f: F, ...o }) + (body === undefined ? '' : `\n${body}`);
  const cases: [string, Via, string][] = [
    ['not json', 'all', 'header is not JSON'],
    ['[1]', 'all', 'header is not an object'],
    [JSON.stringify({ f: 'a b', k: 'h', s: 0 }), 'all', 'f must be a node uid'],
    [JSON.stringify({ f: 'x'.repeat(65), k: 'h', s: 0 }), 'all', 'f must be a node uid'],
    [h({ k: 'constructor' }), 'all', 'k is not a message kind'],
    [h({ k: '__proto__' }), 'all', 'k is not a message kind'],
    [h({ k: 'snap', s: 0 }, '[]'), 'all', 'a "snap" message cannot arrive on a all channel'],
    [h({ k: 'bye' }), 'room', 'a "bye" message cannot arrive on a room channel'],
    [`{"f":"${F}","k":"q","q":${deep(5000)}}`, 'all', 'q must be a positive safe integer'],
    [h({ k: 'q', q: 1.5 }), 'all', 'q must be a positive safe integer'],
    [h({ k: 'q', q: 2 ** 53 }), 'all', 'q must be a positive safe integer'],
    [h({ k: 'q', q: 1, i: ['x'] }), 'all', `i must be a string of at most ${MAX_NAME} characters`],
    [h({ k: 'a', q: 1, n: '2NaN-ish', h: false }), 'node', 'n must be a non-negative safe integer'],
    [h({ k: 'a', q: 1, n: -1, h: false }), 'node', 'n must be a non-negative safe integer'],
    [h({ k: 'a', q: 1, n: 1, h: 'yes' }), 'node', 'h must be a boolean'],
    [
      h({ k: '+', i: 'x'.repeat(MAX_NAME + 1), s: 1 }),
      'all',
      `i must be a string of at most ${MAX_NAME} characters`,
    ],
    [h({ k: '+', i: 'x', s: 0 }), 'all', 's must be a positive safe integer'],
    [h({ k: 'h', s: '1' }), 'all', 's must be a non-negative safe integer'],
    [
      h({ k: 'j', i: 'x', r: '' }),
      'node',
      `r must be a non-empty string of at most ${MAX_NAME} characters`,
    ],
    [h({ k: 'bye' }, ''), 'all', 'unexpected body'],
    [
      h({ k: 'b', t: { to: [1] } }, frame),
      'all',
      `t must be { to?, rooms?, except? } lists of a string of at most ${MAX_NAME} characters`,
    ],
    [
      h({ k: 'b', t: { rooms: 'red' } }, frame),
      'all',
      `t must be { to?, rooms?, except? } lists of a string of at most ${MAX_NAME} characters`,
    ],
    [
      h({ k: 'b', t: [] }, frame),
      'all',
      `t must be { to?, rooms?, except? } lists of a string of at most ${MAX_NAME} characters`,
    ],
    [h({ k: 'b', m: 0 }, frame), 'all', 'm must be a positive safe integer'],
    [h({ k: 'b' }), 'all', 'no frame'],
    [h({ k: 's', i: 'x' }, 'hello'), 'node', 'body is not a frame'],
    [h({ k: 'snap', s: 1 }, '[1]'), 'node', 'snapshot is not a list of client ids'],
    [h({ k: 'snap', s: 1 }, deep(100)), 'node', 'snapshot is not a list of client ids'],
  ];
  for (const [message, via, why] of cases)
    assert.equal(decode(message, via, cx), why, message.slice(0, 80));
});

test('a signed message must carry its counter and date', () => {
  const signed = { maxFrameSize: 1024, authentic: true };
  assert.deepEqual(decode(encode({ f: F, k: 'h', s: 0, c: 3, w: 1700000000000 }), 'all', signed), {
    from: F,
    kind: 'h',
    seq: 0,
    counter: 3,
    sentAt: 1700000000000,
  });
  assert.equal(
    decode(encode({ f: F, k: 'h', s: 0 }), 'all', signed),
    'c must be a positive safe integer',
  );
  assert.equal(
    decode(encode({ f: F, k: 'h', s: 0, c: 3, w: -1 }), 'all', signed),
    'w must be a time in ms',
  );
  assert.equal(
    decode(`{"f":"${F}","k":"h","s":0,"c":${deep(5000)},"w":1}`, 'all', signed),
    'c must be a positive safe integer',
  );
});

test('a frame body must be a JSON object of the reply/push shape and within maxFrameSize', () => {
  const cases: [string, string | undefined][] = [
    [frame, undefined],
    [encodeFrame(4, 'server error', 'x', null, 7), undefined],
    ['hello', 'body is not a frame'],
    ['{"code":0,"msg":"success","actioncode":"x","data":1', 'body is not a frame'],
    ['{"code":0,"msg":"success","actioncode":"x","data":1}}', 'body is not JSON'],
    ['{"code":0,"msg":"success","actioncode":"x"}', 'frame lacks code, msg, actioncode or data'],
    [
      '{"code":"0","msg":"success","actioncode":"x","data":1}',
      'frame lacks code, msg, actioncode or data',
    ],
    [
      '{"code":0,"msg":"success","actioncode":"x","data":1,"extra":2}',
      'frame has an unknown key "extra"',
    ],
    [
      '{"code":0,"msg":"success","actioncode":"x","data":1,"__proto__":{}}',
      'frame has an unknown key "__proto__"',
    ],
    [
      '{"code":0,"msg":"success","actioncode":"x","data":1,"id":{}}',
      'frame id is not a string or number',
    ],
    [
      `{"code":0,"msg":"success","actioncode":"x","data":"${'x'.repeat(1024)}"}`,
      'frame of 1077 characters exceeds maxFrameSize (1024)',
    ],
  ];
  for (const [body, why] of cases)
    assert.equal(frameFault(body, 1024, false), why, body.slice(0, 60));
  // A signed frame was encoded by a wshub node: only its outline is checked.
  assert.equal(frameFault('{"code":0,"x":}', 1024, true), undefined);
  assert.equal(frameFault('hello', 1024, true), 'body is not a frame');
});

test('decode never throws and accepts nothing but the kinds, whatever bytes arrive', () => {
  const kinds = new Set(['b', 's', 'j', 'l', '+', '-', 'h', 'hi', 'sync', 'snap', 'q', 'a', 'bye']);
  const vias = fc.constantFrom<Via>('all', 'node', 'room');
  const header = fc.dictionary(
    fc.constantFrom('f', 'k', 't', 'm', 'i', 'r', 's', 'q', 'n', 'h'),
    fc.jsonValue(),
    { maxKeys: 6 },
  );
  const message = fc.oneof(
    fc.string(),
    fc
      .tuple(header, fc.option(fc.string()))
      .map(([h, body]) => JSON.stringify({ f: F, ...h }) + (body === null ? '' : `\n${body}`)),
  );
  fc.assert(
    fc.property(message, vias, (m, via) => {
      const out = decode(m, via, cx);
      assert.ok(
        typeof out === 'string' || kinds.has(out.kind),
        `decoded to ${JSON.stringify(out)}`,
      );
    }),
    { numRuns: 2000 },
  );
});

test('a signed message opens only with the same key and channel', () => {
  const key = Buffer.alloc(32, 7);
  const signer = new Signer(key);
  const message = encode({ f: F, k: 'h', s: 1 });
  const signed = signer.sign('p:all', message);
  assert.equal(signed.length, TAG_LENGTH + message.length);
  assert.equal(signer.open('p:all', signed), message);
  assert.equal(signer.open('p:room:x', signed), undefined, 'moved to another channel');
  assert.equal(new Signer(Buffer.alloc(32, 8)).open('p:all', signed), undefined, 'another key');
  assert.equal(signer.open('p:all', message), undefined, 'unsigned');
  assert.equal(signer.open('p:all', signed.slice(0, -1) + '2'), undefined, 'altered');
  assert.equal(signer.open('p:all', 'short'), undefined);
});
