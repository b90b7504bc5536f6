// The commands of test/model.test.ts. Each is an arbitrary of `Cmd`s whose choices (which client,
// which room) are indices resolved against the model when the command runs, so a sequence replays
// and shrinks deterministically. `act` does the same thing to the model and to the real hubs and
// asserts what the call returns; `Cmd.run` then settles and compares everything (model-run.ts).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  addClient,
  audience,
  broadcast,
  byId,
  CLOSE_CODES,
  clientGone,
  HIGH_WATER_MARK,
  joinOrLeave,
  letGo,
  push,
  queue,
  receive,
  ROOMS,
  send,
  validClose,
  wire,
  type Bad,
  type Json,
  type MClient,
  type Model,
  type Msg,
  type Target,
} from './model.ts';
import {
  ASK,
  checkFrames,
  Cmd,
  notReady,
  pick,
  ready,
  thaw,
  WAIT,
  type Real,
} from './model-run.ts';
import { Peer } from './peer.ts';
import { within } from './wait.ts';

const MAX_OPEN = 6; // clients open at once
const MAX_FLOOD = 2000; // 16 KiB frames: 32 MiB, far past what loopback buffers hold
const PAD = 'f'.repeat(16 * 1024);

// --- choices, resolved against the model when a command runs ---

const ids = (m: Readonly<Model>): string[] => [...m.clients.map((c) => c.id), 'ghost'];
const open = (m: Readonly<Model>): MClient[] => m.clients.filter((c) => c.open);
const readers = (m: Readonly<Model>): MClient[] =>
  m.clients.filter((c) => c.open && c.registered && !c.frozen);
const nodeOf = (m: Readonly<Model>, node: number): number => (m.cluster ? node : 0);
const on = (m: Readonly<Model>, node: number): string => (m.cluster ? ` on node ${node}` : '');

const json: fc.Arbitrary<Json> = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.string({ maxLength: 6 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer({ min: 0, max: 99 }), { maxLength: 2 }),
  fc.record({ a: fc.string({ maxLength: 3 }) }),
);

/** A client message whose fan-out targets are still indices. */
type Spec =
  Exclude<Msg, { t: 'shout' }> | { t: 'shout'; data: Json; fan: 'none' | 'all' | number[] };

const BAD: Bad[] = ['notjson', 'array', 'noaction', 'badid', 'unknown', 'proto', 'badfan'];
const spec: fc.Arbitrary<Spec> = fc.oneof(
  fc.constant<Spec>({ t: 'heart_beat' }),
  fc.record({ t: fc.constant('echo' as const), data: json, binary: fc.boolean() }),
  fc.record({ t: fc.constant('say' as const), text: fc.string({ maxLength: 6 }) }),
  fc.record({
    t: fc.constant('shout' as const),
    data: json,
    fan: fc.oneof(
      fc.constantFrom('none' as const, 'all' as const),
      fc.array(fc.nat(9), { minLength: 1, maxLength: 3 }),
    ),
  }),
  fc.constantFrom<Spec>(
    { t: 'denied' },
    { t: 'deny' },
    { t: 'boom' },
    { t: 'utf8' },
    { t: 'oversize' },
  ),
  fc.record({ t: fc.constant('bad' as const), which: fc.constantFrom(...BAD) }),
);

const resolve = (m: Readonly<Model>, s: Spec): Msg =>
  s.t === 'shout' && Array.isArray(s.fan)
    ? { ...s, fan: s.fan.map((i) => pick(ids(m), i)!) }
    : (s as Msg);

const describe = (msg: Msg): string =>
  msg.t === 'bad'
    ? `bad ${msg.which}`
    : msg.t === 'shout'
      ? `shout ${JSON.stringify(msg.fan)}`
      : msg.t;

// --- commands of both properties ---

/** Connects a new client to `node` (an upgrade, or a foreign socket given to register()), then joins `room`. */
export async function connect(
  m: Model,
  r: Real,
  node: number,
  kind: MClient['kind'],
  room?: string,
): Promise<string> {
  const c = addClient(m, node, kind);
  const peer = new Peer(`${kind === 'upgrade' ? r.nodes[node]!.url : r.foreign!.url}?id=${c.id}`);
  r.peers.set(c.id, peer);
  await within(peer.opened, WAIT, `${c.id} to open`);
  if (kind === 'adopted') {
    const foreign = r.foreign!;
    await foreign.log.until(() => foreign.sockets.has(c.id), `${c.id} on the foreign server`);
    const ws = foreign.sockets.get(c.id)!;
    peer.server = (ws as unknown as { _socket: Peer['server'] })._socket;
    assert.equal(r.nodes[0]!.hub.register(ws, { id: c.id }).id, c.id);
  }
  if (room === undefined) return `${c.id} ${kind}`;
  assert.equal(r.nodes[node]!.hub.join(c.id, room), joinOrLeave(m, node, c.id, room, true));
  return `${c.id} ${kind} in ${room}`;
}

