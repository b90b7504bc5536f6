import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub, assertNoLeaks } from './helpers/hub.ts';
import { connect } from './helpers/client.ts';

assertNoLeaks();

test('replies to heart_beat with true and echoes the request id', async (t) => {
  const { hub, url } = await startHub(t);
  const c = await connect(t, url);
  assert.deepEqual(await c.request('heart_beat'), { code: 0, msg: 'success', actioncode: 'heart_beat', data: true, id: 1 });
  assert.equal(hub.clients.size, 1);
});
