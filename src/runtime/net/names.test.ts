import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkBridgeName, forwardChain, MAX_INTERFACE_NAME, netnsName, netnsPrefix, vethName } from './names.js';

void test('names carry the common prefixes and fit the kernel limits', () => {
  const ns = netnsName('outr0', 'default', 'web-abc-0');
  assert.equal(ns, 'outr-outr0-default.web-abc-0');
  assert.ok(ns.startsWith(netnsPrefix('outr0')));
  const veth = vethName(ns);
  assert.match(veth, /^vo[0-9a-f]{10}$/);
  assert.ok(veth.length <= MAX_INTERFACE_NAME);
  assert.equal(vethName(ns), veth, 'stable');
  assert.notEqual(vethName(netnsName('outr1', 'default', 'web-abc-0')), veth, 'differs per bridge');
  const longest = 'x'.repeat(MAX_INTERFACE_NAME);
  checkBridgeName(longest);
  assert.ok(forwardChain(longest).length <= 28);
});

void test('namespace and pod cannot be confused: ns "a-b" pod "c" differs from ns "a" pod "b-c"', () => {
  assert.notEqual(netnsName('outr0', 'a-b', 'c'), netnsName('outr0', 'a', 'b-c'));
});

void test('very long pod names are cut and hashed', () => {
  const a = netnsName('outr0', 'default', `${'a'.repeat(240)}1`);
  const b = netnsName('outr0', 'default', `${'a'.repeat(240)}2`);
  assert.ok(a.length <= 200);
  assert.notEqual(a, b);
});

void test('bridge names: letters and digits only, at most 15', () => {
  for (const bad of ['', 'Outr0', 'outr-0', '0outr', 'x'.repeat(16)]) {
    assert.throws(() => checkBridgeName(bad), /bridge name must be 1 to 15 lowercase letters and digits/, bad);
  }
});
