// Checking what arrives from the broker: one decoder per message kind, each checking every field
// it uses against the type and range our own encoder produces, and the channels the kind may
// arrive on. Everything is untrusted until `decode` has returned a Message; nothing here throws.
import type { Target } from '../core/types.js';
import { Kind, MAX_HEADER, MAX_NAME, MAX_SNAPSHOT, type Message, type Via } from './messages.js';

type K = typeof Kind;

/** Longest node uid accepted (this library's are nanoid()s: 21 characters). */
const UID = /^[\w-]{1,64}$/;

const isCount = (v: unknown, min: number): v is number =>
  Number.isSafeInteger(v) && (v as number) >= min;
const isName = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_NAME;
const isNames = (v: unknown): v is string[] => Array.isArray(v) && v.every(isName);

function isTarget(v: unknown): v is Target | undefined {
  if (v === undefined) return true;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const { to, rooms, except } = v as Record<string, unknown>;
  return (
    (to === undefined || isNames(to)) &&
    (rooms === undefined || isNames(rooms)) &&
    (except === undefined || isNames(except))
  );
}

/** The keys of a frame as `encode` in protocol.ts writes them. */
const FRAME_KEYS = new Set(['code', 'msg', 'actioncode', 'data', 'id']);

/**
 * Why `body` is not a frame this library would have encoded (`{"code","msg","actioncode","data","id"?}`),
 * or `undefined` if it is one. `authentic`: signed by a node holding the secret, so it was encoded
 * by wshub and only its outline is checked; otherwise it is parsed (~1.5 µs for a 200-byte frame).
 */
export function frameFault(
  body: string,
  maxFrameSize: number,
  authentic: boolean,
): string | undefined {
  if (body.length > maxFrameSize)
    return `frame of ${body.length} characters exceeds maxFrameSize (${maxFrameSize})`;
  if (!body.startsWith('{"code":') || !body.endsWith('}')) return 'body is not a frame';
  if (authentic) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return 'body is not JSON';
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'body is not a frame';
  const o = v as Record<string, unknown>;
  for (const key in o)
    if (!FRAME_KEYS.has(key)) return `frame has an unknown key "${key.slice(0, 32)}"`;
  const { code, msg, actioncode, id } = o;
  if (
    !Number.isSafeInteger(code) ||
    typeof msg !== 'string' ||
    typeof actioncode !== 'string' ||
    !Object.hasOwn(o, 'data')
  ) {
    return 'frame lacks code, msg, actioncode or data';
  }
  if (
    id !== undefined &&
    typeof id !== 'string' &&
    !(typeof id === 'number' && Number.isFinite(id))
  )
    return 'frame id is not a string or number';
  return undefined;
}

function snapshotIds(body: string): string[] | string {
  if (body.length > MAX_SNAPSHOT)
    return `snapshot of ${body.length} characters exceeds ${MAX_SNAPSHOT}`;
  let ids: unknown;
  try {
    ids = JSON.parse(body);
  } catch {
    return 'snapshot is not JSON';
  }
  return isNames(ids) ? ids : 'snapshot is not a list of client ids';
}

interface DecodeContext {
  readonly maxFrameSize: number;
  /** the message was signed with the cluster's secret */
  readonly authentic: boolean;
}

type Raw = Record<string, unknown> & { f: string };
type Decoder = (h: Raw, body: string | undefined, cx: DecodeContext) => Message | string;

const NAME = `a string of at most ${MAX_NAME} characters`;
const ROOM = `a non-empty string of at most ${MAX_NAME} characters`;
const noBody = (body: string | undefined): string | undefined =>
  body === undefined ? undefined : 'unexpected body';

