// Reading /proc: stat parsing (a command name may hold spaces and parentheses) and our own process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bootId, parseProcStat, procStat } from './proc.js';

void test('proc: stat fields are counted after the last parenthesis', () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3)); // field 3 .. 52
  fields[0] = 'S';
  const line = `4242 (we (ird) name) ${fields.join(' ')}`;
  const s = parseProcStat(line);
  assert.deepEqual(s, { pid: 4242, pgrp: 5, startTicks: 22, state: 'S' });
  assert.equal(parseProcStat('garbage'), undefined);
});

void test('proc: our own process', async () => {
  const s = await procStat(process.pid);
  assert.ok(s !== undefined);
  assert.equal(s.pid, process.pid);
  assert.ok(s.startTicks > 0);
  assert.equal(await procStat(2 ** 30), undefined, 'a pid that cannot exist');
  assert.match(await bootId(), /^[0-9a-f-]{36}$/);
});
