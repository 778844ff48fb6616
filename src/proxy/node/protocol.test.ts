import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRuntimeMessage } from './protocol.js';

void test('runtime messages: the three kinds are read, anything else is refused (undefined), never thrown', () => {
  assert.deepEqual(parseRuntimeMessage({ type: 'listener', pod: 'a/b', role: 'inbound' }), {
    type: 'listener',
    pod: 'a/b',
    role: 'inbound',
  });
  assert.deepEqual(parseRuntimeMessage({ type: 'add', pod: 'a/b', args: ['--pod', 'a/b'] }), {
    type: 'add',
    pod: 'a/b',
    args: ['--pod', 'a/b'],
  });
  assert.deepEqual(parseRuntimeMessage({ type: 'remove', pod: 'a/b' }), { type: 'remove', pod: 'a/b' });
  for (const bad of [
    null,
    'add',
    { type: 'listener', pod: 'a/b', role: 'other' },
    { type: 'add', pod: 'a/b', args: [1] },
    { type: 'add', pod: '', args: [] },
    { type: 'shutdown', pod: 'a/b' },
  ]) {
    assert.equal(parseRuntimeMessage(bad), undefined, JSON.stringify(bad));
  }
});
