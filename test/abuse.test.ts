// Hostile frames and hostile handlers: each is answered with an error reply or a close code from
// the tables, never a crash, and never at another client's expense.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { trapCrashes } from './helpers/crash.ts';
import { connect, okReply } from './helpers/client.ts';
import { clientFrame, rawPeer } from './helpers/raw.ts';
import { within } from './helpers/wait.ts';
import { HubError } from '../src/index.ts';

assertNoLeaks();

const MiB = 1024 * 1024;

const err = (code: number, msg: string, actioncode: string, id?: number | string) => ({
  code,
  msg,
  actioncode,
  data: null,
  ...(id !== undefined && { id }),
});

test('a 2 MiB frame closes its connection with 1009 under the default maxPayload; others are unaffected', async (t) => {
  const { hub, url } = await startHub(t);
  const bystander = await connect(t, url);
  const big = await connect(t, url);
  const gone = new Promise<[number, string]>((r) =>
    hub.once('disconnect', (_c, code, reason) => r([code, reason])),
  );
  big.raw(JSON.stringify({ actioncode: 'heart_beat', data: 'x'.repeat(2 * MiB) }));
  assert.equal((await big.closed('close after 2 MiB frame')).code, 1009);
  assert.deepEqual(await within(gone, 5000, 'disconnect'), [1009, '']);
  assert.deepEqual(await bystander.request('heart_beat'), okReply('heart_beat', true, 1));
  assert.equal(hub.clients.size, 1);
});

test('a peer that announces an oversized frame and never answers the close is unregistered at once with 1009', async (t) => {
  const { hub, port } = await startHub(t);
  const peer = await rawPeer(t, port);
  const gone = new Promise<[number, string]>((r) =>
    hub.once('disconnect', (_c, code, reason) => r([code, reason])),
  );
  const header = Buffer.alloc(14);
  header[0] = 0x81;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(2 * MiB), 2); // then the mask, then nothing
  peer.socket.write(header);
  const close = await peer.frames();
  assert.deepEqual([close.opcode, close.payload.readUInt16BE(0)], [0x8, 1009]);
  // ws would report the close only when TCP ends, 30 s later with this peer; the hub does not wait.
  assert.deepEqual(await within(gone, 1000, 'disconnect'), [1009, '']);
  assert.equal(hub.clients.size, 0);
});

test('a message of exactly maxPayload bytes is accepted', async (t) => {
  const { url } = await startHub(t);
  const c = await connect(t, url);
  const shell = JSON.stringify({ actioncode: 'heart_beat', id: 1, data: '' });
  c.raw(shell.replace('""', `"${'x'.repeat(MiB - shell.length)}"`));
  assert.deepEqual(await c.next('reply to a 1 MiB message'), okReply('heart_beat', true, 1));
});

test('200,000-deep nested JSON gets a reply (or a clean error) and the connection survives', async (t) => {
  const caught = trapCrashes(t);
  const { url } = await startHub(t, {
    actions: {
      echo: (data: unknown) => data,
      depth(data: unknown) {
        const walk = (v: unknown): number => (Array.isArray(v) ? 1 + walk(v[0]) : 0);
        return walk(data);
      },
      checked: { schema: z.array(z.any()), handler: () => 'ok' },
    },
  });
  const c = await connect(t, url);
  const deep = '['.repeat(200_000) + ']'.repeat(200_000);
  const ask = async (actioncode: string, id: number) => {
    c.raw(`{"actioncode":"${actioncode}","id":${id},"data":${deep}}`);
    const reply = await c.next(`reply to deep ${actioncode}`);
    assert.equal(reply.id, id);
    return reply;
  };
  assert.deepEqual(await ask('heart_beat', 1), okReply('heart_beat', true, 1));
  // JSON.stringify of the echoed value overflows the stack: a code 4 reply, not a crash.
  assert.deepEqual(await ask('echo', 2), err(4, 'server error', 'echo', 2));
  // A recursive handler overflows the stack too: same.
  assert.deepEqual(await ask('depth', 3), err(4, 'server error', 'depth', 3));
  assert.ok([0, 4].includes((await ask('checked', 4)).code));
  assert.deepEqual(await c.request('heart_beat'), okReply('heart_beat', true, 1));
  assert.deepEqual(caught, []);
});

