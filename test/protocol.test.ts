// Pure modules: the codec, the actions table and option checks. No sockets needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { compileActions, toIssues } from '../src/core/actions.ts';
import { encode, isFault, parseInbound } from '../src/core/protocol.ts';
import { createManager, HubError } from '../src/index.ts';

test('parseInbound decodes the seed message and keeps unknown fields in message', () => {
  const text =
    '{"actioncode":"heart_beat","data":{},"id":7,"is_broadcast":false,"client_ids":[],"token":"t","company":"c"}';
  assert.deepEqual(parseInbound(text), {
    actioncode: 'heart_beat',
    data: {},
    id: 7,
    isBroadcast: false,
    clientIds: undefined,
    message: JSON.parse(text),
  });
});

test('parseInbound accepts string ids and client_ids lists, and treats a null id as none', () => {
  const m = parseInbound(
    '{"actioncode":"a","id":"x-1","is_broadcast":true,"client_ids":["p","q"]}',
  );
  assert.ok(!isFault(m));
  assert.deepEqual([m.id, m.isBroadcast, m.clientIds], ['x-1', true, ['p', 'q']]);
  const n = parseInbound('{"actioncode":"a","id":null,"is_broadcast":null,"client_ids":null}');
  assert.ok(!isFault(n));
  assert.deepEqual([n.id, n.isBroadcast, n.clientIds], [undefined, false, undefined]);
});

test('parseInbound answers every malformed message with code 1 and a reason, never throwing', () => {
  const cases: [string, { fault: string; actioncode: string; id: string | number | undefined }][] =
    [
      ['not json', { fault: 'invalid JSON', actioncode: '', id: undefined }],
      ['', { fault: 'invalid JSON', actioncode: '', id: undefined }],
      [
        '[{"actioncode":"a"}]',
        { fault: 'message must be a JSON object', actioncode: '', id: undefined },
      ],
      ['42', { fault: 'message must be a JSON object', actioncode: '', id: undefined }],
      ['null', { fault: 'message must be a JSON object', actioncode: '', id: undefined }],
      ['"heart_beat"', { fault: 'message must be a JSON object', actioncode: '', id: undefined }],
      ['{}', { fault: 'actioncode must be a non-empty string', actioncode: '', id: undefined }],
      [
        '{"actioncode":"","id":1}',
        { fault: 'actioncode must be a non-empty string', actioncode: '', id: 1 },
      ],
      [
        '{"actioncode":5,"id":"a"}',
        { fault: 'actioncode must be a non-empty string', actioncode: '', id: 'a' },
      ],
      [
        '{"actioncode":["a"]}',
        { fault: 'actioncode must be a non-empty string', actioncode: '', id: undefined },
      ],
      [
        '{"actioncode":"a","id":{}}',
        { fault: 'id must be a string or a finite number', actioncode: 'a', id: undefined },
      ],
      [
        '{"actioncode":"a","id":1e400}',
        { fault: 'id must be a string or a finite number', actioncode: 'a', id: undefined },
      ],
      [
        '{"actioncode":"a","id":true}',
        { fault: 'id must be a string or a finite number', actioncode: 'a', id: undefined },
      ],
      [
        '{"actioncode":"a","id":2,"is_broadcast":"yes"}',
        { fault: 'is_broadcast must be a boolean', actioncode: 'a', id: 2 },
      ],
      [
        '{"actioncode":"a","client_ids":"p"}',
        { fault: 'client_ids must be an array of strings', actioncode: 'a', id: undefined },
      ],
      [
        '{"actioncode":"a","client_ids":[1]}',
        { fault: 'client_ids must be an array of strings', actioncode: 'a', id: undefined },
      ],
    ];
  for (const [text, want] of cases)
    assert.deepEqual(parseInbound(text), { ...want, code: 1 }, text);
});

