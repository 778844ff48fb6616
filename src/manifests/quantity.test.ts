import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, parseCpu, parseMemory } from './quantity.js';

void test('cpu quantities: cores and millicores, rounded up to a millicore', () => {
  assert.equal(parseCpu('500m'), 500);
  assert.equal(parseCpu('1'), 1000);
  assert.equal(parseCpu(0.25), 250);
  assert.equal(parseCpu('1.5'), 1500);
  assert.equal(parseCpu('0.0001'), 1);
  assert.match(String(parseCpu('1Gi')), /must be a CPU quantity/);
  assert.match(String(parseCpu('lots')), /got "lots"/);
  assert.match(String(parseCpu('-1')), /must be a CPU quantity/);
});

void test('memory quantities: decimal and binary suffixes', () => {
  assert.equal(parseMemory('64Mi'), 64 * 1024 * 1024);
  assert.equal(parseMemory('1G'), 1e9);
  assert.equal(parseMemory(128974848), 128974848);
  assert.equal(parseMemory('1.5Ki'), 1536);
  assert.match(String(parseMemory('64MB')), /must be a memory quantity/);
  assert.match(String(parseMemory('1e3')), /must be a memory quantity/);
  assert.match(String(parseMemory('500m')), /must be a memory quantity/);
});

void test('formatBytes', () => {
  assert.equal(formatBytes(512), '512');
  assert.equal(formatBytes(64 * 1024 * 1024), '64.0Mi');
});
