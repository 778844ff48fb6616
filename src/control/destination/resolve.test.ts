import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pod, service } from '../store/contract.js';
import type { RouteEntry, StoreSnapshot } from '../store/store.js';
import { answer, parsePath, protocolHintOf, type Target } from './resolve.js';

function target(path: string): Target {
  const p = parsePath(path);
  assert.ok(p.ok, `${path}: ${p.ok ? '' : p.message}`);
  return p.target;
}

void test('paths: ip:port, [v6]:port and the three service name forms', () => {
  assert.deepEqual(target('10.96.0.10:80'), { kind: 'ip', ip: '10.96.0.10', port: 80 });
  assert.deepEqual(target('[FD00::1]:443'), { kind: 'ip', ip: 'fd00::1', port: 443 });
  for (const p of [
    'web.default:80',
    'web.default.svc:80',
    'Web.Default.svc.cluster.local:80',
    'web.default.svc.cluster.local.:80',
  ]) {
    assert.deepEqual(target(p), { kind: 'name', namespace: 'default', name: 'web', port: 80 }, p);
  }
  assert.deepEqual(target('www.example.com:443'), { kind: 'external', host: 'www.example.com', port: 443 });
  // Two labels are always read as name.namespace: example.com:443 asks for Service example in namespace
  // com, which the mesh does not know either (so the answer is the same passthrough).
  assert.deepEqual(target('example.com:443'), { kind: 'name', namespace: 'com', name: 'example', port: 443 });
  assert.deepEqual(target('a.b.svc.other.domain:80'), { kind: 'external', host: 'a.b.svc.other.domain', port: 80 });
});

void test('bad paths: each gets a lower-case message naming the path', () => {
  const cases: [string, RegExp][] = [
    ['', /^path "": empty/],
    ['10.0.0.1', /^path "10.0.0.1": no port/],
    ['10.0.0.1:0', /port "0" is not a number from 1 to 65535/],
    ['10.0.0.1:99999', /port "99999"/],
    ['10.0.0.1:http', /port "http"/],
    ['999.1.1.1:80', /^path "999.1.1.1:80": not a valid ipv4 address/],
    ['fd00::1:80', /ipv6 address must be in brackets/],
    ['[zz::1]:80', /not an ipv6 address in brackets/],
    ['web:80', /^path "web:80": a service name needs its namespace: web.<namespace>:80/],
    ['we_b.default:80', /"we_b" is not a dns label/],
    ['web..default:80', /"" is not a dns label/],
    ['x'.repeat(400) + ':80', /longer than 300 characters/],
  ];
  for (const [path, re] of cases) {
    const p = parsePath(path);
    assert.equal(p.ok, false, path);
    if (!p.ok) {
      assert.match(p.message, re, path);
      assert.equal(p.message, p.message.charAt(0).toLowerCase() + p.message.slice(1));
    }
  }
});

void test('appProtocol → protocol hint', () => {
  assert.equal(protocolHintOf('kubernetes.io/h2c'), 'H2');
  assert.equal(protocolHintOf('h2c'), 'H2');
  assert.equal(protocolHintOf('grpc'), 'H2');
  assert.equal(protocolHintOf('HTTP'), 'HTTP1');
  assert.equal(protocolHintOf('kubernetes.io/ws'), 'UNKNOWN');
  assert.equal(protocolHintOf(undefined), 'UNKNOWN');
});

const snap: StoreSnapshot = {
  version: 1,
  services: [
    service(
      'web',
      '10.96.0.10',
      [
        { pod: 'default/web-2', ip: '10.244.0.12', ports: { 80: 8080, 9000: 9000, 50051: 50051 }, ready: true },
        { pod: 'default/web-1', ip: '10.244.0.11', ports: { 80: 8080, 9000: 9000, 50051: 50051 }, ready: true },
        { pod: 'default/web-3', ip: '10.244.0.13', ports: { 80: 8080, 9000: 9000, 50051: 50051 }, ready: false },
        // A named targetPort this pod does not declare: no entry for 9000.
        { pod: 'default/legacy', ip: '10.244.0.14', ports: { 80: 8080 }, ready: true },
      ],
      {
        ports: [
          { name: 'http', port: 80, appProtocol: 'http' },
          { name: 'db', port: 9000 },
          { name: 'grpc', port: 50051, appProtocol: 'grpc' },
        ],
      },
    ),
    service('other', '10.96.0.11', [], { namespace: 'shop', ports: [{ port: 7000, opaque: true }] }),
  ],
  pods: [
    pod('web-1', '10.244.0.11', { serviceAccount: 'web', opaquePorts: [{ from: 9000, to: 9000 }] }),
    pod('web-2', '10.244.0.12', { serviceAccount: 'web', meshed: false }),
    pod('web-3', '10.244.0.13', { ready: false }),
    pod('legacy', '10.244.0.14'),
    pod('lonely', '10.244.0.20', { namespace: 'shop', serviceAccount: 'lonely' }),
  ],
};

