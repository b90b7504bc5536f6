import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { toCamel, toSnake } from '../src/index.ts';

const pairs: [camel: string, snake: string][] = [
  ['heartBeat', 'heart_beat'],
  ['getV2Data', 'get_v2_data'],
  ['chatSend', 'chat_send'],
  ['ping', 'ping'],
  ['a', 'a'],
  ['getHTTPStatus', 'get_h_t_t_p_status'],
  ['v2', 'v2'],
];

test('toSnake turns each capital into "_" and its lower case', () => {
  for (const [camel, snake] of pairs) assert.equal(toSnake(camel), snake, camel);
});

test('toCamel drops each "_" and capitalises the character after it', () => {
  for (const [camel, snake] of pairs) assert.equal(toCamel(snake), camel, snake);
});

test('a 105-character key converts both ways', () => {
  const camel =
    'aVeryLongActionNameThatKeepsGoingAndGoingWellPastFiftyCharactersToProveTheTypeIsTailRecursiveAndFineTooOk';
  const snake =
    'a_very_long_action_name_that_keeps_going_and_going_well_past_fifty_characters_to_prove_the_type_is_tail_recursive_and_fine_too_ok';
  assert.equal(camel.length, 105);
  assert.equal(toSnake(camel), snake);
  assert.equal(toCamel(snake), camel);
});

test('strings that are not camelCase do not round-trip', () => {
  assert.equal(toCamel(toSnake('get_data')), 'getData');
  assert.equal(toCamel(toSnake('x_1')), 'x1');
  assert.equal(toSnake('GetData'), '_get_data');
  assert.equal(toCamel('_get_data'), 'GetData');
  assert.equal(toSnake(''), '');
  assert.equal(toCamel(''), '');
});

test('every key an action may have round-trips', () => {
  fc.assert(
    fc.property(
      fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,40}$/),
      (key) => toCamel(toSnake(key)) === key,
    ),
    { numRuns: 500 },
  );
});
