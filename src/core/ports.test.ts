import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPortList, parsePortList, portListHas } from './ports.js';

void test('parses ports and ranges, sorted and merged', () => {
  const r = parsePortList(' 3306-3310, 25,587 ,3311,26');
  assert.ok(r.ok);
  assert.equal(formatPortList(r.ports), '25-26,587,3306-3311');
  assert.ok(portListHas(r.ports, 3308));
  assert.ok(!portListHas(r.ports, 3312));
});

void test('an empty string is an empty list', () => {
  assert.deepEqual(parsePortList(''), { ok: true, ports: [] });
});

void test('each mistake gets its own message', () => {
  const cases: [string, RegExp][] = [
    ['25,,26', /empty item in "25,,26"/],
    ['25,', /empty item/],
    ['http', /"http" is not a port number \(expected a comma-separated list/],
    ['0', /port 0 is out of range 1 to 65535/],
    ['25,70000', /port 70000 is out of range 1 to 65535 in "25,70000"/],
    ['3310-3306', /range 3310-3306 starts after it ends/],
    ['1-2-3', /"2-3" is not a port number/],
    ['-5', /"" is not a port number/],
  ];
  for (const [text, re] of cases) {
    const r = parsePortList(text);
    assert.equal(r.ok, false, text);
    if (!r.ok) assert.match(r.message, re);
  }
});
