import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CounterCells } from '../../metrics.js';
import type { InboundPolicy } from '../../../api/policy.js';
import { defaultAuthorizations } from '../../../api/policy.js';
import {
  allows,
  compileAuthz,
  compilePolicy,
  ConnAuthz,
  parseIpv4,
  type AuthzCounters,
  type CompiledPolicy,
} from './authz.js';

const ip = (s: string) => parseIpv4(s);

void test('identities: exact, wildcards within one segment, and * for any mesh identity', () => {
  const a = compileAuthz({
    name: 'a',
    all: [{ identities: ['spiffe://td/ns/prod/sa/*', 'spiffe://td/ns/ops/sa/admin'], networks: [] }],
  });
  assert.equal(allows(a, { id: 'spiffe://td/ns/prod/sa/web', ip: undefined }), true);
  assert.equal(allows(a, { id: 'spiffe://td/ns/ops/sa/admin', ip: undefined }), true);
  assert.equal(allows(a, { id: 'spiffe://td/ns/ops/sa/other', ip: undefined }), false);
  // `*` does not cross a '/': ns/prod/sa/* does not match a longer path.
  assert.equal(allows(a, { id: 'spiffe://td/ns/prod/sa/web/x', ip: undefined }), false);
  assert.equal(allows(a, { id: undefined, ip: ip('10.0.0.1') }), false, 'no mesh identity');
  const any = compileAuthz({ name: 'any', all: [{ identities: ['*'], networks: [] }] });
  assert.equal(allows(any, { id: 'spiffe://x/ns/a/sa/b', ip: undefined }), true);
  assert.equal(allows(any, { id: undefined, ip: undefined }), false);
});

void test('networks with exceptions, IPv4-mapped addresses, and every requirement must hold', () => {
  const a = compileAuthz({
    name: 'n',
    all: [{ identities: [], networks: [{ cidr: '10.1.0.0/16', except: ['10.1.2.0/24', '10.1.3.4'] }] }],
  });
  assert.equal(allows(a, { id: undefined, ip: ip('10.1.9.9') }), true);
  assert.equal(allows(a, { id: undefined, ip: ip('::ffff:10.1.9.9') }), true);
  assert.equal(allows(a, { id: undefined, ip: ip('10.1.2.7') }), false);
  assert.equal(allows(a, { id: undefined, ip: ip('10.1.3.4') }), false);
  assert.equal(allows(a, { id: undefined, ip: ip('10.2.0.1') }), false);
  assert.equal(allows(a, { id: undefined, ip: undefined }), false, 'not IPv4');
  const both = compileAuthz(defaultAuthorizations('cluster-authenticated', ['10.1.0.0/16'])[0] as never);
  assert.equal(allows(both, { id: 'spiffe://td/ns/a/sa/b', ip: ip('10.1.0.5') }), true);
  assert.equal(allows(both, { id: 'spiffe://td/ns/a/sa/b', ip: ip('192.168.0.5') }), false);
  assert.equal(allows(both, { id: undefined, ip: ip('10.1.0.5') }), false);
  assert.equal(allows(compileAuthz({ name: 'open', all: [] }), { id: undefined, ip: undefined }), true);
});

function counters(): AuthzCounters {
  return {
    httpAllow: new CounterCells(),
    httpDeny: new CounterCells(),
    tcpAllow: new CounterCells(),
    tcpDeny: new CounterCells(),
  };
}

const route = (name: string, method: string, prefix: string) => ({
  route: {
    kind: 'HTTP' as const,
    name,
    rules: [
      {
        name: '',
        matches: [{ path: { type: 'PREFIX' as const, value: prefix }, method, headers: [], query_params: [] }],
        filters: [],
        backends: [],
        request_timeout_ms: 0,
        backend_request_timeout_ms: 0,
      },
    ],
  },
  authorizations:
    name === 'ns/admin'
      ? [{ name: 'ns/admin-ops', all: [{ identities: ['spiffe://td/ns/ns/sa/ops'], networks: [] }] }]
      : [{ name: 'ns/public-all', all: [] }],
});

