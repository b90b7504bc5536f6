// Compile-time assertions, checked by `tsc -p test` (never run). An unused `@ts-expect-error` is
// itself an error, so every misuse below must stay rejected.
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { createManager, HubError } from '../src/index.ts';
import type { ActionCode, CamelCase, Client, Manager, SnakeCase } from '../src/index.ts';

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Expect<T extends true> = T;

// --- case conversion -------------------------------------------------------------------------
const actions = {
  heartBeat() {
    return true;
  },
  chatSend(data: { text: string }) {
    return data.text;
  },
};
type _codes = Expect<Equal<ActionCode<typeof actions>, 'heart_beat' | 'chat_send'>>;
type _codesBuiltIn = Expect<Equal<ActionCode<{ chatSend(): void }>, 'heart_beat' | 'chat_send'>>;
type _snake1 = Expect<Equal<SnakeCase<'getV2Data'>, 'get_v2_data'>>;
type _snake2 = Expect<Equal<SnakeCase<'heartBeat'>, 'heart_beat'>>;
type _camel1 = Expect<Equal<CamelCase<'get_v2_data'>, 'getV2Data'>>;
type _camel2 = Expect<Equal<CamelCase<'heart_beat'>, 'heartBeat'>>;
type _plain = Expect<Equal<SnakeCase<'ping'>, 'ping'>>;
// 105 characters: the naive recursive form fails with TS2589 around 50.
type Long =
  'aVeryLongActionNameThatKeepsGoingAndGoingWellPastFiftyCharactersToProveTheTypeIsTailRecursiveAndFineTooOk';
type LongSnake =
  'a_very_long_action_name_that_keeps_going_and_going_well_past_fifty_characters_to_prove_the_type_is_tail_recursive_and_fine_too_ok';
type _long = Expect<Equal<SnakeCase<Long>, LongSnake>>;
type _longBack = Expect<Equal<CamelCase<LongSnake>, Long>>;

// --- schema-inferred data ----------------------------------------------------------------------
createManager({
  actions: {
    chatSend: {
      schema: z.object({ text: z.string(), to: z.array(z.string()).optional() }),
      handler(data) {
        type _data = Expect<Equal<typeof data, { text: string; to?: string[] | undefined }>>;
        // @ts-expect-error: not in the schema
        void data.txt;
        return data.text.length;
      },
    },
    count: {
      schema: z.string().transform((s) => s.length),
      handler: (n) => {
        type _n = Expect<Equal<typeof n, number>>;
        return n + 1;
      },
      fanout: true,
    },
    ping(data: { n: number }, ctx) {
      type _ctx = Expect<Equal<typeof ctx.actioncode, string>>;
      return data.n;
    },
  },
});

// --- authenticate → client.data ----------------------------------------------------------------
const hub = createManager({
  authenticate: async (req: IncomingMessage) =>
    req.headers.authorization ? { user: 'ann', admin: false } : false,
  actions: {
    whoAmI(_data: unknown, ctx) {
      type _d = Expect<Equal<typeof ctx.client.data, { user: string; admin: boolean }>>;
      if (!ctx.client.data.admin) throw new HubError(9, 'admins only');
      return ctx.client.data.user;
    },
  },
});
type _hub = Expect<Equal<typeof hub, Manager<{ user: string; admin: boolean }>>>;
hub.on('connection', (c, req) => {
  type _c = Expect<Equal<typeof c.data, { user: string; admin: boolean }>>;
  type _req = Expect<Equal<typeof req, IncomingMessage | undefined>>;
});
hub.on('disconnect', (c, code, reason) => {
  type _args = Expect<
    Equal<
      [typeof c, typeof code, typeof reason],
      [Client<{ user: string; admin: boolean }>, number, string]
    >
  >;
});
hub.on('drop', (_c, reason) => {
  type _r = Expect<Equal<typeof reason, 'backpressure'>>;
});
hub.on('error', (err, c) => {
  type _e = Expect<
    Equal<[typeof err, typeof c], [Error, Client<{ user: string; admin: boolean }> | undefined]>
  >;
});
// @ts-expect-error: no such event
hub.on('connect', () => {});
// @ts-expect-error: disconnect's code is a number
hub.on('disconnect', (_c, _code: string) => {});
// @ts-expect-error: wrong arity/types for connection
hub.on('connection', (_c: string) => {});
for (const c of hub.clients) {
  type _it = Expect<Equal<typeof c.data, { user: string; admin: boolean }>>;
}
const found = hub.clients.get('x');
type _get = Expect<Equal<typeof found, Client<{ user: string; admin: boolean }> | undefined>>;

// --- manager methods -----------------------------------------------------------------------------
const n: number = hub.broadcast(
  'chat_message',
  { text: 'hi' },
  { to: ['a'], rooms: ['r'], except: ['b'] },
);
const sent: boolean = hub.send('a', 'x', null);
const joined: boolean = hub.join('a', 'room');
const left: boolean = hub.leave('a', 'room');
const gone: boolean = hub.unregister('a', 1000, 'bye');
void [n, sent, joined, left, gone];
// @ts-expect-error: target.to is a list of ids
hub.broadcast('x', 1, { to: 'a' });
// @ts-expect-error: unknown target key
hub.broadcast('x', 1, { room: ['a'] });
void hub.close({ code: 1001, reason: 'bye', timeout: 100 }).then(() => {});
const s = hub.stats();
type _stats = Expect<
  Equal<
    keyof typeof s,
    'clients' | 'messagesIn' | 'messagesOut' | 'bytesIn' | 'bytesOut' | 'dropped' | 'errors'
  >
>;

// --- option misuse ------------------------------------------------------------------------------
// @ts-expect-error: policy is 'close' | 'drop'
createManager({ backpressure: { policy: 'block' } });
// @ts-expect-error: an action is a function or { handler }
createManager({ actions: { chatSend: 42 } });
createManager({
  actions: {
    // @ts-expect-error: the handler's data must accept what the schema outputs
    wrongData: { schema: z.string(), handler: (n: number) => n },
  },
});
createManager({
  actions: {
    // no schema: `data` is what the handler says, `fanout` still allowed
    shout: {
      handler: (data: { text: string }, ctx) => ctx.hub.broadcast('shout', data.text),
      fanout: true,
    },
  },
});

// --- an actions map declared on its own, then passed in ----------------------------------------
const separate = {
  chatSend: {
    schema: z.object({ text: z.string() }),
    handler: (data: { text: string }) => data.text,
  },
  getV2Data: (_data: unknown) => [1, 2],
};
createManager({ actions: separate });
type _separate = Expect<
  Equal<ActionCode<typeof separate>, 'chat_send' | 'get_v2_data' | 'heart_beat'>
>;
const wrongSeparate = {
  chatSend: {
    schema: z.object({ text: z.string() }),
    handler: (data: { text: number }) => data.text,
  },
};
// @ts-expect-error: the handler's data does not match the schema's output
createManager({ actions: wrongSeparate });
