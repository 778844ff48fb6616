import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, H2_PREFACE } from './detect.js';

const b = (s: string) => Buffer.from(s, 'latin1');

void test('classify: HTTP/2 preface, only when whole', () => {
  assert.equal(classify(H2_PREFACE), 'h2');
  assert.equal(classify(H2_PREFACE.subarray(0, 10)), undefined);
  assert.equal(classify(H2_PREFACE.subarray(0, 10), true), 'opaque');
  // "PRI " also looks like a method until the preface diverges: an h2-looking prefix is not HTTP/1.
  assert.equal(classify(b('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n')), 'opaque');
});

void test('classify: HTTP/1 known methods decide at once, extension methods on the request line', () => {
  assert.equal(classify(b('GET ')), 'http1');
  assert.equal(classify(b('POST /x HTTP/1.1\r\n')), 'http1');
  assert.equal(classify(b('GE')), undefined);
  assert.equal(classify(b('PROPFIND /a HTTP/1.1\r\n')), 'http1');
  assert.equal(classify(b('PROPFIND /a HT')), undefined);
  assert.equal(classify(b('HELLO world\r\n')), 'opaque');
  // Malformed but clearly meant as HTTP: detected as HTTP/1 so the parser answers 400.
  assert.equal(classify(b('GET /a b c HTTP/1.1\r\n')), 'http1');
});

void test('classify: TLS ClientHello and everything else', () => {
  assert.equal(classify(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), 'tls');
  assert.equal(classify(Buffer.from([0x16, 0x03])), undefined);
  assert.equal(classify(Buffer.from([0x16, 0x09, 0x01])), 'opaque');
  assert.equal(classify(Buffer.from([0x00, 0x01, 0x02])), 'opaque');
  assert.equal(classify(b('*1\r\n$4\r\nPING\r\n')), 'opaque'); // redis
  assert.equal(classify(b('')), undefined);
  assert.equal(classify(b(''), true), 'opaque');
  assert.equal(classify(b('A'.repeat(40))), 'opaque'); // no method is that long
});