export const connectCmd = (node: number, kind: MClient['kind']) =>
  fc.option(fc.constantFrom(...ROOMS), { nil: undefined, freq: 2 }).map(
    (room) =>
      new Cmd(
        `connect ${kind}${node ? ` on node ${node}` : ''}${room ? ` in ${room}` : ''}`,
        (m) => open(m).length < MAX_OPEN,
        (m, r) => connect(m, r, nodeOf(m, node), kind, room),
      ),
  );

type How = '1000' | '4001' | 'none' | 'terminate' | 'reset';
export const closeCmd = fc
  .record({
    i: fc.nat(15),
    how: fc.constantFrom<How>('1000', '4001', 'none', 'terminate', 'reset'),
  })
  .map(({ i, how }) => {
    const dropped = how === 'terminate' || how === 'reset';
    // a paused reader cannot complete a close handshake: it can only drop the connection
    const closable = (m: Readonly<Model>) => open(m).filter((c) => dropped || !c.frozen);
    return new Cmd(
      `client #${i} closes: ${how}`,
      (m) => closable(m).length > 0,
      async (m, r) => {
        const c = pick(closable(m), i)!;
        const peer = r.peers.get(c.id)!;
        const [code, reason] =
          how === '1000'
            ? [1000, '']
            : how === '4001'
              ? [4001, 'bye']
              : how === 'none'
                ? [1005, '']
                : [1006, ''];
        if (dropped) peer.drop(how);
        else if (how === 'none') peer.ws.close();
        else peer.ws.close(code, reason);
        const closed = await peer.closed(WAIT, `${c.id} to close`);
        if (!dropped)
          assert.deepEqual(closed, { code, reason }, `${c.id}: the hub echoes its close`);
        checkFrames(c, peer, c.frozen); // a dropped paused reader loses what it had not read
        clientGone(m, c, code, reason);
        return c.id;
      },
    );
  });

type Form = 'id' | 'client' | 'client.close';
export const unregisterCmd = fc
  .record({
    node: fc.nat(1),
    i: fc.nat(15),
    code: fc.constantFrom(...CLOSE_CODES),
    reason: fc.constantFrom('', 'bye', 'x'.repeat(124)),
    form: fc.constantFrom<Form>('id', 'client', 'client.close'),
  })
  .map(({ node: n, i, code, reason, form }) => {
    const label = `unregister #${i} (${form}, ${code}, ${reason.length > 3 ? `${reason.length} bytes` : `'${reason}'`})`;
    return new Cmd(
      label,
      () => true,
      async (m, r) => {
        const id = pick(ids(m), i)!;
        const obj = r.objects.get(id); // the Client the hub made for this id, if any
        const c = byId(m, id);
        const node = form === 'client.close' && obj ? (c?.node ?? 0) : nodeOf(m, n);
        const hub = r.nodes[node]!.hub;
        const call = (): boolean => {
          if (form === 'id' || !obj) return hub.unregister(id, code, reason);
          if (form === 'client') return hub.unregister(obj, code, reason);
          obj.close(code, reason);
          return true;
        };
        if (!c || c.node !== node) {
          if (form === 'client.close' && obj)
            call(); // close() on a Client that is gone: a no-op
          else assert.equal(call(), false, `unregister(${id})${on(m, node)}`);
          return `${id}${on(m, node)}: not registered there`;
        }
        if (!validClose(code, reason)) {
          assert.throws(call, RangeError);
          return `${id}: RangeError`;
        }
        assert.equal(call(), true, `unregister(${id})`);
        letGo(m, c, code, reason);
        if (!c.frozen) {
          const peer = r.peers.get(c.id)!;
          assert.deepEqual(await peer.closed(WAIT, `${c.id}: the hub's close`), { code, reason });
          c.open = false;
          checkFrames(c, peer);
        }
        return `${id} let go`;
      },
    );
  });