test('invalid UTF-8 in a text frame closes with 1007; the same bytes in a binary frame get code 1', async (t) => {
  const { hub, port } = await startHub(t);
  const bad = Buffer.concat([
    Buffer.from('{"actioncode":"heart_beat","data":"'),
    Buffer.from([0xc3, 0x28, 0xff]),
    Buffer.from('"}'),
  ]);

  const binary = await rawPeer(t, port);
  binary.socket.write(
    clientFrame(0x2, Buffer.from('{"actioncode":"heart_beat","id":7,"data":"\xff"}', 'latin1')),
  );
  const reply = await binary.frames();
  assert.equal(reply.opcode, 0x1);
  assert.deepEqual(JSON.parse(reply.payload.toString()), okReply('heart_beat', true, 7));
  binary.socket.write(clientFrame(0x2, bad));
  assert.deepEqual(JSON.parse((await binary.frames()).payload.toString()), {
    code: 0,
    msg: 'success',
    actioncode: 'heart_beat',
    data: true,
  });

  const text = await rawPeer(t, port);
  text.socket.write(clientFrame(0x1, bad));
  assert.equal((await text.closed()).code, 1007);
  // A sequence split across fragments is only checked whole: valid when joined.
  const split = await rawPeer(t, port);
  const euro = Buffer.from('{"actioncode":"heart_beat","id":8,"data":"€"}');
  const cut = euro.indexOf(0xe2) + 1;
  split.socket.write(clientFrame(0x1, euro.subarray(0, cut), false));
  split.socket.write(clientFrame(0x0, euro.subarray(cut)));
  assert.deepEqual(
    JSON.parse((await split.frames()).payload.toString()),
    okReply('heart_beat', true, 8),
  );
  assert.deepEqual([...hub.clients.keys()].length, 2);
});

test('protocol violations (unmasked frame, reserved opcode) close with 1002', async (t) => {
  const { hub, port } = await startHub(t);
  const unmasked = await rawPeer(t, port);
  unmasked.socket.write(Buffer.from([0x81, 0x02, 0x7b, 0x7d])); // {} without the mask bit
  assert.equal((await unmasked.closed()).code, 1002);
  const reserved = await rawPeer(t, port);
  reserved.socket.write(clientFrame(0x3, Buffer.from('{}')));
  assert.equal((await reserved.closed()).code, 1002);
  assert.equal(hub.clients.size, 0);
});

test('prototype-named action codes get code 5 and __proto__/constructor keys never pollute prototypes', async (t) => {
  const caught = trapCrashes(t);
  const seen: unknown[] = [];
  const { url } = await startHub(t, {
    clientFanout: true,
    actions: {
      echo(data: unknown, ctx) {
        seen.push(ctx.message);
        return { ...(data as object), merged: Object.assign({}, data) };
      },
      parsed: { schema: z.looseObject({ name: z.string() }), handler: (data: unknown) => data },
    },
  });
  const before = Object.getOwnPropertyNames(Object.prototype).sort();
  const c = await connect(t, url);
  for (const code of [
    '__proto__',
    'constructor',
    'to_string',
    'has_own_property',
    'value_of',
    '__define_getter__',
    'is_prototype_of',
    'prototype',
  ]) {
    const reply = await c.request(code);
    assert.deepEqual(reply, err(5, 'method not found', code, reply.id));
  }
  const payload =
    '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"name":"x"}';
  let id = 100;
  for (const actioncode of ['echo', 'parsed', 'heart_beat']) {
    const ids = actioncode === 'heart_beat' ? '' : '"client_ids":["__proto__","constructor"],';
    c.raw(
      `{"actioncode":"${actioncode}","id":${++id},"__proto__":{"polluted":"yes"},${ids}"data":${payload}}`,
    );
    const reply = await c.next(`reply to ${actioncode}`);
    assert.equal(reply.code, 0, `${actioncode}: ${reply.msg}`);
    assert.equal(reply.id, id);
  }
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), before);
  assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  assert.equal((Object.prototype as { polluted?: unknown }).polluted, undefined);
  assert.equal(
    Object.getPrototypeOf(seen[0]),
    Object.prototype,
    'the parsed message keeps its prototype',
  );
  assert.deepEqual(caught, []);
});

