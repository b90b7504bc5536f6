// The cluster's wire format: what one node publishes and what another accepts. A message is a JSON
// header, then (for some kinds) '\n' and a body: a frame's text or a snapshot. With a `secret`,
// a 22-character HMAC tag precedes it. Everything that arrives from the broker is untrusted until
// `decode` has checked it: one decoder per message kind, each checking every field it uses.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Target } from '../core/types.js';

/** Message kinds: b broadcast, s send, j/l join/leave, +/- presence delta, h heartbeat,
 * hi hello, sync snapshot request, snap snapshot, q/a question/answer, bye. */
export type Kind =
  'b' | 's' | 'j' | 'l' | '+' | '-' | 'h' | 'hi' | 'sync' | 'snap' | 'q' | 'a' | 'bye';

/** A header as published; field names are one letter to keep every message small. */
export interface Header {
  /** origin node uid: always the first key, so an echo is spotted without parsing */
  f: string;
  k: Kind;
  /** broadcast target */ t?: Target | undefined;
  /** id shared by the copies of one multi-channel broadcast */ m?: number | undefined;
  /** client id */ i?: string | undefined;
  /** room */ r?: string | undefined;
  /** presence sequence number */ s?: number | undefined;
  /** request id */ q?: number | undefined;
  /** answer: client count, has */ n?: number | undefined;
  h?: boolean | undefined;
  /** signed messages only: the sender's message counter, and its clock (ms since the epoch) */
  c?: number | undefined;
  w?: number | undefined;
}

/**
 * A received message that passed `decode`: only the fields its kind uses, each checked; `c` and
 * `w` are set when the message was signed.
 */
export type Message = { readonly f: string; c?: number; w?: number } & (
  | {
      readonly k: 'b';
      readonly t: Target | undefined;
      readonly m: number | undefined;
      readonly frame: string;
    }
  | { readonly k: 's'; readonly i: string; readonly frame: string }
  | { readonly k: 'j' | 'l'; readonly i: string; readonly r: string }
  | { readonly k: '+' | '-'; readonly i: string; readonly s: number }
  | { readonly k: 'h' | 'hi'; readonly s: number }
  | { readonly k: 'sync' | 'bye' }
  | { readonly k: 'snap'; readonly s: number; readonly ids: readonly string[] }
  | { readonly k: 'q'; readonly q: number; readonly i: string | undefined }
  | { readonly k: 'a'; readonly q: number; readonly n: number; readonly h: boolean }
);

/** Longest client id or room name a cluster message carries. */
export const MAX_NAME = 1024;
/** Longest header (characters); big `to` / `rooms` / `except` lists are what makes one long. */
export const MAX_HEADER = 1024 * 1024;
/** Longest snapshot (a node's client ids as JSON): about 600,000 ids of 21 characters. */
export const MAX_SNAPSHOT = 16 * 1024 * 1024;
/** Characters of the HMAC tag in front of a signed message (16 bytes, base64url). */
export const TAG_LENGTH = 22;
/** Longest node uid accepted (this library's are nanoid()s: 21 characters). */
const UID = /^[\w-]{1,64}$/;

/** What a channel a message arrived on may carry: a node's own channel, a room's, or `:all`. */
export type Via = 'all' | 'node' | 'room';

/** Encodes a header and an optional body. Throws only for what our own code put in the header. */
export function encode(header: Header, body?: string): string {
  const head = JSON.stringify(header);
  return body === undefined ? head : `${head}\n${body}`;
}