const indices = fc.option(fc.array(fc.nat(9), { maxLength: 3 }), { nil: undefined, freq: 2 });
/** `except` is there two times in three, and names someone. */
const exceptions = fc.option(fc.array(fc.nat(9), { minLength: 1, maxLength: 2 }), {
  nil: undefined,
  freq: 3,
});
/** Mostly one or two of the busy rooms; sometimes all three, none, or no `rooms` at all. */
const rooms = fc.option(
  fc.oneof(
    fc.constantFrom<string[]>(['red'], ['blue'], ['red', 'blue'], ['red', 'green']),
    fc.subarray([...ROOMS]),
  ),
  { nil: undefined, freq: 2 },
);
export const broadcastCmd = fc
  .record({ node: fc.nat(1), to: indices, rooms, except: exceptions, data: json })
  .map(
    ({ node: n, to, rooms, except, data }) =>
      new Cmd(
        `broadcast ${JSON.stringify({ to, rooms, except, data })}`,
        () => true,
        async (m, r) => {
          const node = nodeOf(m, n);
          const reach: Target = {
            ...(to && { to: to.map((i) => pick(ids(m), i)!) }),
            ...(rooms && { rooms }),
          };
          // `except` names clients the broadcast would reach (or a ghost), else it would rarely matter
          const left = [...audience(m, node, reach).map((c) => c.id), 'ghost'];
          const target: Target = {
            ...reach,
            ...(except && { except: except.map((i) => pick(left, i)!) }),
          };
          const t = Object.keys(target).length > 0 ? target : undefined;
          const want = broadcast(m, node, push('news', data), t);
          assert.equal(
            r.nodes[node]!.hub.broadcast('news', data, t),
            want,
            `broadcast()${on(m, node)} returns the local count`,
          );
          return `${JSON.stringify(t)}${on(m, node)}`;
        },
      ),
  );

export const sendCmd = fc.record({ node: fc.nat(1), i: fc.nat(15), data: json }).map(
  ({ node: n, i, data }) =>
    new Cmd(
      `send #${i}`,
      () => true,
      async (m, r) => {
        const node = nodeOf(m, n);
        const id = pick(ids(m), i)!;
        assert.equal(
          r.nodes[node]!.hub.send(id, 'dm', data),
          send(m, node, id, push('dm', data)),
          `send(${id})${on(m, node)}`,
        );
        return `${id}${on(m, node)}`;
      },
    ),
);

export const roomCmd = fc
  .record({
    node: fc.nat(1),
    i: fc.nat(15),
    room: fc.constantFrom('red', 'red', 'blue', 'blue', 'green'),
    join: fc.boolean(),
  })
  .map(
    ({ node: n, i, room, join }) =>
      new Cmd(
        `${join ? 'join' : 'leave'} #${i} ${room}`,
        () => true,
        async (m, r) => {
          const node = nodeOf(m, n);
          const id = pick(ids(m), i)!;
          const hub = r.nodes[node]!.hub;
          const got = join ? hub.join(id, room) : hub.leave(id, room);
          assert.equal(
            got,
            joinOrLeave(m, node, id, room, join),
            `${join ? 'join' : 'leave'}(${id})${on(m, node)}`,
          );
          return `${id}${on(m, node)}`;
        },
      ),
  );

/**
 * A client sends a message. Who may send: every open client; with `zombies`, also one the hub let
 * go that is still open because it is paused and has not read its close frame.
 */
export const messageCmd = (zombies: boolean) => {
  const senders = (m: Readonly<Model>) => open(m).filter((c) => c.registered || zombies);
  return fc.record({ i: fc.nat(15), s: spec }).map(({ i, s }) => {
    const label = `client #${i} sends ${s.t === 'bad' ? `bad ${s.which}` : s.t}`;
    return new Cmd(
      label,
      (m) => senders(m).length > 0,
      async (m, r) => {
        const c = pick(senders(m), i)!;
        const peer = r.peers.get(c.id)!;
        const msg = resolve(m, s);
        const id = `r${m.seq++}`;
        const fatal =
          c.registered && (msg.t === 'utf8' || (msg.t === 'oversize' && c.kind === 'upgrade'));
        const was = c.registered ? '' : ' (let go)';
        receive(m, c, msg, id);
        const { payload, binary } = wire(msg, id);
        peer.ws.send(payload, { binary });
        if (!fatal) {
          // Handled once the server has read it; then a turn for anything the handler queued.
          await peer.serverCaughtUp(WAIT, `server to read ${c.id}'s ${msg.t}`);
          await new Promise((done) => setImmediate(done));
        } else if (!c.frozen) {
          assert.deepEqual(await peer.closed(WAIT, `${c.id}: close after ${msg.t}`), c.close);
          c.open = false;
          checkFrames(c, peer);
        }
        return `${c.id}${was} ${describe(msg)}`;
      },
    );
  });
};

// --- one process only: adopted sockets and paused readers ---

