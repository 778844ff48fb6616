import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrsOverlap, formatCidr, formatIPv4, gatewayOf, parseCidr } from './cidr.js';
import { IpPool } from './ipam.js';

void test('parses a CIDR and finds its gateway', () => {
  const c = parseCidr('10.244.0.0/16');
  assert.equal(formatCidr(c), '10.244.0.0/16');
  assert.equal(formatIPv4(gatewayOf(c)), '10.244.0.1');
});

void test('rejects malformed CIDRs and host bits, with a suggestion', () => {
  assert.throws(() => parseCidr('10.244.0.0'), /must look like 10\.244\.0\.0\/16, got "10\.244\.0\.0"/);
  assert.throws(() => parseCidr('10.244.0.256/24'), /must look like/);
  assert.throws(() => parseCidr('10.244.0.0/33'), /must look like/);
  assert.throws(
    () => parseCidr('10.244.1.0/16', 'pod CIDR'),
    /pod CIDR 10\.244\.1\.0\/16 has host bits set; did you mean 10\.244\.0\.0\/16\?/,
  );
});

void test('overlap', () => {
  assert.ok(cidrsOverlap(parseCidr('10.0.0.0/8'), parseCidr('10.250.3.0/24')));
  assert.ok(cidrsOverlap(parseCidr('0.0.0.0/0'), parseCidr('10.250.3.0/24')));
  assert.ok(!cidrsOverlap(parseCidr('10.250.3.0/24'), parseCidr('10.250.4.0/24')));
});

void test('the pool skips network, gateway and broadcast, and reuses released addresses last', () => {
  const pool = new IpPool(parseCidr('10.250.3.0/29')); // .0 network, .1 gateway, .7 broadcast
  const got = [pool.allocate(), pool.allocate(), pool.allocate()];
  assert.deepEqual(got, ['10.250.3.2', '10.250.3.3', '10.250.3.4']);
  pool.release('10.250.3.3');
  assert.deepEqual([pool.allocate(), pool.allocate()], ['10.250.3.5', '10.250.3.6']);
  assert.equal(pool.allocate(), '10.250.3.3'); // wrapped around to the released one
  assert.throws(() => pool.allocate(), /no free address left \(5 pods\)/);
});

void test('a pool built from a record keeps its addresses out', () => {
  const pool = new IpPool(parseCidr('10.250.3.0/24'), ['10.250.3.2', '10.250.3.4']);
  assert.deepEqual([pool.allocate(), pool.allocate()], ['10.250.3.3', '10.250.3.5']);
  assert.throws(() => pool.reserve('10.250.3.1'), /not a usable pod address/);
  assert.throws(() => new IpPool(parseCidr('10.250.3.0/31')), /too small/);
});
