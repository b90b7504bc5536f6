// The model of test/model.test.ts: what every client of a hub (or of two hub nodes over Redis) must
// receive, derived from SPEC.md and the README, never from src/. Pure: no sockets, no timers.
//
// What it states:
// - A frame is {code,msg,actioncode,data[,id]} in that key order; pushes have no id.
// - Frames to one client arrive in the order they were queued, each once, and nothing else arrives.
// - A client the hub let go (unregister, client.close, 1013, a protocol violation) gets nothing
//   after its close frame, and nothing it sends afterwards reaches a handler, a client or a counter.
// - A reply goes to its sender; a fan-out copy (is_broadcast / client_ids, allowed actions only)
//   goes to the others without the id; a handler's broadcast reaches its targets before the reply.
// - broadcast: no `to` and no `rooms` is everyone; `to` ∪ members of `rooms`, minus `except`.
// - Backpressure: a paused reader gets everything queued while under the high-water mark; once
//   over it, policy 'close' closes it with 1013 'backpressure', policy 'drop' skips each frame.
// - Two nodes over Redis: while Redis is up, every delivery reaches clients on both nodes; while
//   it is down, a node's deliveries reach only its own clients and messages for the other node
//   (send, remote join/leave) are dropped, not queued.
// - stats(): messagesIn/bytesIn count messages from registered clients (payload bytes),
//   messagesOut/bytesOut frames queued (wire bytes), dropped the frames refused by backpressure;
//   'error' is emitted for a handler's throw and a protocol violation, with the client.
// - hub.close() lets a push queued just before it go out, then closes everyone with 1001.
// - cluster.size() / has() (Redis up) are every node's registered clients; a malformed message on
//   the cluster's channels changes nothing (SPEC: dropped and reported).
// Where the SPEC and README are silent, the model follows the implementation and says so: an
// adopted socket keeps its own server's maxPayload; unregister() of an id that is not registered
// returns false before looking at the close code.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Two busy rooms and one that is mostly empty. */
export const ROOMS = ['red', 'blue', 'green'] as const;
export const MAX_PAYLOAD = 8 * 1024;
export const HIGH_WATER_MARK = 64 * 1024;

export interface Closed {
  code: number;
  reason: string;
}

export interface Counters {
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  dropped: number;
  errors: number;
}

export interface MClient {
  readonly id: string;
  readonly node: number;
  /** 'upgrade': through hub.handle(); 'adopted': a foreign WebSocketServer's socket given to register() */
  readonly kind: 'upgrade' | 'adopted';
  registered: boolean;
  /** The client's own side is open: it can still send (also after the hub let it go, if it has not read the close). */
  open: boolean;
  /** Its reader is paused. */
  frozen: boolean;
  /** Frozen with more than the high-water mark buffered: every push to it is refused. */
  overMark: boolean;
  readonly rooms: Set<string>;
  /** Every frame it must receive, in order. */
  readonly expected: string[];
  /** How many of `expected` have been compared with what arrived. */
  checked: number;
  /** The close frame the hub sent it. */
  close: Closed | undefined;
}

export interface NodeState {
  /** `${id} ${code} ${reason}` per 'disconnect' event */
  readonly disconnects: string[];
  /** `${id} ${reason}` per 'drop' event */
  readonly drops: string[];
  /** `${id} ${what}` per 'error' event */
  readonly errors: string[];
  readonly stats: Counters;
}

export interface Model {
  readonly policy: 'close' | 'drop';
  readonly cluster: boolean;
  redisUp: boolean;
  readonly clients: MClient[];
  readonly nodes: NodeState[];
  /** Counter for request ids and client ids. */
  seq: number;
}

export function newModel(nodes: number, policy: 'close' | 'drop'): Model {
  return {
    policy,
    cluster: nodes > 1,
    redisUp: true,
    clients: [],
    nodes: Array.from({ length: nodes }, () => ({
      disconnects: [],
      drops: [],
      errors: [],
      stats: { messagesIn: 0, messagesOut: 0, bytesIn: 0, bytesOut: 0, dropped: 0, errors: 0 },
    })),
    seq: 0,
  };
}

/** A frame exactly as the SPEC spells it. */
export function frame(
  code: number,
  msg: string,
  actioncode: string,
  data: unknown,
  id?: string,
): string {
  const f: Record<string, unknown> = {
    code,
    msg,
    actioncode,
    data: data === undefined ? null : data,
  };
  if (id !== undefined) f.id = id;
  return JSON.stringify(f);
}

export const push = (actioncode: string, data: unknown): string =>
  frame(0, 'success', actioncode, data);

/** RFC 6455 length of an unmasked server frame carrying `text`. */
function wireLength(text: string): number {
  const n = Buffer.byteLength(text);
  return n + (n < 126 ? 2 : n < 65536 ? 4 : 10);
}