test('a client flooding past rateLimit gets 429s, then a 1008 close once as many were refused as allowed', async (t) => {
  const { hub, url } = await startHub(t, { rateLimit: { messages: 5, interval: 60_000 } });
  const calm = await connect(t, url);
  const flood = await connect(t, url);
  const gone = new Promise<[number, string]>((r) =>
    hub.once('disconnect', (_c, code, reason) => r([code, reason])),
  );
  for (let i = 1; i <= 50; i++) flood.raw(JSON.stringify({ actioncode: 'heart_beat', id: i }));
  const closed = await flood.closed('close of the flooding client');
  assert.deepEqual(closed, { code: 1008, reason: 'rate limited' });
  assert.deepEqual(await within(gone, 5000, 'disconnect'), [1008, 'rate limited']);
  const replies = flood.frames.map((f) => JSON.parse(f));
  assert.deepEqual(replies, [
    ...[1, 2, 3, 4, 5].map((id) => ({
      code: 0,
      msg: 'success',
      actioncode: 'heart_beat',
      data: true,
      id,
    })),
    ...[6, 7, 8, 9].map((id) => err(429, 'rate limited', 'heart_beat', id)),
  ]);
  // The limit is per client: the calm one is served.
  assert.deepEqual(await calm.request('heart_beat'), okReply('heart_beat', true, 1));
});

test('throwing and rejecting handlers, with no error listener, never crash the process', async (t) => {
  const caught = trapCrashes(t);
  const { hub, url } = await startHub(t, {
    actions: {
      boom() {
        throw new Error('secret detail');
      },
      reject: () => Promise.reject(new Error('secret detail')),
      throwString() {
        // eslint-disable-next-line @typescript-eslint/only-throw-error -- a handler may throw anything
        throw 'a string';
      },
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- a handler may reject with anything
      rejectUndefined: () => Promise.reject(undefined),
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- no toString: String(err) throws
      rejectBare: () => Promise.reject(Object.create(null)),
      throwBare() {
        throw Object.create(null);
      },
      hubError() {
        throw new HubError(9, 'not yours');
      },
      thenableThrows: () => ({
        then() {
          throw new Error('bad thenable');
        },
      }),
      bigint: () => 10n,
      cycle() {
        const o: Record<string, unknown> = {};
        o.self = o;
        return o;
      },
    },
  });
  assert.equal(hub.listenerCount('error'), 0);
  const c = await connect(t, url);
  const other = await connect(t, url);
  for (const code of [
    'boom',
    'reject',
    'throw_string',
    'reject_undefined',
    'reject_bare',
    'throw_bare',
    'thenable_throws',
    'bigint',
    'cycle',
  ]) {
    const reply = await c.request(code);
    assert.deepEqual(reply, err(4, 'server error', code, reply.id), code);
  }
  assert.deepEqual(await c.request('hub_error'), err(9, 'not yours', 'hub_error', 10));
  assert.deepEqual(await other.request('heart_beat'), okReply('heart_beat', true, 1));
  assert.equal(hub.stats().errors, 9);
  assert.deepEqual(caught, []);
});

test('listeners that throw in connection, disconnect and error events never crash the process or corrupt the registry', async (t) => {
  const caught = trapCrashes(t);
  const { hub, url } = await startHub(t, {
    actions: {
      boom() {
        throw new Error('x');
      },
    },
  });
  // Registered first: a listener that throws stops later listeners of that emit (as in Node).
  let onGone: (() => void) | undefined;
  hub.on('disconnect', () => onGone?.());
  for (const event of ['connection', 'disconnect', 'error'] as const) {
    hub.on(event, () => {
      throw new Error(`listener of ${event} threw`);
    });
  }
  const c = await connect(t, url);
  assert.equal(hub.clients.size, 1);
  assert.equal((await c.request('boom')).code, 4);
  const gone = new Promise<void>((r) => (onGone = r));
  c.ws.close();
  await within(gone, 5000, 'disconnect');
  assert.equal(hub.clients.size, 0);
  const d = await connect(t, url);
  assert.deepEqual(await d.request('heart_beat'), okReply('heart_beat', true, 1));
  assert.deepEqual(caught, []);
});