// --- checks, cheap and exact: a field is the type and range our own encoder produces ---

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
const kinds: { readonly [K in Kind]: { readonly via: readonly Via[]; readonly decode: Decoder } } =
  {
    b: {
      via: ['all', 'node', 'room'],
      decode(h, body, cx) {
        if (!isTarget(h.t)) return `t must be { to?, rooms?, except? } lists of ${NAME}`;
        if (h.m !== undefined && !isCount(h.m, 1)) return 'm must be a positive safe integer';
        if (body === undefined) return 'no frame';
        return (
          frameFault(body, cx.maxFrameSize, cx.authentic) ?? {
            f: h.f,
            k: 'b',
            t: h.t,
            m: h.m,
            frame: body,
          }
        );
      },
    },
    s: {
      via: ['all', 'node'],
      decode(h, body, cx) {
        if (!isName(h.i)) return `i must be ${NAME}`;
        if (body === undefined) return 'no frame';
        return (
          frameFault(body, cx.maxFrameSize, cx.authentic) ?? { f: h.f, k: 's', i: h.i, frame: body }
        );
      },
    },
    j: { via: ['all', 'node'], decode: (h, body) => roomChange('j', h, body) },
    l: { via: ['all', 'node'], decode: (h, body) => roomChange('l', h, body) },
    '+': { via: ['all'], decode: (h, body) => delta('+', h, body) },
    '-': { via: ['all'], decode: (h, body) => delta('-', h, body) },
    h: { via: ['all', 'node'], decode: (h, body) => announce('h', h, body) },
    hi: { via: ['all'], decode: (h, body) => announce('hi', h, body) },
    sync: { via: ['node'], decode: (h, body) => noBody(body) ?? { f: h.f, k: 'sync' } },
    bye: { via: ['all'], decode: (h, body) => noBody(body) ?? { f: h.f, k: 'bye' } },
    snap: {
      via: ['node'],
      decode(h, body) {
        if (!isCount(h.s, 0)) return 's must be a non-negative safe integer';
        const ids = snapshotIds(body ?? '');
        return typeof ids === 'string' ? ids : { f: h.f, k: 'snap', s: h.s, ids };
      },
    },
    q: {
      via: ['all'],
      decode(h, body) {
        if (!isCount(h.q, 1)) return 'q must be a positive safe integer';
        if (h.i !== undefined && !isName(h.i)) return `i must be ${NAME}`;
        return noBody(body) ?? { f: h.f, k: 'q', q: h.q, i: h.i };
      },
    },
    a: {
      via: ['node'],
      decode(h, body) {
        if (!isCount(h.q, 1)) return 'q must be a positive safe integer';
        if (!isCount(h.n, 0)) return 'n must be a non-negative safe integer';
        if (typeof h.h !== 'boolean') return 'h must be a boolean';
        return noBody(body) ?? { f: h.f, k: 'a', q: h.q, n: h.n, h: h.h };
      },
    },
  };

function roomChange(k: 'j' | 'l', h: Raw, body: string | undefined): Message | string {
  if (!isName(h.i)) return `i must be ${NAME}`;
  if (!isName(h.r) || h.r === '') return `r must be ${ROOM}`;
  return noBody(body) ?? { f: h.f, k, i: h.i, r: h.r };
}

function delta(k: '+' | '-', h: Raw, body: string | undefined): Message | string {
  if (!isName(h.i)) return `i must be ${NAME}`;
  if (!isCount(h.s, 1)) return 's must be a positive safe integer';
  return noBody(body) ?? { f: h.f, k, i: h.i, s: h.s };
}

function announce(k: 'h' | 'hi', h: Raw, body: string | undefined): Message | string {
  if (!isCount(h.s, 0)) return 's must be a non-negative safe integer';
  return noBody(body) ?? { f: h.f, k, s: h.s };
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
  m.c = c;
  m.w = w;
  return m;
}

/**
 * HMAC-SHA256 over the channel and the message, truncated to 16 bytes: a node without the secret
 * can neither forge a message nor move a signed one to another channel.
 */
export class Signer {
  readonly #key: KeyObject; // imported once: createHmac with raw bytes would import them per message
  constructor(key: Uint8Array) {
    this.#key = createSecretKey(key);
  }

  #tag(channel: string, message: string): string {
    return createHmac('sha256', this.#key)
      .update(`${channel.length}:${channel}`)
      .update(message)
      .digest()
      .subarray(0, 16)
      .toString('base64url');
  }

  sign(channel: string, message: string): string {
    return this.#tag(channel, message) + message;
  }

  /** The message without its tag if the tag is right, else `undefined`. */
  open(channel: string, signed: string): string | undefined {
    if (signed.length < TAG_LENGTH) return undefined;
    const message = signed.slice(TAG_LENGTH);
    const expected = Buffer.from(this.#tag(channel, message), 'latin1');
    const got = Buffer.from(signed.slice(0, TAG_LENGTH), 'latin1');
    return got.length === TAG_LENGTH && timingSafeEqual(got, expected) ? message : undefined;
  }
}
