import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deploymentOf, podEntry, routeEntriesFrom, serviceEntry } from './convert.js';

const svc = {
  metadata: { name: 'web', namespace: 'ns' },
  spec: { clusterIP: '10.96.0.5', ports: [{ port: 80, protocol: 'TCP' }] },
};

void test('serviceEntry: an unnamed port, a pod in two slices, a nil ready (ready) and an address without a pod', () => {
  const slices = [
    {
      metadata: { name: 'a' },
      addressType: 'IPv4',
      ports: [{ port: 8080 }],
      endpoints: [
        { addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'p1' } },
        { addresses: ['10.0.0.9'], conditions: { ready: false } },
      ],
    },
    {
      metadata: { name: 'b' },
      addressType: 'IPv4',
      ports: [{ name: '', port: 8080 }],
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'p1' } }],
    },
    {
      metadata: { name: 'fqdn' },
      addressType: 'FQDN',
      ports: [{ port: 80 }],
      endpoints: [{ addresses: ['example.com'] }],
    },
  ];
  assert.deepEqual(serviceEntry(svc, slices), {
    namespace: 'ns',
    name: 'web',
    clusterIP: '10.96.0.5',
    ports: [{ port: 80 }],
    endpoints: [
      { pod: 'ns/10.0.0.9', ip: '10.0.0.9', ports: { 80: 8080 }, ready: false },
      { pod: 'ns/p1', ip: '10.0.0.1', ports: { 80: 8080 }, ready: true },
    ],
  });
  assert.equal(serviceEntry({ ...svc, spec: { ...svc.spec, clusterIP: 'None' } }, []), undefined);
  assert.equal(serviceEntry({ ...svc, spec: { type: 'ExternalName', externalName: 'x' } }, []), undefined);
});

void test("podEntry: finished pods and pods without an address are left out; the pod's opaque ports win over its namespace's", () => {
  const base = {
    metadata: { name: 'p', namespace: 'ns', annotations: { 'config.outrigger.io/opaque-ports': '3306' } },
    spec: { containers: [] },
    status: { podIP: '10.0.0.1', phase: 'Running' },
  };
  assert.deepEqual(podEntry(base, { 'config.outrigger.io/opaque-ports': '5432' })?.opaquePorts, [
    { from: 3306, to: 3306 },
  ]);
  assert.equal(podEntry({ ...base, status: { podIP: '10.0.0.1', phase: 'Succeeded' } }, {}), undefined);
  assert.equal(podEntry({ ...base, status: { phase: 'Pending' } }, {}), undefined);
  assert.equal(podEntry(base, {})?.meshed, false);
  assert.equal(podEntry(base, {})?.serviceAccount, 'default');
});

void test('routeEntriesFrom: a route outside what outrigger supports is left out with its problems; the others stay', () => {
  const ok = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'r1', namespace: 'ns', uid: 'u', resourceVersion: '5' },
    spec: {
      parentRefs: [{ kind: 'Service', group: '', name: 'web' }],
      rules: [{ backendRefs: [{ name: 'web', port: 80 }] }],
    },
    status: {},
  };
  const gatewayParent = {
    ...ok,
    metadata: { name: 'r2', namespace: 'ns' },
    spec: { parentRefs: [{ name: 'gw' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] },
  };
  const { routes, problems } = routeEntriesFrom([ok, gatewayParent], [], [svc]);
  assert.deepEqual(
    routes.map((r) => r.name),
    ['r1'],
  );
  assert.ok(problems.has('HTTPRoute ns/r2'), [...problems.keys()].join());
});

void test('deploymentOf: the controlling ReplicaSet less the pod-template-hash; nothing for other owners', () => {
  const pod = (owner: { kind: string; name: string; controller?: boolean } | undefined, hash?: string) => ({
    metadata: {
      name: 'x',
      ...(hash !== undefined ? { labels: { 'pod-template-hash': hash } } : {}),
      ...(owner !== undefined ? { ownerReferences: [{ controller: true, ...owner }] } : {}),
    },
  });
  assert.equal(deploymentOf(pod({ kind: 'ReplicaSet', name: 'web-7d9f8b6c5' }, '7d9f8b6c5')), 'web');
  assert.equal(deploymentOf(pod({ kind: 'ReplicaSet', name: 'my-app-v2-5c4b8f' }, '5c4b8f')), 'my-app-v2');
  assert.equal(deploymentOf(pod({ kind: 'ReplicaSet', name: 'bare-rs' })), undefined, 'a ReplicaSet of its own');
  assert.equal(deploymentOf(pod({ kind: 'ReplicaSet', name: 'other-1234' }, '5678')), undefined);
  assert.equal(deploymentOf(pod({ kind: 'StatefulSet', name: 'db' }, 'abc')), undefined);
  assert.equal(
    deploymentOf(pod({ kind: 'ReplicaSet', name: 'web-abc', controller: false }, 'abc')),
    undefined,
    'not the controller',
  );
  assert.equal(deploymentOf(pod(undefined)), undefined);
});

