// The terminal summary: columns computed from the content, nulls marked with their reasons, and no
// control characters from the report reaching the terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAB_REPORT_FIXTURE } from '../../../test/fixtures/lab-report.js';
import type { LabReport } from '../types.js';
import { layoutColumns, renderLabText, textWidth } from './text.js';

void test('layoutColumns: each column as wide as its widest cell, numbers right-aligned, headings as they are', () => {
  assert.deepEqual(
    layoutColumns(
      [
        ['', 'sidecar', 'per-host'],
        ['Blast radius'],
        ['  pods', '1 pod', '32 pods'],
        ['  failure window', '1,210 ms', '1,460 ms'],
      ],
      ['left', 'right', 'right'],
    ),
    [
      '                   sidecar  per-host',
      'Blast radius',
      '  pods               1 pod   32 pods',
      '  failure window  1,210 ms  1,460 ms',
    ],
  );
  assert.equal(textWidth('× µs'), 4, 'a multi-byte character is one column');
});

void test("the summary's table: every row ends in the same column, the null figure is marked and its reason listed", () => {
  const text = renderLabText(LAB_REPORT_FIXTURE);
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^\s+pods\/node\s+sidecar\s+per-host$/.test(l));
  const end = lines.indexOf('', start);
  assert.ok(start > 0 && end > start, text);
  const table = lines.slice(start, end);
  const widths = new Set(table.filter((l) => /^\s/.test(l)).map(textWidth));
  assert.equal(widths.size, 1, `rows end in different columns:\n${table.join('\n')}`);
  for (const phase of ['Overhead', 'Attribution', 'Noisy neighbour', 'Blast radius', 'Upgrade', 'Key exposure'])
    assert.ok(table.includes(phase), phase);
  assert.match(text, /CPU per request\s+2\s+0\.21 ms\s+0\.18 ms\n\s+8\s+0\.22 ms\s+not measured \[1\]\n/);
  assert.match(
    text,
    /\[1\] per-host CPU per request at 8 pods\/node: the node cgroup cpuacct\.usage could not be read/,
  );
  assert.match(text, /pods with failed requests\s+1 pod\s+32 pods/);
  assert.match(text, /CPU charged to the pod\s+97 %\s+0 %/);
  assert.match(text, /confused deputy\s+refused\s+refused/);
  assert.match(text, /^Findings\n {2}- Per-host wins on memory/m);
});

void test('control characters from the report do not reach the terminal', () => {
  const evil = '\x1b]0;owned\x07\x1b[2J\rgone';
  const r: LabReport = {
    ...LAB_REPORT_FIXTURE,
    findings: [`a finding ${evil}`],
    machine: { ...LAB_REPORT_FIXTURE.machine, cpu_model: evil },
  };
  const text = renderLabText(r);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(text, /[\x00-\x09\x0b-\x1f\x7f]/);
  assert.match(text, /a finding \]0;owned\[2Jgone/);
});

void test('a mode with no run at a step shows a dash, a report without findings has no findings heading', () => {
  const r: LabReport = {
    ...LAB_REPORT_FIXTURE,
    modes: { ...LAB_REPORT_FIXTURE.modes, 'per-host': { ...LAB_REPORT_FIXTURE.modes['per-host'], overhead: [] } },
    findings: [],
  };
  const text = renderLabText(r);
  assert.doesNotMatch(text, /Findings/);
  assert.match(text, /added latency p50\s+2\s+0\.42 ms\s+-\n/);
});
