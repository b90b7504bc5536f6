// The wire format: the only module that spells the seed's field names.
import { Code } from './errors.js';

/** A request id as the client sent it; echoed in the reply. */
export type RequestId = string | number;

// Bounds on what a client may ask the hub to echo or fan out: a reply repeats `actioncode` and
// `id`, and a fanned-out reply goes to every id in `client_ids`, so each is capped (code 1 past it).
/** Longest inbound string `id`; longer gets code 1. A UUID is 36, a nanoid 21. */
export const MAX_ID_LENGTH = 64;
/** Longest `actioncode`; longer gets code 1 (and `createManager` refuses longer action keys). */
export const MAX_ACTIONCODE_LENGTH = 128;
/** Most entries in a client's `client_ids`; more gets code 1. For larger audiences use rooms. */
export const MAX_CLIENT_IDS = 1000;

/** A decoded inbound message. */
export interface Inbound {
  readonly actioncode: string;
  readonly data: unknown;
  readonly id: RequestId | undefined;
  readonly isBroadcast: boolean;
  readonly clientIds: readonly string[] | undefined;
  /** The whole decoded object, for fields wshub does not interpret (`token`, `company`, …). */
  readonly message: Readonly<Record<string, unknown>>;
}

/** A message that could not be decoded; answered with `code` and `msg`. */
export interface Fault {
  readonly fault: string;
  readonly code: Code;
  readonly actioncode: string;
  readonly id: RequestId | undefined;
}

/**
 * An encoded outbound frame. It is encoded once per fan-out and the same object is handed to every
 * recipient; a transport may cache its own framing of `text` in `wire`.
 */
export class Frame {
  /** Transport-owned cache of the framed bytes, built on first write. */
  wire: Buffer | undefined = undefined;
  /** @param text - the encoded JSON message, written as one text frame */
  constructor(readonly text: string) {}
}

function isId(v: unknown): v is RequestId {
  return typeof v === 'string'
    ? v.length <= MAX_ID_LENGTH
    : typeof v === 'number' && Number.isFinite(v);
}

function isActioncode(v: unknown): v is string {
  return typeof v === 'string' && v !== '' && v.length <= MAX_ACTIONCODE_LENGTH;
}

// Only bounded values are echoed, so an error reply is never larger than a few hundred bytes.
function fault(fault: string, actioncode: unknown, id: unknown): Fault {
  return {
    fault,
    code: Code.InvalidParams,
    actioncode: isActioncode(actioncode) ? actioncode : '',
    id: isId(id) ? id : undefined,
  };
}

/** Decodes one inbound frame's text. Never throws. */
export function parseInbound(text: string): Inbound | Fault {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return fault('invalid JSON', undefined, undefined);
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
    return fault('message must be a JSON object', undefined, undefined);
  }
  const m = msg as Record<string, unknown>;
  const { actioncode, id, data, is_broadcast: isBroadcast, client_ids: clientIds } = m;
  if (id !== undefined && id !== null && !isId(id)) {
    const why =
      typeof id === 'string'
        ? `id must be at most ${MAX_ID_LENGTH} characters`
        : 'id must be a string or a finite number';
    return fault(why, actioncode, undefined);
  }
  if (typeof actioncode !== 'string' || actioncode === '') {
    return fault('actioncode must be a non-empty string', actioncode, id);
  }
  if (actioncode.length > MAX_ACTIONCODE_LENGTH) {
    return fault(`actioncode must be at most ${MAX_ACTIONCODE_LENGTH} characters`, actioncode, id);
  }
  if (isBroadcast !== undefined && isBroadcast !== null && typeof isBroadcast !== 'boolean') {
    return fault('is_broadcast must be a boolean', actioncode, id);
  }
  if (clientIds !== undefined && clientIds !== null) {
    if (!Array.isArray(clientIds))
      return fault('client_ids must be an array of strings', actioncode, id);
    // The length first: a huge list is refused without walking it.
    if (clientIds.length > MAX_CLIENT_IDS)
      return fault(`client_ids must have at most ${MAX_CLIENT_IDS} entries`, actioncode, id);
    if (!clientIds.every((c) => typeof c === 'string'))
      return fault('client_ids must be an array of strings', actioncode, id);
  }
  return {
    actioncode,
    data,
    id: isId(id) ? id : undefined,
    isBroadcast: isBroadcast === true,
    clientIds:
      clientIds && (clientIds as string[]).length > 0 ? (clientIds as string[]) : undefined,
    message: m,
  };
}

export function isFault(m: Inbound | Fault): m is Fault {
  return 'fault' in m;
}

/**
 * Encodes a reply or push: `{"code","msg","actioncode","data","id"?}`.
 * Throws what `JSON.stringify` throws (cycles, BigInt, nesting too deep); callers catch.
 */
export function encode(
  code: number,
  msg: string,
  actioncode: string,
  data: unknown,
  id?: RequestId,
): string {
  const body = JSON.stringify(data) ?? 'null';
  const tail = id === undefined ? '}' : `,"id":${JSON.stringify(id)}}`;
  return `{"code":${code},"msg":${JSON.stringify(msg)},"actioncode":${JSON.stringify(actioncode)},"data":${body}${tail}`;
}

/** Encodes a push, turning JSON failures into a TypeError that names the actioncode. */
export function encodePush(actioncode: string, data: unknown): string {
  if (typeof actioncode !== 'string' || actioncode === '') {
    throw new TypeError(
      `actioncode must be a non-empty string, got ${JSON.stringify(actioncode) ?? String(actioncode)}`,
    );
  }
  try {
    return encode(Code.Success, 'success', actioncode, data);
  } catch (err) {
    throw new TypeError(
      `data for "${actioncode}" cannot be encoded as JSON: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