/** register() refuses a socket it already holds (or that is closing), and a new socket under a taken id. */
export const adoptAgainCmd = fc
  .record({ i: fc.nat(15), taken: fc.boolean() })
  .map(({ i, taken }) => {
    const label = taken
      ? `adopt a new socket under the id of #${i}`
      : `register adopted #${i} again`;
    const can = (m: Readonly<Model>) =>
      taken ? m.clients.some((c) => c.registered) : m.clients.some((c) => c.kind === 'adopted');
    return new Cmd(label, can, async (m, r) => {
      const hub = r.nodes[0]!.hub;
      const foreign = r.foreign!;
      if (!taken) {
        const c = pick(
          m.clients.filter((x) => x.kind === 'adopted'),
          i,
        )!;
        const message = c.registered
          ? 'this WebSocket is already registered'
          : 'register() needs an open WebSocket';
        assert.throws(() => hub.register(foreign.sockets.get(c.id)!), { message });
        return `${c.id}: ${message}`;
      }
      const c = pick(
        m.clients.filter((x) => x.registered),
        i,
      )!;
      const extra = `x${m.seq++}`;
      const peer = new Peer(`${foreign.url}?id=${extra}`);
      await within(peer.opened, WAIT, `${extra} to open`);
      await foreign.log.until(() => foreign.sockets.has(extra), `${extra} on the foreign server`);
      const message = `client id "${c.id}" is already registered`;
      assert.throws(() => hub.register(foreign.sockets.get(extra)!, { id: c.id }), { message });
      peer.drop('terminate');
      await peer.closed(WAIT, `${extra} to close`);
      return `${c.id} refused`;
    });
  });

/**
 * The application closes (or terminates) an adopted socket itself, not through the hub: the hub
 * forgets it when `ws` reports the close, with the code the peer answered (1006 if terminated).
 */
export const appCloseCmd = fc
  .record({ i: fc.nat(15), terminate: fc.boolean() })
  .map(({ i, terminate }) => {
    const adopted = (m: Readonly<Model>) =>
      m.clients.filter((c) => c.kind === 'adopted' && c.registered && !c.frozen);
    return new Cmd(
      `the app ${terminate ? 'terminates' : 'closes'} adopted #${i}`,
      (m) => adopted(m).length > 0,
      async (m, r) => {
        const c = pick(adopted(m), i)!;
        const ws = r.foreign!.sockets.get(c.id)!;
        const [code, reason] = terminate ? [1006, ''] : [4002, 'app'];
        if (terminate) ws.terminate();
        else ws.close(code, reason);
        const peer = r.peers.get(c.id)!;
        assert.deepEqual(await peer.closed(WAIT, `${c.id} to close`), { code, reason });
        checkFrames(c, peer);
        clientGone(m, c, code, reason);
        return c.id;
      },
    );
  });

export const freezeCmd = fc.nat(15).map(
  (i) =>
    new Cmd(
      `pause #${i}`,
      (m) => readers(m).length > 0,
      async (m, r) => {
        const c = pick(readers(m), i)!;
        r.peers.get(c.id)!.ws.pause();
        c.frozen = true;
        return c.id;
      },
    ),
);

/** Pushes 16 KiB frames to a paused reader until one is refused: the backpressure policy then applies. */
const floodable = (m: Readonly<Model>) =>
  m.clients.filter((c) => c.frozen && c.registered && !c.overMark);
export const floodCmd = fc.nat(15).map(
  (i) =>
    new Cmd(
      `flood paused #${i}`,
      (m) => floodable(m).length > 0,
      async (m, r) => {
        const c = pick(floodable(m), i)!;
        const client = r.objects.get(c.id)!;
        let bytes = 0;
        for (let k = 0; ; k++) {
          assert.ok(
            k < MAX_FLOOD,
            `${c.id} is still under the high-water mark after ${bytes} bytes`,
          );
          const data = { k, pad: PAD };
          if (client.send('flood', data)) {
            assert.ok(queue(m, c, push('flood', data)));
            bytes += PAD.length;
            await new Promise((done) => setImmediate(done)); // let the kernel take what it will
            continue;
          }
          // Where the mark is crossed depends on the kernel's buffers: the model learns it here.
          assert.ok(bytes > HIGH_WATER_MARK, `${c.id} refused a frame after only ${bytes} bytes`);
          c.overMark = true;
          queue(m, c, push('flood', data));
          return `${c.id}: over the mark after ${k} frames`;
        }
      },
    ),
);

export const thawCmd = fc.nat(15).map(
  (i) =>
    new Cmd(
      `resume #${i}`,
      (m) => m.clients.some((c) => c.frozen),
      async (m, r) => {
        const c = pick(
          m.clients.filter((x) => x.frozen),
          i,
        )!;
        await thaw(m, r, c);
        return c.id;
      },
    ),
);

