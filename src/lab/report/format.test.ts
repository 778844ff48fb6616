// The report's formatting: escaping for HTML, control characters out of terminal text, numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeHtml, formatFigure, formatNumber, formatValue, plainText } from './format.js';

void test('escapeHtml: markup, quotes (both kinds) and ampersands become text', () => {
  assert.equal(
    escapeHtml(`<img src=x onerror="alert('1')"> & </td>`),
    '&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt; &amp; &lt;/td&gt;',
  );
  assert.equal(escapeHtml('&amp;'), '&amp;amp;', 'an entity in the input is shown, not decoded');
});

void test('plainText: escape sequences, carriage returns and other controls are dropped; newlines become spaces', () => {
  assert.equal(plainText('a\x1b[2Jb\rc\nd\u009be\tf'), 'a[2Jbc de\tf');
});

void test('formatNumber: integers grouped, decimals by magnitude, no float noise or exponent', () => {
  const cases: [number, string][] = [
    [0, '0'],
    [4000, '4,000'],
    [-1210, '-1,210'],
    [2437.6, '2,438'],
    [609.1, '609.1'],
    [41.7, '41.7'],
    [38.1, '38.1'],
    [1.31, '1.31'],
    [1.3, '1.3'],
    [0.42, '0.42'],
    [0.1 + 0.2, '0.3'],
    [0.000123, '0.000123'],
    [-0.05, '-0.05'],
    [1e-9, '0'],
  ];
  for (const [v, s] of cases) assert.equal(formatNumber(v), s, String(v));
});

void test('formatValue: shares as percentages, count units singular for one, null as not measured', () => {
  assert.equal(formatValue(0.973, 'share', 'share'), '97.3 %');
  assert.equal(formatValue(0, 'share', 'share'), '0 %');
  assert.equal(formatValue(1, 'pods'), '1 pod');
  assert.equal(formatValue(32, 'pods'), '32 pods');
  assert.equal(formatValue(1, 'ms'), '1 ms');
  assert.equal(formatValue(3, ''), '3');
  assert.equal(formatFigure({ value: null, unit: 'ms', method: 'x' }), 'not measured');
});
