import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitRule } from './host.js';

void test('iptables -S lines split into arguments, quotes honoured', () => {
  assert.deepEqual(splitRule('-A FORWARD -i outr0 -m comment --comment "outrigger pods on outr0" -j OUTR-FWD-outr0'), [
    '-A',
    'FORWARD',
    '-i',
    'outr0',
    '-m',
    'comment',
    '--comment',
    'outrigger pods on outr0',
    '-j',
    'OUTR-FWD-outr0',
  ]);
  assert.deepEqual(splitRule('-A X --comment "a \\"b\\" c" -j Y'), ['-A', 'X', '--comment', 'a "b" c', '-j', 'Y']);
  assert.deepEqual(splitRule('-A X --comment "" -j Y'), ['-A', 'X', '--comment', '', '-j', 'Y']);
  assert.deepEqual(splitRule(''), []);
});
