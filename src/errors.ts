/**
 * Reply codes on the wire (the seed's numbering). `0` is success; every other code comes with
 * `data: null` (a schema failure's `data` is the list of issues) and a `msg` saying what went wrong.
 */
export const Code = {
  Success: 0,
  InvalidParams: 1,
  ServerError: 4,
  MethodNotFound: 5,
  TokenInvalid: 6,
  TokenExpired: 7,
  TokenEmpty: 8,
  PermissionDenied: 9,
  RateLimited: 429,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/** WebSocket close codes wshub sends (RFC 6455 §7.4.1). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  InternalError: 1011,
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
  override readonly name = 'HubError';
  /** The reply code the client receives. */
  readonly code: number;

  constructor(code: number, message: string, options?: ErrorOptions) {
    super(message, options); // `cause` is kept for logs, never sent
    if (!Number.isInteger(code)) throw new TypeError(`HubError code must be an integer, got ${String(code)}`);
    this.code = code;
  }
}