export function addClient(m: Model, node: number, kind: MClient['kind']): MClient {
  const c: MClient = {
    id: `c${m.clients.length}`,
    node,
    kind,
    registered: true,
    open: true,
    frozen: false,
    overMark: false,
    rooms: new Set(),
    expected: [],
    checked: 0,
    close: undefined,
  };
  m.clients.push(c);
  return c;
}

export const byId = (m: Model, id: string): MClient | undefined =>
  m.clients.find((c) => c.id === id && c.registered);

/** Whether a delivery from `node` can reach `c`: always on one process; across nodes only while Redis is up. */
const reaches = (m: Model, node: number, c: MClient): boolean =>
  c.registered && (c.node === node || m.redisUp);

/** Queues a frame for a registered client, under the backpressure policy. @returns whether it was queued */
export function queue(m: Model, c: MClient, text: string): boolean {
  if (!c.registered) return false;
  const node = m.nodes[c.node]!;
  if (c.overMark) {
    node.stats.dropped++;
    node.drops.push(`${c.id} backpressure`);
    if (m.policy === 'close') letGo(m, c, 1013, 'backpressure');
    return false;
  }
  c.expected.push(text);
  node.stats.messagesOut++;
  node.stats.bytesOut += wireLength(text);
  return true;
}

/** The hub lets a client go: it leaves the registry and its rooms, and is sent `code`/`reason`. */
export function letGo(m: Model, c: MClient, code: number, reason: string): void {
  c.registered = false;
  c.rooms.clear();
  c.close = { code, reason };
  m.nodes[c.node]!.disconnects.push(`${c.id} ${code} ${reason}`);
}

/** The client's connection is gone from its side with `code` (1006 when dropped without a close frame). */
export function clientGone(m: Model, c: MClient, code: number, reason: string): void {
  c.open = false;
  c.frozen = false;
  if (!c.registered) return;
  c.registered = false;
  c.rooms.clear();
  m.nodes[c.node]!.disconnects.push(`${c.id} ${code} ${reason}`);
}

export interface Target {
  to?: string[] | undefined;
  rooms?: string[] | undefined;
  except?: string[] | undefined;
}

/** The clients a broadcast from `node` to `target` reaches before `except` is applied. */
export function audience(m: Model, node: number, target: Target | undefined): MClient[] {
  const everyone = !target?.to && !target?.rooms;
  const to = new Set(target?.to ?? []);
  const rooms = target?.rooms ?? [];
  return m.clients.filter(
    (c) => reaches(m, node, c) && (everyone || to.has(c.id) || rooms.some((r) => c.rooms.has(r))),
  );
}

/** hub.broadcast on `node`. @returns what broadcast() returns: clients of that node it was queued for */
export function broadcast(
  m: Model,
  node: number,
  text: string,
  target: Target | undefined,
): number {
  const except = new Set(target?.except ?? []);
  let n = 0;
  for (const c of audience(m, node, target)) {
    if (!except.has(c.id) && queue(m, c, text) && c.node === node) n++;
  }
  return n;
}

/** hub.send on `node`. @returns whether the client is on that node */
export function send(m: Model, node: number, id: string, text: string): boolean {
  const c = byId(m, id);
  if (c && reaches(m, node, c)) queue(m, c, text);
  return c?.node === node;
}

/** hub.join / hub.leave on `node`: local at once, remote through Redis (dropped while it is down). */
export function joinOrLeave(
  m: Model,
  node: number,
  id: string,
  room: string,
  join: boolean,
): boolean {
  const c = byId(m, id);
  if (c && reaches(m, node, c)) {
    if (join) c.rooms.add(room);
    else c.rooms.delete(room);
  }
  return c?.node === node;
}

export const CLOSE_CODES = [1000, 1001, 3000, 4000, 4999, 999, 1005, 1006, 5000] as const;
export const validClose = (code: number, reason: string): boolean =>
  (code === 1000 ||
    (code >= 1001 && code <= 1014 && ![1004, 1005, 1006].includes(code)) ||
    (code >= 3000 && code <= 4999)) &&
  Buffer.byteLength(reason) <= 123;

// --- client messages ---

export type Bad = 'notjson' | 'array' | 'noaction' | 'badid' | 'unknown' | 'proto' | 'badfan';

/** A client message, with its targets already resolved to ids. */
export type Msg =
  | { t: 'heart_beat' }
  | { t: 'echo'; data: Json; binary: boolean }
  | { t: 'say'; text: string }
  | { t: 'shout'; data: Json; fan: 'none' | 'all' | string[] }
  | { t: 'denied' }
  | { t: 'deny' }
  | { t: 'boom' }
  | { t: 'bad'; which: Bad }
  | { t: 'utf8' }
  | { t: 'oversize' };

const BIG = 'x'.repeat(MAX_PAYLOAD + 100);

