import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matches, parseTapQuery, tapEvent, type TapFilter } from './tap.js';
import type { RequestEvent } from './event.js';

const ev: RequestEvent = {
  startMs: Date.UTC(2026, 0, 1),
  direction: 'outbound',
  src: '10.0.0.2:5000',
  dst: '10.0.0.3:8080',
  tls: true,
  clientId: 'spiffe://td/ns/default/sa/client',
  serverId: 'spiffe://td/ns/default/sa/web',
  method: 'GET',
  authority: 'web',
  path: '/api/items?x=1',
  status: 200,
  grpcStatus: undefined,
  failure: undefined,
  latencyMs: 1.23456,
  route: 'default',
  dstMeta: { key: 'k', namespace: 'default', workload: 'web', pod: 'web-1', service: 'web' },
  fields: ['Host', 'web', 'Authorization', 'secret', 'X-A', '1', 'x-a', '2'],
  trace: undefined,
};

void test('tap query: defaults, caps and refusals', () => {
  assert.deepEqual(parseTapQuery(new URLSearchParams('')), { max: 100, headers: false });
  assert.equal((parseTapQuery(new URLSearchParams('max=99999')) as TapFilter).max, 10000);
  assert.match(parseTapQuery(new URLSearchParams('max=0')) as string, /max/);
  assert.match(parseTapQuery(new URLSearchParams('direction=sideways')) as string, /direction/);
  assert.deepEqual(parseTapQuery(new URLSearchParams('path=/api&method=get&to=web&direction=outbound&headers=1')), {
    path: '/api',
    method: 'GET',
    to: 'web',
    direction: 'outbound',
    max: 100,
    headers: true,
  });
});

void test('tap filter: path prefix, method, authority, direction, destination workload or service', () => {
  const f = (q: string) => parseTapQuery(new URLSearchParams(q)) as TapFilter;
  assert.ok(matches(f('path=/api&method=GET&authority=WEB&direction=outbound&to=web'), ev));
  assert.ok(matches(f('to=web-1'), ev));
  assert.ok(!matches(f('path=/other'), ev));
  assert.ok(!matches(f('method=POST'), ev));
  assert.ok(!matches(f('direction=inbound'), ev));
  assert.ok(!matches(f('to=db'), ev));
});

void test('tap event: header names only unless asked, then values', () => {
  const plain = tapEvent(ev, false);
  assert.deepEqual(plain.headers, ['host', 'authorization', 'x-a']);
  assert.ok(!JSON.stringify(plain).includes('secret'));
  assert.equal(plain.ts, '2026-01-01T00:00:00.000Z');
  assert.equal(plain.latency_ms, 1.235);
  assert.equal(plain.dst_workload, 'web');
  assert.equal(plain.grpc_status, undefined);
  assert.deepEqual(tapEvent(ev, true).headers, { host: ['web'], authorization: ['secret'], 'x-a': ['1', '2'] });
});

void test('tap event: an answer that did not end whole says why; a whole one has no failure field', () => {
  assert.equal('failure' in tapEvent(ev, false), false);
  const cut = tapEvent({ ...ev, status: 200, grpcStatus: 13, failure: 'grpc_status_missing' }, false);
  assert.equal(cut.failure, 'grpc_status_missing');
  assert.equal(cut.grpc_status, 13);
});
