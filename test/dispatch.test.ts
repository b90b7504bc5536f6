import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { Code, HubError, type ActionContext } from '../src/index.ts';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect, type TestClient, okReply } from './helpers/client.ts';
import { within } from './helpers/wait.ts';

assertNoLeaks();

/** Every frame's opcode as the client saw it, in arrival order. */
function opcodes(c: TestClient): boolean[] {
  const binary: boolean[] = [];
  c.ws.on('message', (_data, isBinary) => binary.push(isBinary));
  return binary;
}

test('replies to heart_beat with true and echoes the request id', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  assert.deepEqual(await c.request('heart_beat'), okReply('heart_beat', true, 1));
  assert.equal(hub.clients.size, 1);
});

test('a heartBeat action replaces the built-in one', async (t) => {
  const { url } = await startHub(t, { actions: { heartBeat: () => 'pong' } });
  const c = await connect(t, url);
  assert.deepEqual(await c.request('heart_beat'), okReply('heart_beat', 'pong', 1));
});

test('calls the handler with data and ctx, and its return value is the reply data', async (t) => {
  let seen: { data: unknown; ctx: ActionContext<{ user: string }> } | undefined;
  const { hub, url } = await startHub(t, {
    authenticate: () => ({ user: 'ann' }),
    actions: {
      chatSend(data: { text: string }, ctx) {
        seen = { data, ctx };
        return { echo: data.text };
      },
      nothing() {},
    },
  });
  const c = await connect(t, url);
  const reply = await c.request(
    'chat_send',
    { text: 'hi' },
    { token: 'tok', company: 'acme', extra: [1] },
  );
  assert.deepEqual(reply, okReply('chat_send', { echo: 'hi' }, 1));
  assert.ok(seen);
  const [client] = hub.clients;
  assert.equal(seen.ctx.client, client);
  assert.equal(seen.ctx.hub, hub);
  assert.equal(seen.ctx.actioncode, 'chat_send');
  assert.equal(seen.ctx.id, 1);
  assert.deepEqual(seen.ctx.client.data, { user: 'ann' });
  assert.deepEqual(seen.ctx.message, {
    actioncode: 'chat_send',
    data: { text: 'hi' },
    id: 1,
    token: 'tok',
    company: 'acme',
    extra: [1],
  });
  // A handler returning undefined replies with data null.
  assert.deepEqual(await c.request('nothing'), okReply('nothing', null, 2));
});

test('answers each bad frame with code 1 and keeps the connection open', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  const fault = (msg: string, actioncode = '', id?: string | number) => ({
    code: 1,
    msg,
    actioncode,
    data: null,
    ...(id === undefined ? {} : { id }),
  });
  const cases: [frame: string | Buffer, reply: ReturnType<typeof fault>][] = [
    ['not json', fault('invalid JSON')],
    ['{"actioncode":', fault('invalid JSON')],
    [Buffer.from([0xff, 0xfe, 0x00]), fault('invalid JSON')],
    ['[1,2]', fault('message must be a JSON object')],
    ['[{"actioncode":"heart_beat"}]', fault('message must be a JSON object')],
    ['42', fault('message must be a JSON object')],
    ['null', fault('message must be a JSON object')],
    ['"heart_beat"', fault('message must be a JSON object')],
    ['{}', fault('actioncode must be a non-empty string')],
    ['{"data":{},"id":3}', fault('actioncode must be a non-empty string', '', 3)],
    ['{"actioncode":"","id":"e"}', fault('actioncode must be a non-empty string', '', 'e')],
    ['{"actioncode":7,"id":4}', fault('actioncode must be a non-empty string', '', 4)],
    ['{"actioncode":null}', fault('actioncode must be a non-empty string')],
    ['{"actioncode":{"x":1}}', fault('actioncode must be a non-empty string')],
    [
      '{"actioncode":"heart_beat","id":{"a":1}}',
      fault('id must be a string or a finite number', 'heart_beat'),
    ],
    [
      '{"actioncode":"heart_beat","id":[5]}',
      fault('id must be a string or a finite number', 'heart_beat'),
    ],
    [
      '{"actioncode":"heart_beat","id":false}',
      fault('id must be a string or a finite number', 'heart_beat'),
    ],
    [
      '{"actioncode":"heart_beat","id":5,"is_broadcast":"true"}',
      fault('is_broadcast must be a boolean', 'heart_beat', 5),
    ],
    [
      '{"actioncode":"heart_beat","id":6,"is_broadcast":1}',
      fault('is_broadcast must be a boolean', 'heart_beat', 6),
    ],
    [
      '{"actioncode":"heart_beat","id":7,"client_ids":"abc"}',
      fault('client_ids must be an array of strings', 'heart_beat', 7),
    ],
    [
      '{"actioncode":"heart_beat","id":8,"client_ids":[1,2]}',
      fault('client_ids must be an array of strings', 'heart_beat', 8),
    ],
    [
      '{"actioncode":"heart_beat","id":9,"client_ids":{"0":"a"}}',
      fault('client_ids must be an array of strings', 'heart_beat', 9),
    ],
  ];
  for (const [frame, want] of cases) {
    c.raw(frame);
    assert.deepEqual(await c.next(`reply to ${String(frame)}`), want, String(frame));
  }
  for (const frame of ['not json', '[]', '{"actioncode":1}']) {
    c.raw(Buffer.from(frame)); // the same in a binary frame
    assert.equal((await c.next(`binary ${frame}`)).code, Code.InvalidParams, frame);
  }
  assert.equal(c.ws.readyState, c.ws.OPEN);
  assert.deepEqual(await c.request('heart_beat'), okReply('heart_beat', true, 1));
  assert.equal(hub.clients.size, 1);
  assert.equal(hub.stats().errors, 0, 'bad input is not a server error');
});

