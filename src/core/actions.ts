// The actions table: built once at createManager, so dispatch is one Map lookup with no case work.
import { toCamel, toSnake } from './case.js';
import { MAX_ACTIONCODE_LENGTH } from './protocol.js';
import type { StandardSchemaV1 } from './standard-schema.js';
import type { ActionContext } from './types.js';

const KEY = /^[a-z][a-zA-Z0-9]*$/;

type Handler = (data: unknown, ctx: ActionContext<unknown>) => unknown;

export interface CompiledAction {
  readonly key: string;
  readonly handler: Handler;
  readonly schema: StandardSchemaV1 | undefined;
  readonly fanout: boolean;
}

/** A schema failure's reply data. */
export interface Issue {
  message: string;
  path: (string | number)[];
}

const heartBeat: CompiledAction = {
  key: 'heartBeat',
  handler: () => true,
  schema: undefined,
  fanout: false,
};

function isSchema(v: unknown): v is StandardSchemaV1 {
  const std = (v as StandardSchemaV1 | null)?.['~standard'];
  return typeof std === 'object' && std !== null && typeof std.validate === 'function';
}

/**
 * Builds the wire code → action table.
 * @throws TypeError for a key that is not camelCase or does not round-trip, or a malformed action
 */
export function compileActions(
  actions: object | undefined,
  clientFanout: boolean,
): Map<string, CompiledAction> {
  if (actions !== undefined && (typeof actions !== 'object' || actions === null)) {
    throw new TypeError(
      `options.actions must be an object, got ${actions === null ? 'null' : typeof actions}`,
    );
  }
  // The built-in heart_beat follows `clientFanout` like every other action (the seed's HeartBeat
  // honoured is_broadcast / client_ids).
  const table = new Map<string, CompiledAction>([
    ['heart_beat', clientFanout ? { ...heartBeat, fanout: true } : heartBeat],
  ]);
  // Object.keys: own enumerable keys only, so inherited names such as `toString` never dispatch.
  for (const key of Object.keys(actions ?? {})) {
    const snake = toSnake(key);
    const back = toCamel(snake);
    if (back !== key) {
      throw new TypeError(
        `action key "${key}" does not round-trip: "${key}" → "${snake}" → "${back}"`,
      );
    }
    if (!KEY.test(key)) {
      throw new TypeError(
        `action key "${key}" must be camelCase ASCII letters and digits, starting lower case`,
      );
    }
    // Inbound codes past the cap are refused before lookup, so such an action could never run.
    if (snake.length > MAX_ACTIONCODE_LENGTH) {
      throw new RangeError(
        `action key "${key}" is too long: its wire code has ${snake.length} characters, at most ${MAX_ACTIONCODE_LENGTH}`,
      );
    }
    const value: unknown = (actions as Record<string, unknown>)[key];
    let action: CompiledAction;
    if (typeof value === 'function') {
      action = { key, handler: value as Handler, schema: undefined, fanout: clientFanout };
    } else if (
      typeof value === 'object' &&
      value !== null &&
      typeof (value as { handler?: unknown }).handler === 'function'
    ) {
      const { handler, schema, fanout } = value as {
        handler: Handler;
        schema?: unknown;
        fanout?: unknown;
      };
      if (schema !== undefined && !isSchema(schema)) {
        throw new TypeError(
          `action "${key}": schema must implement Standard Schema v1 ('~standard'.validate)`,
        );
      }
      if (fanout !== undefined && typeof fanout !== 'boolean') {
        throw new TypeError(`action "${key}": fanout must be a boolean, got ${typeof fanout}`);
      }
      action = { key, handler, schema, fanout: fanout ?? clientFanout };
    } else {
      throw new TypeError(`action "${key}" must be a function or { handler, schema?, fanout? }`);
    }
    table.set(snake, action);
  }
  return table;
}

/** Normalises Standard Schema issues to the reply's `[{ message, path }]`. */
export function toIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): Issue[] {
  return issues.map(({ message, path }) => ({
    message: String(message),
    path: (path ?? []).map((p) => {
      const key = typeof p === 'object' && p !== null ? p.key : p;
      return typeof key === 'number' ? key : String(key);
    }),
  }));
}