const answer = (withAdmin: boolean): InboundPolicy => ({
  known: true,
  default_policy: 'deny',
  default_authorizations: [],
  ports: [
    {
      port: 8080,
      server: 'ns/web',
      protocol: 'HTTP/1',
      authorizations: [],
      routes: [route('ns/public', 'GET', '/public'), ...(withAdmin ? [route('ns/admin', 'POST', '/admin')] : [])],
    },
    {
      port: 9000,
      server: 'ns/db',
      protocol: 'opaque',
      authorizations: [{ name: 'ns/db-ops', all: [{ identities: ['spiffe://td/ns/ns/sa/ops'], networks: [] }] }],
      routes: [],
    },
  ],
});

void test('a connection decides per route, and again when the policy changes', () => {
  let policy: CompiledPolicy = compilePolicy(answer(true), undefined, []);
  const source = { current: () => policy };
  const ops = new ConnAuthz(source, 8080, { id: 'spiffe://td/ns/ns/sa/ops', ip: ip('10.0.0.1') }, counters());
  const anon = new ConnAuthz(source, 8080, { id: undefined, ip: ip('10.0.0.2') }, counters());
  const req = (method: string, path: string) => ({ method, path, query: '', headers: [] });
  assert.equal(ops.routed(), true);
  assert.deepEqual(pick(ops.http(req('POST', '/admin/x'))), {
    allowed: true,
    noRoute: false,
    route: 'ns/admin',
    rule: 'ns/admin-ops',
  });
  assert.deepEqual(pick(anon.http(req('POST', '/admin/x'))), {
    allowed: false,
    noRoute: false,
    route: 'ns/admin',
    rule: 'unauthorized',
  });
  assert.deepEqual(pick(anon.http(req('GET', '/public/a'))), {
    allowed: true,
    noRoute: false,
    route: 'ns/public',
    rule: 'ns/public-all',
  });
  assert.deepEqual(pick(anon.http(req('GET', '/other'))), {
    allowed: false,
    noRoute: true,
    route: '',
    rule: 'no-route',
  });
  // The same decision object while the policy stays (nothing is recomputed per request).
  assert.equal(ops.http(req('POST', '/admin/y')), ops.http(req('POST', '/admin/z')));
  policy = compilePolicy(answer(false), policy, []);
  assert.equal(ops.http(req('POST', '/admin/x')).noRoute, true, 'the admin route is gone');
  // Opaque: the Server's authorizations; an uncovered port gets the default (deny here).
  assert.equal(
    new ConnAuthz(source, 9000, { id: 'spiffe://td/ns/ns/sa/ops', ip: undefined }, counters()).tcp().allowed,
    true,
  );
  assert.equal(new ConnAuthz(source, 9000, { id: undefined, ip: undefined }, counters()).tcp().allowed, false);
  assert.equal(new ConnAuthz(source, 9000, { id: undefined, ip: undefined }, counters()).opaque(), true);
  const other = new ConnAuthz(source, 7000, { id: 'spiffe://td/ns/ns/sa/ops', ip: undefined }, counters()).tcp();
  assert.deepEqual([other.allowed, other.server], [false, 'default:deny']);
});

void test('rate limiters keep their state across answers that do not change them', () => {
  const withLimit = (rps: number): InboundPolicy => ({
    ...answer(false),
    ports: [
      {
        port: 8080,
        server: 'ns/web',
        protocol: 'unknown',
        authorizations: [],
        routes: [],
        rate_limit: { name: 'ns/rl', total_rps: rps, identity_rps: 0, overrides: [] },
      },
    ],
  });
  const a = compilePolicy(withLimit(10), undefined, []);
  const b = compilePolicy(withLimit(10), a, []);
  const c = compilePolicy(withLimit(20), b, []);
  assert.equal(a.ports.get(8080)?.limiter, b.ports.get(8080)?.limiter);
  assert.notEqual(b.ports.get(8080)?.limiter, c.ports.get(8080)?.limiter);
});

function pick(d: { allowed: boolean; noRoute: boolean; route: string; rule: string }) {
  return { allowed: d.allowed, noRoute: d.noRoute, route: d.route, rule: d.rule };
}
