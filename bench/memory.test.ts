// Unit tests for the memory figures: smaps_rollup parsing (USS = Private_Clean + Private_Dirty), the
// reading of a live process, and folding readings over a run (max and end).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { foldMemory, formatMemory, MemorySampler, parseSmapsFields, parseSmapsRollup, readMemory } from './memory.js';

// A Node proxy's smaps_rollup as Linux 6.1 writes it (the header line, then `Name: N kB` lines).
const ROLLUP = `00400000-7ffd5a1b8000 ---p 00000000 00:00 0                              [rollup]
Rss:              104448 kB
Pss:               61440 kB
Pss_Dirty:         52224 kB
Pss_Anon:          52224 kB
Pss_File:           9216 kB
Pss_Shmem:             0 kB
Shared_Clean:      49152 kB
Shared_Dirty:          0 kB
Private_Clean:      3072 kB
Private_Dirty:     52224 kB
Referenced:       104448 kB
Anonymous:         52224 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`;

void test('smaps_rollup: RSS, PSS, and USS = Private_Clean + Private_Dirty, in MB', () => {
  assert.deepEqual(parseSmapsRollup(ROLLUP), { rss_mb: 102, pss_mb: 60, uss_mb: 54, private_dirty_mb: 51 });
  const f = parseSmapsFields(ROLLUP);
  assert.equal(f.get('Shared_Clean'), 49152);
  assert.equal(f.has('00400000-7ffd5a1b8000 ---p 00000000 00'), false, 'the header line is not a field');
  // Older kernels have no Pss_Dirty/Pss_Anon lines: not needed.
  const old = ROLLUP.split('\n')
    .filter((l) => !l.startsWith('Pss_'))
    .join('\n');
  assert.deepEqual(parseSmapsRollup(old), parseSmapsRollup(ROLLUP));
  assert.throws(() => parseSmapsRollup('Rss: 1 kB\nPss: 1 kB\n'), /no Private_Dirty field/);
});

void test('readMemory: this process has private pages; a pid that does not exist gives null', () => {
  const m = readMemory(process.pid);
  assert.ok(m !== null);
  assert.ok(m.uss_mb > 0 && m.uss_mb <= m.pss_mb && m.pss_mb <= m.rss_mb, JSON.stringify(m));
  assert.equal(readMemory(2 ** 30), null);
  assert.match(formatMemory(m), /^rss \d+\.\d uss \d+\.\d pss \d+\.\d MB$/);
  assert.equal(formatMemory(null), 'memory ?');
});

void test('over a run: the largest reading of each figure, and the last one', () => {
  const a = { rss_mb: 100, pss_mb: 60, uss_mb: 50, private_dirty_mb: 48 };
  const b = { rss_mb: 90, pss_mb: 65, uss_mb: 55, private_dirty_mb: 50 };
  const run = foldMemory(foldMemory(undefined, a), b);
  assert.deepEqual(run, { max: { rss_mb: 100, pss_mb: 65, uss_mb: 55, private_dirty_mb: 50 }, end: b, samples: 2 });
});

void test('sampler: reads named pids until stopped; an unreadable pid is left out', async () => {
  const sampler = new MemorySampler({ self: process.pid, gone: 2 ** 30 }, 10);
  await new Promise((r) => setTimeout(r, 35));
  const seen = sampler.stop();
  assert.deepEqual(Object.keys(seen), ['self']);
  assert.ok((seen['self']?.samples ?? 0) >= 3);
});