test('a null id counts as no id and unknown fields are ignored', async (t) => {
  const { url } = await startHub(t);
  const c = await connect(t, url);
  c.raw(
    '{"actioncode":"heart_beat","id":null,"data":{},"is_broadcast":false,"client_ids":[],"token":"","company":"","x":1}',
  );
  assert.deepEqual(await c.next(), {
    code: 0,
    msg: 'success',
    actioncode: 'heart_beat',
    data: true,
  });
});

test('replies with code 5 to an unknown or prototype-named actioncode and keeps the connection open', async (t) => {
  const { url } = await startHub(t, { actions: { chatSend: () => true } });
  const c = await connect(t, url);
  const codes = [
    'nope',
    'to_string',
    'constructor',
    '__proto__',
    'has_own_property',
    'value_of',
    'is_prototype_of',
    'toString',
    'heartBeat',
    'chatSend',
    'chat_send ',
    'CHAT_SEND',
  ];
  for (const code of codes) {
    const reply = await c.request(code);
    assert.deepEqual(
      reply,
      { code: 5, msg: 'method not found', actioncode: code, data: null, id: reply.id },
      code,
    );
  }
  assert.equal((await c.request('chat_send')).code, 0);
});

test('replies with code 4 and no detail when a handler throws, and reports the error', async (t) => {
  const secret = 'db password is hunter2';
  const { hub, url } = await startHub(t, {
    actions: {
      boom() {
        throw new Error(secret);
      },
      throwString() {
        throw secret; // eslint-disable-line @typescript-eslint/only-throw-error -- a handler may throw a string
      },
      async reject() {
        await Promise.resolve();
        throw new TypeError(secret);
      },
    },
  });
  const errors: [Error, string | undefined][] = [];
  hub.on('error', (err, client) => errors.push([err, client?.id]));
  const c = await connect(t, url);
  c.ws.on('message', (data) =>
    assert.ok(!data.toString().includes('hunter2'), 'the error text leaked'),
  );
  for (const code of ['boom', 'throw_string', 'reject']) {
    const reply = await c.request(code);
    assert.deepEqual(
      reply,
      { code: 4, msg: 'server error', actioncode: code, data: null, id: reply.id },
      code,
    );
  }
  const [client] = hub.clients;
  assert.deepEqual(
    errors.map(([err, id]) => [err.message, id]),
    [
      [secret, client!.id],
      [secret, client!.id],
      [secret, client!.id],
    ],
  );
  assert.equal(hub.stats().errors, 3);
  assert.equal((await c.request('heart_beat')).code, 0);
});

test('sends a HubError code and message as thrown, sync or async, without reporting an error', async (t) => {
  const { hub, url } = await startHub(t, {
    actions: {
      denied() {
        throw new HubError(Code.PermissionDenied, 'moderators only');
      },
      async expired() {
        await Promise.resolve();
        throw new HubError(Code.TokenExpired, 'token expired');
      },
      custom: () => Promise.reject(new HubError(4001, 'room is full')),
    },
  });
  let errors = 0;
  hub.on('error', () => errors++);
  const c = await connect(t, url);
  assert.deepEqual(await c.request('denied'), {
    code: 9,
    msg: 'moderators only',
    actioncode: 'denied',
    data: null,
    id: 1,
  });
  assert.deepEqual(await c.request('expired'), {
    code: 7,
    msg: 'token expired',
    actioncode: 'expired',
    data: null,
    id: 2,
  });
  assert.deepEqual(await c.request('custom'), {
    code: 4001,
    msg: 'room is full',
    actioncode: 'custom',
    data: null,
    id: 3,
  });
  assert.equal(errors, 0);
});

test('replies to async handlers when they settle, matched by id even out of order', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { url } = await startHub(t, {
    actions: {
      async slow(data: number) {
        await gate;
        return data * 2;
      },
      fast: (data: number) => Promise.resolve(data + 1),
    },
  });
  const c = await connect(t, url);
  c.raw(JSON.stringify({ actioncode: 'slow', data: 21, id: 's' }));
  assert.deepEqual(await c.request('fast', 1), okReply('fast', 2, 1));
  release();
  assert.deepEqual(await c.next('slow reply'), okReply('slow', 42, 's'));
});