// --- two nodes only: Redis killed and restarted, presence, forged broker messages ---

const redisClients = (r: Real) => r.nodes.flatMap((n) => [n.redis!.pub, n.redis!.sub]);

/** Kills redis-server if it is up (SIGKILL, by PID: an outage), restarts it if it is down. */
export const redisCmd = fc.constant(
  new Cmd(
    'kill or restart redis-server',
    () => true,
    async (m, r) => {
      if (m.redisUp) {
        await r.redis!.stop();
        await Promise.all(redisClients(r).map(notReady));
        m.redisUp = false;
        return 'killed';
      }
      await r.redis!.restart();
      await Promise.all(redisClients(r).map(ready)); // node-redis is ready once its subscriptions are restored
      m.redisUp = true;
      return 'restarted';
    },
  ),
);

export const hasCmd = fc.record({ node: fc.nat(1), i: fc.nat(15) }).map(
  ({ node, i }) =>
    new Cmd(
      `cluster.has(#${i}) on node ${node}`,
      (m) => m.redisUp,
      async (m, r) => {
        const id = pick(ids(m), i)!;
        const has = await within(r.nodes[node]!.hub.cluster.has(id), ASK, `cluster.has(${id})`);
        assert.equal(has, byId(m, id) !== undefined, `cluster.has(${id}) on node ${node}`);
        return `${id}: ${has}`;
      },
    ),
);

export interface Forgery {
  name: string;
  on: 'all' | 'room' | 'node';
  text: string;
  /** main already ignores it (and reports it) */
  ignoredToday?: true;
}

const FRAME = push('forged', 1);
const DEEP = `${'['.repeat(5000)}${']'.repeat(5000)}`;
/** Malformed messages a co-tenant of the Redis could publish. SPEC: each is dropped and reported, and changes nothing. */
export const FORGERIES: Forgery[] = [
  { name: 'not JSON', on: 'all', text: 'hello', ignoredToday: true },
  { name: 'a header that is not an object', on: 'all', text: `[1,2]\n${FRAME}` },
  { name: 'a broadcast with no origin', on: 'all', text: `{"k":"b"}\n${FRAME}` },
  { name: 'an unknown kind', on: 'all', text: '{"f":"evil","k":"zz"}' },
  {
    name: 'a broadcast whose body is not a frame',
    on: 'all',
    text: '{"f":"evil","k":"b"}\nnot a frame',
  },
  {
    name: 'a room broadcast whose body is not JSON',
    on: 'room',
    text: '{"f":"evil","k":"b","t":{"rooms":["red"]}}\n<b>hi</b>',
  },
  {
    name: 'a broadcast whose target is not lists',
    on: 'all',
    text: `{"f":"evil","k":"b","t":{"to":"c0"}}\n${FRAME}`,
  },
  {
    name: 'a send to an id that is not a string',
    on: 'node',
    text: `{"f":"evil","k":"s","i":["c0"]}\n${FRAME}`,
  },
  {
    name: 'a join to a room that is not a string',
    on: 'node',
    text: '{"f":"evil","k":"j","i":"c0","r":{"a":1}}',
  },
  {
    name: 'a presence delta whose id is not a string',
    on: 'all',
    text: '{"f":"evil","k":"+","i":{"a":1},"s":1}',
  },
  {
    name: 'a snapshot that is not a list of ids',
    on: 'node',
    text: '{"f":"evil","k":"snap","s":1}\n"abc"',
  },
  { name: 'a question nested 5,000 deep', on: 'all', text: `{"f":"evil","k":"q","q":${DEEP}}` },
];

/** Publishes one of `forgeries` on the cluster's channels with the test's own Redis client. */
export const forgeCmd = (forgeries: readonly Forgery[]) =>
  fc.record({ f: fc.nat(forgeries.length - 1), node: fc.nat(1) }).map(({ f, node }) => {
    const forged = forgeries[f]!;
    return new Cmd(
      `forge ${forged.name} on ${forged.on}`,
      (m) => m.redisUp,
      async (_m, r) => {
        const { prefix, uids, forger } = r.cluster!;
        const channel = {
          all: `${prefix}:all`,
          room: `${prefix}:room:red`,
          node: `${prefix}:node:${uids[node]}`,
        }[forged.on];
        // Redis has handed it to every subscriber once PUBLISH returns; the nodes' questions come after it.
        await within(forger.publish(channel, forged.text), WAIT, 'PUBLISH of the forgery');
        return channel.slice(prefix.length);
      },
    );
  });