void test("podEntry: declared TCP ports of the app and its native sidecars (not the proxy's); none: absent", () => {
  const base = { metadata: { name: 'p', namespace: 'ns' }, status: { podIP: '10.0.0.1', phase: 'Running' } };
  const spec = {
    initContainers: [
      { name: 'outrigger-proxy', restartPolicy: 'Always', ports: [{ name: 'outrigger-admin', containerPort: 4191 }] },
      { name: 'log-shipper', restartPolicy: 'Always', ports: [{ name: 'metrics', containerPort: 9102 }] },
      { name: 'migrate', ports: [{ containerPort: 1 }] },
    ],
    containers: [
      {
        name: 'app',
        ports: [
          { name: 'http', containerPort: 8080, protocol: 'TCP' },
          { name: 'dns', containerPort: 53, protocol: 'UDP' },
          { containerPort: 9000 },
        ],
      },
    ],
  };
  assert.deepEqual(podEntry({ ...base, spec }, {})?.ports, [
    { name: 'http', containerPort: 8080 },
    { containerPort: 9000 },
    { name: 'metrics', containerPort: 9102 },
  ]);
  assert.equal(podEntry({ ...base, spec: { containers: [{ name: 'app' }] } }, {})?.ports, undefined);
  assert.equal('ports' in (podEntry({ ...base, spec: { containers: [{ name: 'app' }] } }, {}) ?? {}), false);
});

void test('routeEntriesFrom: an inbound route (a Server parent) is kept for the policy service', () => {
  const r = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'api-admin', namespace: 'shop', uid: 'u', managedFields: [] },
    spec: {
      parentRefs: [{ group: 'policy.outrigger.io', kind: 'Server', name: 'api-http' }],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/admin' }, method: 'POST' }] }],
    },
  };
  const { routes, problems } = routeEntriesFrom([r], [], []);
  assert.deepEqual(problems.size, 0);
  assert.deepEqual(routes[0]?.parents, [{ name: 'api-http', kind: 'Server' }]);
});

void test('policyEntriesFrom: API objects (with what the API server adds) normalised as the local runtime does; bad ones left out with their problems', async () => {
  const { policyEntriesFrom } = await import('./convert.js');
  const meta = (name: string) => ({
    name,
    namespace: 'shop',
    uid: 'u',
    resourceVersion: '7',
    generation: 1,
    creationTimestamp: '2026-01-01T00:00:00Z',
    managedFields: [{ manager: 'kubectl' }],
    annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
  });
  const server = {
    apiVersion: 'policy.outrigger.io/v1beta1',
    kind: 'Server',
    metadata: meta('api-http'),
    spec: { podSelector: { matchLabels: { app: 'api' } }, port: 'http' },
  };
  const authz = {
    apiVersion: 'policy.outrigger.io/v1beta1',
    kind: 'AuthorizationPolicy',
    metadata: meta('both'),
    spec: {
      targetRef: { kind: 'Server', name: 'api-http' },
      requiredAuthenticationRefs: [
        { kind: 'ServiceAccount', name: 'a' },
        { kind: 'MeshTLSAuthentication', name: 'm' },
      ],
    },
  };
  const oldVersion = { ...server, apiVersion: 'policy.outrigger.io/v1alpha1', metadata: meta('old') };
  const { policy, count, problems } = policyEntriesFrom({ Server: [server, oldVersion], AuthorizationPolicy: [authz] });
  assert.equal(count, 1);
  assert.deepEqual(policy.servers, [
    {
      namespace: 'shop',
      name: 'api-http',
      podSelector: { matchLabels: { app: 'api' }, matchExpressions: [] },
      port: 'http',
      proxyProtocol: 'unknown',
    },
  ]);
  assert.deepEqual([...problems.keys()].sort(), ['AuthorizationPolicy shop/both', 'Server shop/old']);
  assert.match(
    problems.get('AuthorizationPolicy shop/both')?.[0] ?? '',
    /names both ServiceAccounts and a MeshTLSAuthentication/,
  );
});