void test('a Service IP: its ready endpoints, sorted, with identity only for meshed pods', () => {
  const a = answer(snap, target('10.96.0.10:80'), 'example.org');
  assert.deepEqual(a, {
    known: true,
    service: 'web.default.svc.cluster.local:80',
    endpoints: [
      {
        addr: '10.244.0.11:8080',
        weight: 1,
        identity: 'spiffe://example.org/ns/default/sa/web',
        protocol_hint: 'HTTP1',
        meshed: true,
        pod: 'default/web-1',
      },
      {
        addr: '10.244.0.12:8080',
        weight: 1,
        identity: '',
        protocol_hint: 'HTTP1',
        meshed: false,
        pod: 'default/web-2',
      },
      {
        addr: '10.244.0.14:8080',
        weight: 1,
        identity: 'spiffe://example.org/ns/default/sa/default',
        protocol_hint: 'HTTP1',
        meshed: true,
        pod: 'default/legacy',
      },
    ],
  });
  // The same answer by each name form.
  for (const p of ['web.default:80', 'web.default.svc:80', 'web.default.svc.cluster.local:80']) {
    assert.deepEqual(answer(snap, target(p), 'example.org'), a, p);
  }
});

void test('protocol hints: the pod opaque port wins, then appProtocol; a missing target port leaves the pod out', () => {
  const db = answer(snap, target('10.96.0.10:9000'), 'td');
  assert.deepEqual(
    db.endpoints.map((e) => [e.pod, e.protocol_hint]),
    [
      ['default/web-1', 'OPAQUE'],
      ['default/web-2', 'UNKNOWN'],
    ],
  );
  const grpc = answer(snap, target('web.default:50051'), 'td');
  assert.ok(grpc.endpoints.length === 2 && grpc.endpoints.every((e) => e.protocol_hint === 'H2'));
  const opaqueSvc = answer(snap, target('other.shop:7000'), 'td');
  assert.deepEqual(opaqueSvc, { known: true, service: 'other.shop.svc.cluster.local:7000', endpoints: [] });
});

void test("a Server with proxyProtocol opaque makes its pods' port opaque for clients too", () => {
  const server = (name: string, proxyProtocol: 'opaque' | 'HTTP/1') => ({
    namespace: 'default',
    name,
    podSelector: { matchLabels: { app: 'web' }, matchExpressions: [] },
    port: 9000,
    proxyProtocol,
  });
  const withServer: StoreSnapshot = {
    ...snap,
    policy: {
      servers: [server('db', 'opaque')],
      authorizationPolicies: [],
      meshTLSAuthentications: [],
      networkAuthentications: [],
      rateLimits: [],
    },
  };
  const db = answer(withServer, target('10.96.0.10:9000'), 'td');
  assert.deepEqual(
    db.endpoints.map((e) => [e.pod, e.protocol_hint]),
    [
      ['default/web-1', 'OPAQUE'],
      ['default/web-2', 'OPAQUE'],
    ],
  );
  assert.equal(answer(withServer, target('10.244.0.12:9000'), 'td').endpoints[0]?.protocol_hint, 'OPAQUE');
  const http = {
    ...withServer,
    policy: { ...(withServer.policy as NonNullable<StoreSnapshot['policy']>), servers: [server('db', 'HTTP/1')] },
  };
  assert.equal(answer(http, target('10.244.0.12:9000'), 'td').endpoints[0]?.protocol_hint, 'UNKNOWN');
});

void test('a pod IP: that pod alone, even when not ready, with the hints a Service gives its port', () => {
  assert.deepEqual(answer(snap, target('10.244.0.20:5000'), 'td'), {
    known: true,
    service: '',
    endpoints: [
      {
        addr: '10.244.0.20:5000',
        weight: 1,
        identity: 'spiffe://td/ns/shop/sa/lonely',
        protocol_hint: 'UNKNOWN',
        meshed: true,
        pod: 'shop/lonely',
      },
    ],
  });
  assert.equal(answer(snap, target('10.244.0.12:8080'), 'td').endpoints[0]?.protocol_hint, 'HTTP1');
  assert.equal(answer(snap, target('10.244.0.11:9000'), 'td').endpoints[0]?.protocol_hint, 'OPAQUE');
  assert.equal(answer(snap, target('10.244.0.13:8080'), 'td').endpoints[0]?.pod, 'default/web-3');
});

