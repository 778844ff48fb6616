import { test } from 'node:test';
import assert from 'node:assert/strict';
import { summarize } from './cpu-profile.js';

void test('cpu profile: self time per function and per file, as shares of the busy time', () => {
  const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({
    id,
    callFrame: { functionName, url, lineNumber },
  });
  const s = summarize({
    nodes: [
      frame(1, '(idle)', ''),
      frame(2, 'writev', ''),
      frame(3, 'parseRequestHead', 'file:///x/dist/src/proxy/http1/parse.js', 131),
      frame(4, 'emit', 'node:events'),
    ],
    samples: [1, 2, 3, 2, 4, 1],
    timeDeltas: [500, 300, 100, 300, 100, 700],
  });
  assert.equal(s.totalMs, 2);
  assert.equal(s.busyMs, 0.8);
  assert.deepEqual(s.functions, [
    ['writev (native)', 0.75],
    ['parseRequestHead src/proxy/http1/parse.js:132', 0.125],
    ['emit node:events:1', 0.125],
  ]);
  assert.equal(s.files[0]?.[0], '(native)');
});
