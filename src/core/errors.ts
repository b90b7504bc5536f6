/**
 * Reply codes on the wire (the seed's numbering). `0` is success; every other code comes with
 * `data: null` (a schema failure's `data` is the list of issues) and a `msg` saying what went wrong.
 */
export const Code = {
  /** 0: the action ran; `data` is its result. */
  Success: 0,
  /** 1: not JSON, not an object, no or bad `actioncode`, or a schema failure (`data` lists the issues). */
  InvalidParams: 1,
  /** 4: the handler threw something that is not a `HubError`; nothing of it is sent. */
  ServerError: 4,
  /** 5: no action has this `actioncode`. */
  MethodNotFound: 5,
  /** 6: the message's token is invalid (for handlers that check the seed's `token` field). */
  TokenInvalid: 6,
  /** 7: the message's token has expired. */
  TokenExpired: 7,
  /** 8: the message has no token. */
  TokenEmpty: 8,
  /** 9: not allowed, e.g. `is_broadcast` / `client_ids` on an action without `fanout`. */
  PermissionDenied: 9,
  /** 429: over `rateLimit`. */
  RateLimited: 429,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/** WebSocket close codes wshub sends or reports in `'disconnect'` (RFC 6455 §7.4.1). */
export const CloseCode = {
  /** 1000: a normal close, e.g. `hub.unregister(id)`. */
  Normal: 1000,
  /** 1001: the server is shutting down (`hub.close()`). */
  GoingAway: 1001,
  /** 1002: a WebSocket protocol error from the peer (bad framing, masking, opcode); sent by `ws`. */
  ProtocolError: 1002,
  /**
   * 1006: never on the wire; reported in `'disconnect'` when the connection was terminated (no
   * answer to a heartbeat ping, or TCP dropped).
   */
  Abnormal: 1006,
  /** 1007: a text frame that is not valid UTF-8. */
  InvalidPayload: 1007,
  /** 1008: sustained abuse of `rateLimit`. */
  PolicyViolation: 1008,
  /** 1009: a message over `maxPayload`. */
  MessageTooBig: 1009,
  /** 1011: an internal failure. */
  InternalError: 1011,
  /** 1013: a slow reader over `backpressure.highWaterMark` with policy `'close'`. */
  TryAgainLater: 1013,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * Fixed close reasons. They never carry error text: a close reason is limited to 123 bytes and
 * `ws` throws past that.
 */
export const CloseReason = {
  Backpressure: 'backpressure',
  RateLimited: 'rate limited',
  HeartbeatTimeout: 'heartbeat timeout',
  Shutdown: 'server shutting down',
} as const;

/**
 * An error a handler throws to send a specific reply code and message to the client.
 * Anything else a handler throws becomes code 4 with the fixed message "server error".
 *
 * @example
 * throw new HubError(Code.PermissionDenied, 'only moderators may do that');
 */
export class HubError extends Error {
  /** Always `'HubError'`. */
  override readonly name = 'HubError';
  /** The reply code the client receives. */
  readonly code: number;

  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options); // `cause` is kept for logs, never sent
    if (!Number.isInteger(code))
      throw new TypeError(`HubError code must be an integer, got ${String(code)}`);
    this.code = code;
  }
}

/**
 * Throws what `ws` would throw inside `close()`, before anything changes: a code it cannot send
 * (RFC 6455's sendable ranges; 1004-1006 are reserved, 1006 is `CloseCode.Abnormal`) or a reason
 * over 123 bytes.
 */
export function assertClose(code: number, reason: string): void {
  const valid =
    code === CloseCode.Normal ||
    (code >= 1001 &&
      code <= 1014 &&
      code !== 1004 &&
      code !== 1005 &&
      code !== CloseCode.Abnormal) ||
    (code >= 3000 && code <= 4999);
  if (!Number.isInteger(code) || !valid) {
    throw new RangeError(`invalid close code ${code}: use 1000, 1001-1014 or 3000-4999`);
  }
  if (Buffer.byteLength(reason) > 123)
    throw new RangeError('close reason must be at most 123 bytes');
}
