import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pod, samplePolicy } from '../store/contract.js';
import type { StoreSnapshot } from '../store/store.js';
import { inboundPolicy } from './resolve.js';

const settings = {
  trustDomain: 'cluster.local',
  defaultPolicy: 'all-authenticated' as const,
  clusterNetworks: ['10.244.0.0/16'],
};

function snapshot(): StoreSnapshot {
  const p = samplePolicy();
  return {
    version: 1,
    services: [],
    pods: [
      pod('web-1', '10.244.0.11', { ports: [{ name: 'http', containerPort: 8080 }] }),
      pod('lonely', '10.244.0.12', { labels: { app: 'other' }, defaultInboundPolicy: 'deny' }),
    ],
    routes: [
      {
        kind: 'HTTPRoute',
        namespace: 'default',
        name: 'admin',
        parents: [{ name: 'web-http', kind: 'Server' }],
        rules: [
          {
            matches: [{ path: { type: 'PathPrefix', value: '/admin' }, method: 'POST', headers: [], queryParams: [] }],
            filters: [],
            backends: [],
          },
        ],
      },
      // An outbound route of a Service of the same name: not the Server's.
      { kind: 'HTTPRoute', namespace: 'default', name: 'svc', parents: [{ name: 'web-http' }], rules: [] },
    ],
    policy: {
      ...p,
      authorizationPolicies: [
        ...p.authorizationPolicies,
        {
          namespace: 'default',
          name: 'admins',
          target: { kind: 'HTTPRoute', name: 'admin' },
          authentications: [{ kind: 'ServiceAccount', namespace: 'ops', name: 'root' }],
        },
        { namespace: 'default', name: 'ns-wide', target: { kind: 'Namespace', name: 'default' }, authentications: [] },
        { namespace: 'other', name: 'elsewhere', target: { kind: 'Namespace', name: 'other' }, authentications: [] },
      ],
    },
  };
}

void test('a pod covered by a Server on a named port: authorizations, routes and the rate limit, all resolved', () => {
  const p = inboundPolicy(snapshot(), 'default', 'web-1', settings);
  assert.equal(p.known, true);
  assert.equal(p.default_policy, 'all-authenticated');
  assert.deepEqual(p.default_authorizations, [
    { name: 'default:all-authenticated', all: [{ identities: ['*'], networks: [] }] },
  ]);
  assert.equal(p.ports.length, 1);
  const port = p.ports[0];
  assert.equal(port?.port, 8080);
  assert.equal(port?.server, 'default/web-http');
  assert.equal(port?.protocol, 'HTTP/1');
  assert.deepEqual(port?.authorizations, [
    {
      name: 'default/web-ops',
      all: [
        {
          identities: ['spiffe://cluster.local/ns/ops/sa/*', 'spiffe://cluster.local/ns/default/sa/ops'],
          networks: [],
        },
        { identities: [], networks: [{ cidr: '10.244.0.0/16', except: ['10.244.0.20/32'] }] },
      ],
    },
    { name: 'default/ns-wide', all: [] },
  ]);
  assert.deepEqual(
    port?.routes.map((r) => [r.route?.name, r.authorizations]),
    [
      [
        'default/admin',
        [{ name: 'default/admins', all: [{ identities: ['spiffe://cluster.local/ns/ops/sa/root'], networks: [] }] }],
      ],
    ],
  );
  assert.deepEqual(port?.rate_limit, {
    name: 'default/web',
    total_rps: 100,
    identity_rps: 10,
    overrides: [{ rps: 50, identities: ['spiffe://cluster.local/ns/default/sa/ops'] }],
  });
});

void test('a pod no Server selects: its own default; an unknown pod: known false', () => {
  const p = inboundPolicy(snapshot(), 'default', 'lonely', settings);
  assert.deepEqual([p.known, p.default_policy, p.default_authorizations, p.ports], [true, 'deny', [], []]);
  const c = inboundPolicy(snapshot(), 'default', 'web-1', { ...settings, defaultPolicy: 'cluster-authenticated' });
  assert.deepEqual(c.default_authorizations[0]?.all[1], {
    identities: [],
    networks: [{ cidr: '10.244.0.0/16', except: [] }],
  });
  assert.equal(inboundPolicy(snapshot(), 'default', 'gone', settings).known, false);
});

void test('a reference to an authentication that does not exist authorizes nobody', () => {
  const s = snapshot();
  const broken = {
    ...s,
    policy: { ...(s.policy as NonNullable<StoreSnapshot['policy']>), meshTLSAuthentications: [] },
  };
  const names = inboundPolicy(broken, 'default', 'web-1', settings).ports[0]?.authorizations.map((a) => a.name);
  assert.deepEqual(names, ['default/ns-wide']);
});