void test("a meshed pod's proxy ports (its admin server) are reached like an unmeshed pod's: no identity", () => {
  for (const port of [4190, 4191]) {
    const [ep] = answer(snap, target(`10.244.0.20:${port}`), 'td').endpoints;
    assert.equal(ep?.pod, 'shop/lonely');
    assert.equal(ep.identity, '', `port ${port}`);
    assert.equal(ep.meshed, false, `port ${port}`);
  }
});

void test('unknown: another IP, a Service port it does not have, an unknown name, an external name', () => {
  const unknown = { known: false, service: '', endpoints: [] };
  for (const p of [
    '10.1.2.3:80',
    '10.96.0.10:81',
    'nope.default:80',
    'web.default:81',
    'web.shop:80',
    'example.com:443',
    'www.example.com:443',
  ]) {
    assert.deepEqual(answer(snap, target(p), 'td'), unknown, p);
  }
});

// ---- routes -------------------------------------------------------------------------------------

const split: RouteEntry = {
  kind: 'HTTPRoute',
  namespace: 'default',
  name: 'split',
  parents: [{ name: 'web', port: 80 }],
  rules: [
    {
      name: 'canary',
      matches: [
        {
          path: { type: 'PathPrefix', value: '/api' },
          method: 'GET',
          headers: [{ type: 'Exact', name: 'x-canary', value: '1' }],
          queryParams: [],
        },
      ],
      filters: [
        { type: 'RequestHeaderModifier', set: [{ name: 'x-route', value: 'canary' }], add: [], remove: ['x-debug'] },
        { type: 'RequestMirror', backend: { name: 'shadow', port: 80 }, numerator: 10, denominator: 100 },
        { type: 'URLRewrite', path: { type: 'ReplacePrefixMatch', value: '/v2' } },
      ],
      backends: [{ name: 'canary', port: 80, weight: 1 }],
      requestTimeoutMs: 10_000,
      backendRequestTimeoutMs: 500,
      retry: { attempts: 2, statuses: [[500, 599]], grpcCodes: [], connectFailure: true, reset: true, timeout: true },
    },
    {
      matches: [{ path: { type: 'PathPrefix', value: '/' }, headers: [], queryParams: [] }],
      filters: [],
      backends: [
        { name: 'web', port: 80, weight: 90 },
        { name: 'canary', port: 80, weight: 10 },
      ],
    },
  ],
};

const routed: StoreSnapshot = {
  version: 2,
  services: [
    service(
      'web',
      '10.96.0.10',
      [{ pod: 'default/web-1', ip: '10.244.0.11', ports: { 80: 8080, 9000: 9000 }, ready: true }],
      {
        ports: [
          { name: 'http', port: 80, appProtocol: 'http' },
          { name: 'db', port: 9000 },
        ],
      },
    ),
    service('canary', '10.96.0.12', [
      { pod: 'default/canary-1', ip: '10.244.0.21', ports: { 80: 8080 }, ready: true },
      { pod: 'default/canary-2', ip: '10.244.0.22', ports: { 80: 8080 }, ready: false },
    ]),
  ],
  pods: [pod('web-1', '10.244.0.11'), pod('canary-1', '10.244.0.21'), pod('canary-2', '10.244.0.22', { ready: false })],
  routes: [split],
};