/** The bytes a client sends for `msg` with request id `id`. */
export function wire(msg: Msg, id: string): { payload: string | Buffer; binary: boolean } {
  const text = (o: Record<string, unknown>) => ({ payload: JSON.stringify(o), binary: false });
  switch (msg.t) {
    case 'heart_beat':
      return text({ actioncode: 'heart_beat', id });
    case 'echo':
      return {
        payload: JSON.stringify({ actioncode: 'echo', data: msg.data, id }),
        binary: msg.binary,
      };
    case 'say':
      return text({ actioncode: 'say', data: msg.text, id });
    case 'shout': {
      // 'none' is what the seed's clients send by default
      const fan =
        msg.fan === 'all'
          ? { is_broadcast: true }
          : msg.fan === 'none'
            ? { is_broadcast: false, client_ids: [] }
            : { client_ids: msg.fan };
      return text({ actioncode: 'shout', data: msg.data, id, ...fan });
    }
    case 'denied':
      return text({ actioncode: 'echo', data: 1, id, is_broadcast: true });
    case 'deny':
    case 'boom':
      return text({ actioncode: msg.t, id });
    case 'bad':
      return { payload: BAD[msg.which](id), binary: false };
    case 'utf8':
      return { payload: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), binary: false }; // "{\xff\xfe}" as a text frame
    case 'oversize':
      return text({ actioncode: 'echo', data: BIG, id });
  }
}

const BAD: Record<Bad, (id: string) => string> = {
  notjson: (id) => `{"actioncode":"echo","id":"${id}"`,
  array: () => '[1,2]',
  noaction: (id) => JSON.stringify({ id, data: 1 }),
  badid: () => JSON.stringify({ actioncode: 'echo', id: [1] }),
  unknown: (id) => JSON.stringify({ actioncode: 'no_such', id }),
  proto: (id) => JSON.stringify({ actioncode: '__proto__', id }),
  badfan: (id) => JSON.stringify({ actioncode: 'shout', id, is_broadcast: 'yes' }),
};

const BAD_REPLY: Record<Bad, (id: string) => string> = {
  notjson: () => frame(1, 'invalid JSON', '', null),
  array: () => frame(1, 'message must be a JSON object', '', null),
  noaction: (id) => frame(1, 'actioncode must be a non-empty string', '', null, id),
  badid: () => frame(1, 'id must be a string or a finite number', 'echo', null),
  unknown: (id) => frame(5, 'method not found', 'no_such', null, id),
  proto: (id) => frame(5, 'method not found', '__proto__', null, id),
  badfan: (id) => frame(1, 'is_broadcast must be a boolean', 'shout', null, id),
};

/**
 * The hub receives `msg` from `sender`. A sender the hub has let go is not served at all (SPEC:
 * nothing it sends reaches a handler or a counter).
 */
export function receive(m: Model, sender: MClient, msg: Msg, id: string): void {
  if (!sender.registered) return;
  const node = m.nodes[sender.node]!;
  if (msg.t === 'utf8' || (msg.t === 'oversize' && sender.kind === 'upgrade')) {
    // ws rejects the frame before it is a message: an 'error', then the close ws sends.
    const [code, what] =
      msg.t === 'utf8'
        ? [1007, 'WS_ERR_INVALID_UTF8']
        : [1009, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'];
    node.errors.push(`${sender.id} ${what}`);
    node.stats.errors++;
    letGo(m, sender, code, '');
    return;
  }
  const { payload } = wire(msg, id);
  node.stats.messagesIn++;
  node.stats.bytesIn += Buffer.byteLength(payload);
  const reply = (data: unknown) =>
    queue(m, sender, frame(0, 'success', actioncodeOf(msg), data, id));
  switch (msg.t) {
    case 'heart_beat':
      return void reply(true);
    case 'echo':
      return void reply(msg.data);
    case 'oversize': // an adopted socket keeps its own server's maxPayload (ws's 100 MiB): README is silent
      return void reply(BIG);
    case 'say':
      broadcast(m, sender.node, push('said', { from: sender.id, text: msg.text }), undefined);
      return void reply(true);
    case 'shout': {
      reply(msg.data);
      if (msg.fan === 'none') return;
      const copy = push('shout', msg.data);
      const target =
        msg.fan === 'all' ? { except: [sender.id] } : { to: msg.fan, except: [sender.id] };
      broadcast(m, sender.node, copy, target);
      return;
    }
    case 'denied':
      return void queue(
        m,
        sender,
        frame(9, 'fan-out not allowed for this action', 'echo', null, id),
      );
    case 'deny':
      return void queue(m, sender, frame(6, 'token invalid', 'deny', null, id));
    case 'boom':
      node.errors.push(`${sender.id} handler failure`);
      node.stats.errors++;
      return void queue(m, sender, frame(4, 'server error', 'boom', null, id));
    case 'bad':
      return void queue(m, sender, BAD_REPLY[msg.which](id));
  }
}

function actioncodeOf(msg: Msg): string {
  return msg.t === 'oversize' ? 'echo' : msg.t;
}
