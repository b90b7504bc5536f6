// The type-level and runtime conversions follow the same rule, character for character, so a key
// the runtime accepts always has the wire code the types promise.

// Tail-recursive with an accumulator: the naive `${X}${SnakeCase<Rest>}` form fails with TS2589 at
// 50-character keys.
type Snake<S extends string, Out extends string> = S extends `${infer C}${infer Rest}`
  ? Snake<Rest, `${Out}${C extends Lowercase<C> ? C : `_${Lowercase<C>}`}`>
  : Out;
type Camel<S extends string, Out extends string> = S extends `${infer H}_${infer T}`
  ? Camel<Capitalize<T>, `${Out}${H}`>
  : `${Out}${S}`;

/** The snake_case form of a camelCase string: `'getV2Data'` → `'get_v2_data'`. */
export type SnakeCase<S extends string> = Snake<S, ''>;
/** The camelCase form of a snake_case string: `'get_v2_data'` → `'getV2Data'`. */
export type CamelCase<S extends string> = Camel<S, ''>;

/**
 * The union of wire codes an actions map answers to, including the built-in `heart_beat`.
 *
 * @example
 * const actions = { chatSend(data: { text: string }) { return true; } };
 * type Codes = ActionCode<typeof actions>; // 'chat_send' | 'heart_beat'
 */
export type ActionCode<Actions> = SnakeCase<keyof Actions & string> | 'heart_beat';

/** Converts camelCase to snake_case: every capital letter becomes `_` and its lower case. */
export function toSnake(s: string): string {
  let out = '';
  for (const c of s) {
    const lower = c.toLowerCase();
    out += c === lower ? c : `_${lower}`;
  }
  return out;
}

/** Converts snake_case to camelCase: each `_` is removed and the character after it capitalised. */
export function toCamel(s: string): string {
  const [head = '', ...rest] = s.split('_');
  let out = head;
  for (const part of rest) out += part.charAt(0).toUpperCase() + part.slice(1);
  return out;
}