void test('a Service port with routes: its rules, and each backend once with its ready endpoints', () => {
  const a = answer(routed, target('web.default:80'), 'td');
  assert.equal(a.known, true);
  assert.deepEqual(
    a.endpoints.map((e) => e.addr),
    ['10.244.0.11:8080'],
    'the Service itself is still answered',
  );
  assert.deepEqual(a.routes, [
    {
      kind: 'HTTP',
      name: 'default/split',
      rules: [
        {
          name: 'canary',
          matches: [
            {
              path: { type: 'PREFIX', value: '/api' },
              method: 'GET',
              headers: [{ type: 'EXACT', name: 'x-canary', value: '1' }],
              query_params: [],
            },
          ],
          filters: [
            {
              type: 'REQUEST_HEADER_MODIFIER',
              header_modifier: { set: [{ name: 'x-route', value: 'canary' }], add: [], remove: ['x-debug'] },
            },
            {
              type: 'REQUEST_MIRROR',
              mirror: { backend: 'shadow.default.svc.cluster.local:80', numerator: 10, denominator: 100 },
            },
            {
              type: 'URL_REWRITE',
              url_rewrite: { hostname: '', path: { type: 'REPLACE_PREFIX_MATCH', value: '/v2' } },
            },
          ],
          backends: [{ backend: 'canary.default.svc.cluster.local:80', weight: 1 }],
          request_timeout_ms: 10_000,
          backend_request_timeout_ms: 500,
          retry: {
            attempts: 2,
            statuses: [{ from: 500, to: 599 }],
            grpc_codes: [],
            connect_failure: true,
            reset: true,
            timeout: true,
          },
        },
        {
          name: '',
          matches: [{ path: { type: 'PREFIX', value: '/' }, method: '', headers: [], query_params: [] }],
          filters: [],
          backends: [
            { backend: 'web.default.svc.cluster.local:80', weight: 90 },
            { backend: 'canary.default.svc.cluster.local:80', weight: 10 },
          ],
          request_timeout_ms: 0,
          backend_request_timeout_ms: 0,
        },
      ],
    },
  ]);
  assert.deepEqual(
    a.backends?.map((b) => [b.service, b.exists, b.endpoints.map((e) => `${e.addr} ${e.identity}`)]),
    [
      ['canary.default.svc.cluster.local:80', true, ['10.244.0.21:8080 spiffe://td/ns/default/sa/default']],
      // A mirror to a Service that is gone: listed, so the proxy knows to drop the copy.
      ['shadow.default.svc.cluster.local:80', false, []],
      ['web.default.svc.cluster.local:80', true, ['10.244.0.11:8080 spiffe://td/ns/default/sa/default']],
    ],
  );
  // By IP too.
  assert.deepEqual(answer(routed, target('10.96.0.10:80'), 'td'), a);
});

void test('routes apply to the parent port they name (or every port); a backend is not a parent', () => {
  const db = answer(routed, target('web.default:9000'), 'td');
  assert.equal(db.routes, undefined, 'no routes: the field is left out, so old answers are unchanged');
  assert.equal(db.backends, undefined);
  assert.equal(answer(routed, target('canary.default:80'), 'td').routes, undefined);
  const everyPort: StoreSnapshot = { ...routed, routes: [{ ...split, parents: [{ name: 'web' }] }] };
  assert.equal(answer(everyPort, target('web.default:9000'), 'td').routes?.length, 1);
  assert.equal(answer(everyPort, target('10.244.0.11:9000'), 'td').routes, undefined, 'never for a pod IP');
});

void test('a GRPCRoute: kind GRPC, method matches, no path', () => {
  const g: RouteEntry = {
    kind: 'GRPCRoute',
    namespace: 'default',
    name: 'greeter',
    parents: [{ name: 'web' }],
    rules: [
      {
        matches: [{ headers: [], queryParams: [], grpcMethod: { type: 'Exact', service: 'helloworld.Greeter' } }],
        filters: [],
        backends: [{ name: 'web', port: 80, weight: 1 }],
        retry: { attempts: 1, statuses: [], grpcCodes: [14], connectFailure: true, reset: false, timeout: false },
      },
    ],
  };
  const a = answer({ ...routed, routes: [g] }, target('web.default:80'), 'td');
  assert.equal(a.routes?.[0]?.kind, 'GRPC');
  assert.deepEqual(a.routes?.[0]?.rules[0]?.matches, [
    {
      method: '',
      headers: [],
      query_params: [],
      grpc_method: { type: 'EXACT', service: 'helloworld.Greeter', method: '' },
    },
  ]);
  assert.deepEqual(a.routes?.[0]?.rules[0]?.retry?.grpc_codes, [14]);
});

void test('an endpoint carries the workload (Deployment) that owns its pod, when the store knows it', () => {
  const withWorkload: StoreSnapshot = {
    ...snap,
    pods: snap.pods.map((p) => (p.name === 'web-1' ? { ...p, workload: 'web' } : p)),
  };
  const eps = answer(withWorkload, target('10.96.0.10:80'), 'td').endpoints;
  assert.equal(eps.find((e) => e.pod === 'default/web-1')?.workload, 'web');
  assert.equal(eps.find((e) => e.pod === 'default/web-2')?.workload, undefined, 'absent for a pod without one');
});