/** One decoder per kind, and the channels each kind may arrive on. */
const kinds: { readonly [k in Kind]: { readonly via: readonly Via[]; readonly decode: Decoder } } =
  {
    [Kind.Broadcast]: {
      via: ['all', 'node', 'room'],
      decode(h, body, cx) {
        if (!isTarget(h.t)) return `t must be { to?, rooms?, except? } lists of ${NAME}`;
        if (h.m !== undefined && !isCount(h.m, 1)) return 'm must be a positive safe integer';
        if (body === undefined) return 'no frame';
        return (
          frameFault(body, cx.maxFrameSize, cx.authentic) ?? {
            from: h.f,
            kind: Kind.Broadcast,
            target: h.t,
            copy: h.m,
            frame: body,
          }
        );
      },
    },
    [Kind.Send]: {
      via: ['all', 'node'],
      decode(h, body, cx) {
        if (!isName(h.i)) return `i must be ${NAME}`;
        if (body === undefined) return 'no frame';
        return (
          frameFault(body, cx.maxFrameSize, cx.authentic) ?? {
            from: h.f,
            kind: Kind.Send,
            clientId: h.i,
            frame: body,
          }
        );
      },
    },
    [Kind.Join]: { via: ['all', 'node'], decode: (h, body) => roomChange(Kind.Join, h, body) },
    [Kind.Leave]: { via: ['all', 'node'], decode: (h, body) => roomChange(Kind.Leave, h, body) },
    [Kind.Added]: { via: ['all'], decode: (h, body) => delta(Kind.Added, h, body) },
    [Kind.Removed]: { via: ['all'], decode: (h, body) => delta(Kind.Removed, h, body) },
    [Kind.Heartbeat]: {
      via: ['all', 'node'],
      decode: (h, body) => announce(Kind.Heartbeat, h, body),
    },
    [Kind.Hello]: { via: ['all'], decode: (h, body) => announce(Kind.Hello, h, body) },
    [Kind.SyncRequest]: {
      via: ['node'],
      decode: (h, body) => noBody(body) ?? { from: h.f, kind: Kind.SyncRequest },
    },
    [Kind.Bye]: {
      via: ['all'],
      decode: (h, body) => noBody(body) ?? { from: h.f, kind: Kind.Bye },
    },
    [Kind.Snapshot]: {
      via: ['node'],
      decode(h, body) {
        if (!isCount(h.s, 0)) return 's must be a non-negative safe integer';
        const ids = snapshotIds(body ?? '');
        return typeof ids === 'string' ? ids : { from: h.f, kind: Kind.Snapshot, seq: h.s, ids };
      },
    },
    [Kind.Question]: {
      via: ['all'],
      decode(h, body) {
        if (!isCount(h.q, 1)) return 'q must be a positive safe integer';
        if (h.i !== undefined && !isName(h.i)) return `i must be ${NAME}`;
        return noBody(body) ?? { from: h.f, kind: Kind.Question, question: h.q, clientId: h.i };
      },
    },
    [Kind.Answer]: {
      via: ['node'],
      decode(h, body) {
        if (!isCount(h.q, 1)) return 'q must be a positive safe integer';
        if (!isCount(h.n, 0)) return 'n must be a non-negative safe integer';
        if (typeof h.h !== 'boolean') return 'h must be a boolean';
        return (
          noBody(body) ?? { from: h.f, kind: Kind.Answer, question: h.q, count: h.n, has: h.h }
        );
      },
    },
  };

function roomChange(
  kind: K['Join'] | K['Leave'],
  h: Raw,
  body: string | undefined,
): Message | string {
  if (!isName(h.i)) return `i must be ${NAME}`;
  if (!isName(h.r) || h.r === '') return `r must be ${ROOM}`;
  return noBody(body) ?? { from: h.f, kind, clientId: h.i, room: h.r };
}

function delta(
  kind: K['Added'] | K['Removed'],
  h: Raw,
  body: string | undefined,
): Message | string {
  if (!isName(h.i)) return `i must be ${NAME}`;
  if (!isCount(h.s, 1)) return 's must be a positive safe integer';
  return noBody(body) ?? { from: h.f, kind, clientId: h.i, seq: h.s };
}

function announce(
  kind: K['Heartbeat'] | K['Hello'],
  h: Raw,
  body: string | undefined,
): Message | string {
  if (!isCount(h.s, 0)) return 's must be a non-negative safe integer';
  return noBody(body) ?? { from: h.f, kind, seq: h.s };
}

/**
 * Checks one message (tag already removed) that arrived on a channel of class `via`. Never
 * throws, whatever the input.
 * @returns the message, or why it is refused
 */
export function decode(message: string, via: Via, cx: DecodeContext): Message | string {
  const nl = message.indexOf('\n');
  const head = nl < 0 ? message : message.slice(0, nl);
  if (head.length > MAX_HEADER) return `header of ${head.length} characters exceeds ${MAX_HEADER}`;
  let h: unknown;
  try {
    h = JSON.parse(head);
  } catch {
    return 'header is not JSON';
  }
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return 'header is not an object';
  const { f, k } = h as Record<string, unknown>;
  if (typeof f !== 'string' || !UID.test(f)) return 'f must be a node uid';
  if (typeof k !== 'string' || !Object.hasOwn(kinds, k)) return 'k is not a message kind';
  const kind = kinds[k as Kind];
  if (!kind.via.includes(via)) return `a "${k}" message cannot arrive on a ${via} channel`;
  const m = kind.decode(h as Raw, nl < 0 ? undefined : message.slice(nl + 1), cx);
  if (!cx.authentic || typeof m === 'string') return m;
  const { c, w } = h as Raw;
  if (!isCount(c, 1)) return 'c must be a positive safe integer';
  if (!isCount(w, 0)) return 'w must be a time in ms';
  m.counter = c;
  m.sentAt = w;
  return m;
}