test('encode writes code, msg, actioncode, data and an id only when given', () => {
  assert.equal(
    encode(0, 'success', 'a', { x: 1 }),
    '{"code":0,"msg":"success","actioncode":"a","data":{"x":1}}',
  );
  assert.equal(
    encode(0, 'success', 'a', undefined, 0),
    '{"code":0,"msg":"success","actioncode":"a","data":null,"id":0}',
  );
  assert.equal(
    encode(5, 'say "hi"', 'b', null, 'x'),
    '{"code":5,"msg":"say \\"hi\\"","actioncode":"b","data":null,"id":"x"}',
  );
  assert.throws(() => encode(0, 'success', 'a', 1n), TypeError);
});

test('compileActions maps snake_case codes to own keys, heart_beat built in and overridable', () => {
  const own = () => 'mine';
  const table = compileActions({ getV2Data: own, chatSend: { handler: own, fanout: true } }, false);
  assert.deepEqual([...table.keys()].sort(), ['chat_send', 'get_v2_data', 'heart_beat']);
  assert.equal(table.get('chat_send')?.fanout, true);
  assert.equal(table.get('get_v2_data')?.fanout, false);
  assert.equal(compileActions({ heartBeat: own }, false).get('heart_beat')?.handler, own);
  for (const code of [
    'to_string',
    'constructor',
    '__proto__',
    'has_own_property',
    'value_of',
    'heartBeat',
  ]) {
    assert.equal(table.get(code), undefined, code);
  }
  // Inherited keys are never actions.
  const inherited = compileActions(Object.create({ chatSend: own }) as object, false);
  assert.deepEqual([...inherited.keys()], ['heart_beat']);
});

test('compileActions honours clientFanout for every action, heart_beat included', () => {
  const table = compileActions({ a: () => 1, b: { handler: () => 1, fanout: false } }, true);
  assert.deepEqual(
    [table.get('a')?.fanout, table.get('b')?.fanout, table.get('heart_beat')?.fanout],
    [true, false, true],
  );
});

test('createManager throws a TypeError naming a key that is not camelCase or does not round-trip', () => {
  const noop = () => {};
  assert.throws(
    () => createManager({ actions: { get_data: noop } }),
    /^TypeError: action key "get_data" does not round-trip: "get_data" → "get_data" → "getData"$/,
  );
  assert.throws(
    () => createManager({ actions: { x_1: noop } }),
    /^TypeError: action key "x_1" does not round-trip: "x_1" → "x_1" → "x1"$/,
  );
  for (const key of ['GetData', '2fa', 'naïve', 'chat-send']) {
    assert.throws(
      () => createManager({ actions: { [key]: noop } }),
      new RegExp(
        `^TypeError: action key "${key}" must be camelCase ASCII letters and digits, starting lower case$`,
      ),
      key,
    );
  }
});

test('createManager throws a TypeError for a malformed action', () => {
  assert.throws(
    () => createManager({ actions: { a: 42 } as never }),
    /^TypeError: action "a" must be a function or \{ handler, schema\?, fanout\? \}$/,
  );
  assert.throws(
    () => createManager({ actions: { a: { handler: () => 1, schema: {} } } as never }),
    /^TypeError: action "a": schema must implement Standard Schema v1 \('~standard'\.validate\)$/,
  );
  assert.throws(
    () => createManager({ actions: { a: { handler: () => 1, fanout: 'yes' } } as never }),
    /^TypeError: action "a": fanout must be a boolean, got string$/,
  );
  assert.throws(
    () => createManager({ actions: null as never }),
    /^TypeError: options.actions must be an object, got null$/,
  );
});

