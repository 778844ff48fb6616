// The short fuzz run in `npm test` (2,000 heads and chunked bodies, a few seconds): no crash, no hang,
// detection consistent, and no difference with llhttp that no rule explains. `npm run fuzz` runs 100,000.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz } from './fuzz/http1.js';

void test('fuzz: the HTTP/1 head parser, the chunked scanner and detection against llhttp (2,000 inputs)', async (t) => {
  // A fixed seed in CI, so that a failure can be replayed with `npm run fuzz -- --runs 2000 --seed 20261203`.
  const r = await fuzz(2000, 20261203);
  t.diagnostic(
    `${r.inputs} heads in ${r.seconds.toFixed(1)} s: both accept ${r.acceptedBoth}, both refuse ${r.refusedBoth}, ` +
      `stricter ${[...r.stricter.values()].reduce((a, b) => a + b, 0)}, lenient ${[...r.lenient.values()].reduce((a, b) => a + b, 0)}; ` +
      `chunked ${r.chunked.inputs} (same payload ${r.chunked.acceptedBoth}, both refuse ${r.chunked.refusedBoth}); ` +
      `max parse ${r.maxParseMs.toFixed(2)} ms`,
  );
  assert.equal(r.inputs, 2000);
  assert.deepEqual(r.disagreements, [], 'both accept, different results');
  assert.deepEqual(r.unexplained, [], 'refused with no STRICTER rule');
  assert.deepEqual(r.lenientUnexplained, [], 'accepted while llhttp refuses, with no LENIENT rule');
  assert.deepEqual(r.undetected, [], 'accepted by the parser but not detected as HTTP/1');
  assert.deepEqual(r.chunked.disagreements, [], 'chunked: both read a body, different payloads');
  assert.deepEqual(r.chunked.unexplained, [], 'chunked: refused with no STRICTER_CHUNKED rule');
  assert.deepEqual(r.chunked.lenient, [], 'chunked: ours ends a message llhttp refuses');
  assert.ok(r.acceptedBoth > 100, `enough heads both accept to compare: ${r.acceptedBoth}`);
});
