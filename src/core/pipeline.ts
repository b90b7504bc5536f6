// The inbound pipeline, one message at a time: admit (rate limit) → parse → look up → validate →
// run → reply, and fan the reply out when the client asked and the action allows. Server-to-client
// acks and session replay hook in here.
import type { Adapter } from './adapter.js';
import { toIssues, type CompiledAction } from './actions.js';
import { kPush, type Client } from './client.js';
import { Code, CloseCode, CloseReason, HubError } from './errors.js';
import { encode, Frame, isFault, parseInbound, type Inbound, type RequestId } from './protocol.js';
import type { RateLimiter } from './rate-limit.js';
import type { StandardSchemaV1 } from './standard-schema.js';
import type { ActionContext } from './types.js';
import type { Manager } from './manager.js';

/** A message refused by the rate limit is decoded (to echo its actioncode and id) only up to this size. */
export const RATE_LIMIT_ECHO_BYTES = 512;

/** What the pipeline asks of its manager. */
export interface PipelineHost {
  readonly counters: { messagesIn: number; bytesIn: number };
  /** Where a fanned-out reply goes. */
  readonly adapter: Adapter;
  /** What handlers see as `ctx.hub`. */
  readonly manager: Manager<unknown>;
  reportError(err: unknown, client?: Client<unknown>): void;
  unregister(client: Client<unknown>, code: number, reason: string): boolean;
}

type Context = ActionContext<unknown>;
type Checked = StandardSchemaV1.Result<unknown>;

export class Pipeline {
  readonly #host: PipelineHost;
  readonly #actions: Map<string, CompiledAction>;
  readonly #limiter: RateLimiter | undefined;

  constructor(host: PipelineHost, actions: Map<string, CompiledAction>, limiter?: RateLimiter) {
    this.#host = host;
    this.#actions = actions;
    this.#limiter = limiter;
  }

  /** One inbound message from a registered client, text or binary alike. Never throws for bad input. */
  receive(client: Client<unknown>, raw: Buffer): void {
    const counters = this.#host.counters;
    counters.messagesIn++;
    counters.bytesIn += raw.length;
    // The limit comes before decoding, so a refused message costs no JSON parse.
    if (this.#limiter && !this.#admit(client, raw)) return;
    // Text and binary frames are decoded alike: the seed's Go client sends its JSON as binary
    // frames, and `ws` has already rejected invalid UTF-8 in text frames with 1007.
    const msg = parseInbound(raw.toString());
    if (isFault(msg)) return reply(client, msg.code, msg.fault, msg.actioncode, msg.id);
    const action = this.#actions.get(msg.actioncode);
    if (!action) {
      return reply(client, Code.MethodNotFound, 'method not found', msg.actioncode, msg.id);
    }
    if ((msg.isBroadcast || msg.clientIds) && !action.fanout) {
      const why = 'fan-out not allowed for this action';
      return reply(client, Code.PermissionDenied, why, msg.actioncode, msg.id);
    }
    const ctx: Context = {
      client,
      hub: this.#host.manager,
      actioncode: msg.actioncode,
      id: msg.id,
      message: msg.message,
    };
    if (!action.schema) return this.#run(action, msg.data, ctx, msg);
    let checked;
    try {
      checked = action.schema['~standard'].validate(msg.data);
    } catch (err) {
      return this.#fail(err, ctx);
    }
    if (isThenable(checked)) {
      checked.then(
        (r) => this.#validated(action, r, ctx, msg),
        (err: unknown) => this.#fail(err, ctx),
      );
    } else this.#validated(action, checked, ctx, msg);
  }

  #admit(client: Client<unknown>, raw: Buffer): boolean {
    const verdict = this.#limiter!.admit(client);
    if (verdict === 'admit') return true;
    if (verdict === 'close') {
      this.#host.unregister(client, CloseCode.PolicyViolation, CloseReason.RateLimited);
      return false;
    }
    // Only a small message is decoded to echo its actioncode and id (honest clients match the
    // 429 to their request); a larger one is refused without being read: CPU per refusal is O(1).
    const small = raw.length <= RATE_LIMIT_ECHO_BYTES ? parseInbound(raw.toString()) : undefined;
    reply(client, Code.RateLimited, 'rate limited', small?.actioncode ?? '', small?.id);
    return false;
  }

  #validated(action: CompiledAction, result: Checked, ctx: Context, msg: Inbound): void {
    if (result.issues) {
      const issues = toIssues(result.issues);
      return reply(
        ctx.client,
        Code.InvalidParams,
        'invalid params',
        msg.actioncode,
        msg.id,
        issues,
      );
    }
    this.#run(action, result.value, ctx, msg);
  }

  #run(action: CompiledAction, data: unknown, ctx: Context, msg: Inbound): void {
    let result: unknown;
    try {
      result = action.handler(data, ctx);
    } catch (err) {
      return this.#fail(err, ctx);
    }
    if (isThenable(result)) {
      // Promise.resolve: a foreign thenable whose then() throws becomes a rejection, not a lost reply.
      Promise.resolve(result).then(
        (value) => this.#succeed(value, ctx, msg),
        (err: unknown) => this.#fail(err, ctx),
      );
    } else this.#succeed(result, ctx, msg);
  }

  #succeed(value: unknown, ctx: Context, msg: Inbound): void {
    let frame: Frame;
    try {
      frame = new Frame(encode(Code.Success, 'success', msg.actioncode, value, msg.id));
    } catch (err) {
      const why = `reply to "${msg.actioncode}" cannot be encoded as JSON`;
      this.#host.reportError(new Error(why, { cause: err }), ctx.client);
      return reply(ctx.client, Code.ServerError, 'server error', msg.actioncode, msg.id);
    }
    ctx.client[kPush](frame);
    if (!msg.isBroadcast && !msg.clientIds) return;
    // The request id belongs to the sender: the other copies are pushes and carry none, or a
    // recipient's own pending request with the same id would resolve with this reply.
    const push =
      msg.id === undefined
        ? frame
        : new Frame(encode(Code.Success, 'success', msg.actioncode, value));
    const except = [ctx.client.id];
    this.#host.adapter.broadcast(
      push,
      msg.isBroadcast ? { except } : { to: msg.clientIds, except },
    );
  }

  #fail(err: unknown, ctx: Context): void {
    if (err instanceof HubError) {
      return reply(ctx.client, err.code, err.message, ctx.actioncode, ctx.id);
    }
    this.#host.reportError(err, ctx.client);
    reply(ctx.client, Code.ServerError, 'server error', ctx.actioncode, ctx.id);
  }
}

function reply(
  client: Client<unknown>,
  code: number,
  msg: string,
  actioncode: string,
  id: RequestId | undefined,
  data: unknown = null,
): void {
  client[kPush](new Frame(encode(code, msg, actioncode, data, id)));
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === 'function';
}