test('createManager throws for each bad option, naming it', () => {
  const bad: [options: Record<string, unknown>, message: RegExp][] = [
    [{ maxPayload: -1 }, /^RangeError: options\.maxPayload must be a positive integer, got -1$/],
    [{ maxPayload: 1.5 }, /^RangeError: options\.maxPayload must be a positive integer, got 1\.5$/],
    [
      { maxPayload: Infinity },
      /^RangeError: options\.maxPayload must be a positive integer, got Infinity$/,
    ],
    [{ maxClients: 0 }, /^RangeError: options\.maxClients must be a positive integer, got 0$/],
    [
      { authenticateTimeout: '5' },
      /^RangeError: options\.authenticateTimeout must be a positive integer, got 5$/,
    ],
    [
      { heartbeat: { interval: 0 } },
      /^RangeError: options\.heartbeat\.interval must be a positive integer, got 0$/,
    ],
    [
      { backpressure: { highWaterMark: NaN } },
      /^RangeError: options\.backpressure\.highWaterMark must be a positive integer, got NaN$/,
    ],
    [
      { backpressure: { policy: 'block' } },
      /^TypeError: options\.backpressure\.policy must be 'close' or 'drop', got "block"$/,
    ],
    [
      { rateLimit: { messages: 10 } },
      /^RangeError: options\.rateLimit\.interval must be a positive integer, got NaN$/,
    ],
    [
      { rateLimit: { interval: 1000 } },
      /^RangeError: options\.rateLimit\.messages must be a positive integer, got NaN$/,
    ],
    [{ clientFanout: 'yes' }, /^TypeError: options\.clientFanout must be a boolean, got string$/],
    [{ authenticate: true }, /^TypeError: options\.authenticate must be a function, got boolean$/],
    [{ id: 'fixed' }, /^TypeError: options\.id must be a function, got string$/],
    [{ adapter: {} }, /^TypeError: options\.adapter must be a function, got object$/],
    [
      { allowOrigin: 'https://a.example' },
      /^TypeError: options\.allowOrigin must be an array of non-empty strings$/,
    ],
    [
      { protocols: ['a', ''] },
      /^TypeError: options\.protocols must be an array of non-empty strings$/,
    ],
    [{ logger: 'console' }, /^TypeError: options\.logger must be an object$/],
  ];
  for (const [options, message] of bad)
    assert.throws(() => createManager(options as never), message, JSON.stringify(options));
  assert.throws(
    () => createManager(null as never),
    /^TypeError: createManager options must be an object$/,
  );
});

test('createManager accepts every option at its documented form without opening anything', async () => {
  const hub = createManager({
    actions: { a: () => 1 },
    authenticate: () => ({ user: 'u' }),
    authenticateTimeout: 100,
    id: () => 'x',
    allowOrigin: ['https://a.example'],
    protocols: ['chat.v1'],
    maxPayload: 1024,
    maxClients: Infinity,
    heartbeat: false,
    backpressure: { highWaterMark: 1024, policy: 'drop' },
    rateLimit: { messages: 10, interval: 1000 },
    clientFanout: true,
    logger: console,
  });
  assert.equal(hub.clients.size, 0);
  await hub.close();
});

test('toIssues reduces Standard Schema issues to { message, path } with plain keys', () => {
  const schema = z.object({ list: z.array(z.object({ n: z.number() })) });
  const result = schema['~standard'].validate({ list: [{ n: 'x' }] });
  assert.ok(!(result instanceof Promise) && result.issues);
  assert.deepEqual(toIssues(result.issues), [
    { message: 'Invalid input: expected number, received string', path: ['list', 0, 'n'] },
  ]);
  assert.deepEqual(
    toIssues([{ message: 'm', path: [{ key: 'a' }, { key: 1 }] }, { message: 'top' }]),
    [
      { message: 'm', path: ['a', 1] },
      { message: 'top', path: [] },
    ],
  );
});

test('HubError keeps its code and rejects a non-integer one', () => {
  const err = new HubError(9, 'nope');
  assert.deepEqual(
    [err.name, err.code, err.message, err instanceof Error],
    ['HubError', 9, 'nope', true],
  );
  assert.throws(
    () => new HubError(1.5, 'x'),
    /^TypeError: HubError code must be an integer, got 1\.5$/,
  );
});