test('echoes string and number ids over text and binary frames, always replying in text frames', async (t) => {
  const { url } = await startHub(t);
  const c = await connect(t, url);
  const binary = opcodes(c);
  const ids = ['abc', '', 7, 0, -1.5, 2 ** 53];
  for (const id of ids) {
    for (const asBinary of [false, true]) {
      const text = JSON.stringify({ actioncode: 'heart_beat', id });
      c.raw(asBinary ? Buffer.from(text) : text, asBinary);
      assert.deepEqual(await c.next(`reply to id ${id}`), {
        code: 0,
        msg: 'success',
        actioncode: 'heart_beat',
        data: true,
        id,
      });
    }
  }
  assert.deepEqual(binary, Array(ids.length * 2).fill(false));
});

test('validates schema actions: invalid data gets code 1 with the issues, valid data arrives transformed', async (t) => {
  const calls: unknown[] = [];
  const { url } = await startHub(t, {
    actions: {
      chatSend: {
        schema: z.object({ text: z.string().min(1), count: z.string().transform(Number) }),
        handler(data) {
          calls.push(data);
          return { text: data.text, double: data.count * 2 };
        },
      },
      asyncCheck: {
        schema: z.string().refine(async (s) => s !== 'taken', 'name taken'),
        handler: (name) => `hello ${name}`,
      },
    },
  });
  const c = await connect(t, url);
  assert.deepEqual(await c.request('chat_send', { text: 5, count: '2' }), {
    code: 1,
    msg: 'invalid params',
    actioncode: 'chat_send',
    data: [{ message: 'Invalid input: expected string, received number', path: ['text'] }],
    id: 1,
  });
  assert.deepEqual(await c.request('chat_send'), {
    code: 1,
    msg: 'invalid params',
    actioncode: 'chat_send',
    data: [{ message: 'Invalid input: expected object, received undefined', path: [] }],
    id: 2,
  });
  assert.deepEqual(calls, [], 'the handler never sees invalid data');
  assert.deepEqual(
    await c.request('chat_send', { text: 'hi', count: '21' }),
    okReply('chat_send', { text: 'hi', double: 42 }, 3),
  );
  assert.deepEqual(calls, [{ text: 'hi', count: 21 }]);
  assert.deepEqual(await c.request('async_check', 'taken'), {
    code: 1,
    msg: 'invalid params',
    actioncode: 'async_check',
    data: [{ message: 'name taken', path: [] }],
    id: 4,
  });
  assert.deepEqual(await c.request('async_check', 'ann'), okReply('async_check', 'hello ann', 5));
});

test('a schema whose validate throws gets code 4 like a throwing handler', async (t) => {
  const broken = {
    '~standard': {
      version: 1 as const,
      vendor: 'test',
      validate: (): never => {
        throw new Error('validator bug');
      },
    },
  };
  const { hub, url } = await startHub(t, {
    actions: { check: { schema: broken, handler: () => 1 } },
  });
  const errors: string[] = [];
  hub.on('error', (err) => errors.push(err.message));
  const c = await connect(t, url);
  assert.deepEqual(await c.request('check', 1), {
    code: 4,
    msg: 'server error',
    actioncode: 'check',
    data: null,
    id: 1,
  });
  assert.deepEqual(errors, ['validator bug']);
});

test('a reply JSON cannot encode becomes code 4, never a crash', async (t) => {
  const deep: Record<string, unknown> = {};
  let node = deep;
  for (let i = 0; i < 20_000; i++) node = (node.x = {}) as Record<string, unknown>;
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const { hub, url } = await startHub(t, {
    actions: { big: () => 1n, cycle: () => cyclic, deep: () => deep },
  });
  const errors: string[] = [];
  hub.on('error', (err) => errors.push(err.message));
  const c = await connect(t, url);
  for (const code of ['big', 'cycle', 'deep']) {
    const reply = await c.request(code);
    assert.deepEqual(
      reply,
      { code: 4, msg: 'server error', actioncode: code, data: null, id: reply.id },
      code,
    );
  }
  assert.deepEqual(errors, [
    'reply to "big" cannot be encoded as JSON',
    'reply to "cycle" cannot be encoded as JSON',
    'reply to "deep" cannot be encoded as JSON',
  ]);
  assert.equal((await c.request('heart_beat')).code, 0);
});

test("one client's failing handler does not affect another client", async (t) => {
  const { url } = await startHub(t, {
    actions: {
      boom: () => {
        throw new Error('x');
      },
    },
  });
  const [a, b] = await Promise.all([connect(t, url), connect(t, url)]);
  const results = await within(
    Promise.all([a.request('boom'), b.request('heart_beat'), a.request('heart_beat')]),
    5000,
    'replies',
  );
  assert.deepEqual(
    results.map((r) => r.code),
    [4, 0, 0],
  );
});
