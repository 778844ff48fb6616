// The Kubernetes store against an API server stand-in that speaks the list/watch protocol (see
// kube-apiserver.ts): the shared store contract, then what is particular to watching an API server:
// recorded API objects, 410 Gone and relists, bookmarks, failures and backoff, missing CRDs, the pod
// binding of tokens and TokenReview.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { formatPortList } from '../src/core/ports.js';
import { pino } from 'pino';
import { samplePolicy, storeContract } from '../src/control/store/contract.js';
import { KubernetesStore, RESOURCES } from '../src/control/store/kubernetes/kubernetes.js';
import { KubernetesTokenReviewer } from '../src/control/identity/token-review.js';
import type { PodEntry, PolicyEntries, ServiceEntry, StoreSnapshot } from '../src/control/store/store.js';
import { FakeApiServer, kubeConfigFor, type Obj } from './kube-apiserver.js';
import { waitFor } from './basics.js';

const FIXTURES = new URL('../../test/fixtures/kube/', import.meta.url);

/** The policy objects a cluster would hold for normalised policy entries, as `kubectl apply` leaves
 *  them (the API server adds uid and resourceVersion). */
function policyObjects(policy: PolicyEntries): Obj[] {
  const obj = (kind: string, namespace: string, name: string, spec: unknown): Obj => ({
    apiVersion: 'policy.outrigger.io/v1beta1',
    kind,
    metadata: {
      name,
      namespace,
      generation: 1,
      creationTimestamp: '2026-11-25T10:00:00Z',
      annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' },
    },
    spec,
  });
  const targetGroup = {
    Server: 'policy.outrigger.io',
    HTTPRoute: 'gateway.networking.k8s.io',
    GRPCRoute: 'gateway.networking.k8s.io',
    Namespace: '',
  } as const;
  return [
    ...policy.servers.map((x) =>
      obj('Server', x.namespace, x.name, { podSelector: x.podSelector, port: x.port, proxyProtocol: x.proxyProtocol }),
    ),
    ...policy.authorizationPolicies.map((x) =>
      obj('AuthorizationPolicy', x.namespace, x.name, {
        targetRef: { group: targetGroup[x.target.kind], kind: x.target.kind, name: x.target.name },
        requiredAuthenticationRefs: x.authentications.map((r) => ({
          kind: r.kind,
          name: r.name,
          ...(r.namespace !== x.namespace ? { namespace: r.namespace } : {}),
        })),
      }),
    ),
    ...policy.meshTLSAuthentications.map((x) =>
      obj('MeshTLSAuthentication', x.namespace, x.name, {
        identities: x.identities,
        identityRefs: x.identityRefs.map((r) =>
          r.kind === 'Namespace'
            ? { kind: r.kind, name: r.name }
            : { kind: r.kind, name: r.name, namespace: r.namespace },
        ),
      }),
    ),
    ...policy.networkAuthentications.map((x) =>
      obj('NetworkAuthentication', x.namespace, x.name, { networks: x.networks }),
    ),
    ...policy.rateLimits.map((x) =>
      obj('HTTPLocalRateLimitPolicy', x.namespace, x.name, {
        targetRef: { group: 'policy.outrigger.io', kind: 'Server', name: x.server },
        ...(x.total !== undefined ? { total: { requestsPerSecond: x.total } } : {}),
        ...(x.identity !== undefined ? { identity: { requestsPerSecond: x.identity } } : {}),
        overrides: x.overrides.map((o) => ({
          requestsPerSecond: o.requestsPerSecond,
          clientRefs: o.serviceAccounts.map((sa) => ({
            kind: 'ServiceAccount',
            name: sa.name,
            namespace: sa.namespace,
          })),
        })),
      }),
    ),
  ];
}

/** The API objects a cluster would hold for the store content (what the contract suite sets). */
function objectsFor(content: {
  services: readonly ServiceEntry[];
  pods: readonly PodEntry[];
  policy?: PolicyEntries;
}): Obj[] {
  const namespaces = new Set([
    'default',
    ...content.pods.map((p) => p.namespace),
    ...content.services.map((s) => s.namespace),
  ]);
  const out: Obj[] = [...namespaces].map((name) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } }));
  for (const p of content.pods) {
    const annotations = {
      ...(p.opaquePorts.length > 0 ? { 'config.outrigger.io/opaque-ports': formatPortList(p.opaquePorts) } : {}),
      ...(p.defaultInboundPolicy !== undefined
        ? { 'config.outrigger.io/default-inbound-policy': p.defaultInboundPolicy }
        : {}),
    };
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels }, annotations },
      spec: {
        serviceAccountName: p.serviceAccount,
        ...(p.meshed
          ? {
              initContainers: [
                {
                  name: 'outrigger-proxy',
                  image: 'outrigger',
                  restartPolicy: 'Always',
                  ports: [{ name: 'outrigger-admin', containerPort: 4191, protocol: 'TCP' }],
                },
              ],
            }
          : {}),
        containers: [
          {
            name: 'app',
            image: 'app',
            ...(p.ports !== undefined ? { ports: p.ports.map((x) => ({ ...x, protocol: 'TCP' })) } : {}),
          },
        ],
      },
      status: { phase: 'Running', podIP: p.ip, conditions: [{ type: 'Ready', status: p.ready ? 'True' : 'False' }] },
    });
  }
  for (const s of content.services) {
    out.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: s.namespace },
      spec: {
        clusterIP: s.clusterIP,
        ports: s.ports.map((p) => ({
          ...(p.name !== undefined ? { name: p.name } : {}),
          port: p.port,
          protocol: 'TCP',
          ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
        })),
      },
    });
    const targetPorts = new Map<string, number>();
    for (const e of s.endpoints)
      for (const p of s.ports) {
        const t = e.ports[p.port];
        if (t !== undefined) targetPorts.set(p.name ?? '', t);
      }
    out.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${s.name}-abcde`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: 'IPv4',
      endpoints: s.endpoints.map((e) => {
        const [ns, name] = e.pod.split('/');
        return { addresses: [e.ip], conditions: { ready: e.ready }, targetRef: { kind: 'Pod', namespace: ns, name } };
      }),
      ports: [...targetPorts].map(([name, port]) => ({ name, port, protocol: 'TCP' })),
    });
  }
  if (content.policy !== undefined) out.push(...policyObjects(content.policy));
  return out;
}

async function startStore(
  api: FakeApiServer,
  extra: { coalesceMs?: number; backoff?: { initialMs: number; maxMs: number }; absentRetryMs?: number } = {},
) {
  const url = await api.listen();
  const store = new KubernetesStore({
    kubeConfig: kubeConfigFor(url),
    coalesceMs: 5,
    backoff: { initialMs: 20, maxMs: 200 },
    ...extra,
  }).start();
  return store;
}

function caughtUp(store: KubernetesStore, api: FakeApiServer): boolean {
  const p = store.progress();
  return !p.pending && Object.values(p.resourceVersions).every((rv) => Number(rv) >= api.resourceVersion);
}

storeContract('KubernetesStore (API server stand-in)', async () => {
  const api = new FakeApiServer({ bookmarkMs: 50 });
  const store = await startStore(api);
  await store.ready;
  return {
    store,
    // Written to the API server, then delivered: every informer has reached the server's current
    // resourceVersion (events, or the bookmarks that follow them on the same stream) and the snapshot
    // is computed. The contract then checks what that snapshot holds.
    set: async (content) => {
      api.replaceAll(objectsFor(content));
      const target = api.resourceVersion;
      await waitFor('the store to catch up with the API server', () => {
        const p = store.progress();
        return !p.pending && Object.values(p.resourceVersions).every((rv) => Number(rv) >= target) ? true : undefined;
      });
    },
    close: async () => {
      await store.close();
      await api.close();
    },
  };
});

async function recorded(): Promise<Obj[]> {
  const text = await readFile(new URL('recorded.json', FIXTURES), 'utf8');
  return (JSON.parse(text) as { items: Obj[] }).items;
}

void test('KubernetesStore: recorded API objects become Services, endpoints, pods and routes', async () => {
  const api = new FakeApiServer();
  for (const o of await recorded()) api.put(o);
  const store = await startStore(api);
  try {
    await store.ready;
    // Every informer's list is the server's current state; each resource is its own stream, so wait
    // for all of them (and the snapshot computed after), not for the first one to show.
    await waitFor('the store to catch up', () => (caughtUp(store, api) ? true : undefined));
    const s = store.snapshot();
    const web = s.services.find((x) => x.name === 'web');
    assert.deepEqual(web, {
      namespace: 'shop',
      name: 'web',
      clusterIP: '10.96.112.7',
      ports: [
        { name: 'http', port: 80, appProtocol: 'http' },
        { name: 'redis', port: 6379, opaque: true },
      ],
      endpoints: [
        { pod: 'shop/web-7d9f8b6c5-4xk2p', ip: '10.244.1.12', ports: { 80: 8080, 6379: 6379 }, ready: true },
        { pod: 'shop/web-7d9f8b6c5-9qz8m', ip: '10.244.2.9', ports: { 80: 8080, 6379: 6379 }, ready: false },
      ],
    });
    assert.equal(
      s.services.find((x) => x.name === 'headless'),
      undefined,
      'headless Services have no virtual IP',
    );
    const pod = s.pods.find((p) => p.name === 'web-7d9f8b6c5-4xk2p');
    assert.deepEqual(pod, {
      namespace: 'shop',
      name: 'web-7d9f8b6c5-4xk2p',
      ip: '10.244.1.12',
      ready: true,
      meshed: true,
      serviceAccount: 'web',
      // From the namespace's annotation (the pod has none).
      opaquePorts: [{ from: 6379, to: 6379 }],
      labels: { app: 'web', 'pod-template-hash': '7d9f8b6c5' },
      ports: [
        { name: 'http', containerPort: 8080 },
        { name: 'redis', containerPort: 6379 },
      ],
      // Its ReplicaSet web-7d9f8b6c5, less the pod-template-hash: the Deployment.
      workload: 'web',
    });
    assert.equal(
      s.pods.find((p) => p.name === 'web-7d9f8b6c5-9qz8m')?.workload,
      undefined,
      'no owner recorded: no workload',
    );
    assert.equal(
      s.pods.find((p) => p.name === 'pending-0'),
      undefined,
      'a pod without an IP is not listed',
    );
    assert.equal(s.pods.find((p) => p.name === 'web-7d9f8b6c5-9qz8m')?.ready, false);
    assert.equal(s.routes?.length, 1);
    assert.deepEqual(s.routes?.[0]?.parents, [{ name: 'web', port: 80 }]);
    assert.deepEqual(s.routes?.[0]?.rules[0]?.backends, [
      { name: 'web', port: 80, weight: 90 },
      { name: 'web-canary', port: 80, weight: 10 },
    ]);
    assert.equal(store.namespaceAnnotations('shop')?.['outrigger.io/inject'], 'enabled');
    assert.equal(
      store.podExists('shop', { name: 'web-7d9f8b6c5-4xk2p', uid: '5b0c1f0e-8a51-4a43-9d5e-3f7f2a0c9b11' }),
      true,
    );
    assert.equal(
      store.podExists('shop', { name: 'web-7d9f8b6c5-4xk2p', uid: 'another-uid' }),
      false,
      'a recreated pod has a new uid',
    );
  } finally {
    await store.close();
    await api.close();
  }
});

void test('KubernetesStore: watches resume from the resourceVersion; 410 Gone forces a relist that drops what was deleted meanwhile', async () => {
  const api = new FakeApiServer({ bookmarkMs: 20 });
  const store = await startStore(api, { coalesceMs: 2 });
  try {
    await store.ready;
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default' } });
    const pod = (name: string, ip: string): Obj => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'default' },
      spec: { containers: [{ name: 'a', image: 'a' }] },
      status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
    });
    api.put(pod('a', '10.244.0.2'));
    api.put(pod('b', '10.244.0.3'));
    await waitFor('two pods', () => (store.snapshot().pods.length === 2 ? true : undefined));
    // Bookmarks advance the informer's resourceVersion; a watch that ends resumes from it, not from 0.
    await new Promise((r) => setTimeout(r, 60));
    const before = api.requests.filter((r) => r.path === '/api/v1/pods' && !r.query.has('watch')).length;
    api.closeWatches();
    await waitFor('the pod watch to reopen', () => (api.openWatches('/api/v1/pods') === 1 ? true : undefined));
    const rewatch = api.requests.filter((r) => r.path === '/api/v1/pods' && r.query.get('watch') === 'true').at(-1);
    assert.ok(
      Number(rewatch?.query.get('resourceVersion')) >= 103,
      `resumed from ${rewatch?.query.get('resourceVersion')}`,
    );
    assert.equal(
      api.requests.filter((r) => r.path === '/api/v1/pods' && !r.query.has('watch')).length,
      before,
      'no relist after a normal end',
    );

    // Deleted while the history is compacted: only a relist can show it.
    api.partitioned = true;
    api.delete(pod('b', ''));
    api.put(pod('c', '10.244.0.4'));
    api.compact(true);
    api.partitioned = false;
    await waitFor('the relist to show c and drop b', () => {
      const names = store
        .snapshot()
        .pods.map((p) => p.name)
        .sort()
        .join(',');
      return names === 'a,c' ? true : undefined;
    });
    assert.ok(
      api.requests.filter((r) => r.path === '/api/v1/pods' && !r.query.has('watch')).length > before,
      'listed again after 410 Gone',
    );
  } finally {
    await store.close();
    await api.close();
  }
});

void test('KubernetesStore: a failing list or watch is retried with backoff; the snapshot survives', async () => {
  const api = new FakeApiServer();
  api.put({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'a', namespace: 'default' },
    spec: { containers: [] },
    status: { podIP: '10.244.0.2', conditions: [] },
  });
  api.failNext('/api/v1/pods', 500);
  api.failNext('/api/v1/pods', 503);
  const store = await startStore(api);
  try {
    await store.ready;
    assert.ok((store.restarts.get('pods') ?? 0) >= 2);
    await waitFor('the pod', () => (store.snapshot().pods.length === 1 ? true : undefined));
    const seen: StoreSnapshot[] = [];
    store.subscribe((s) => seen.push(s));
    api.failNext('/api/v1/pods', 500, true);
    api.closeWatches();
    await waitFor('the watch back', () => (api.openWatches('/api/v1/pods') === 1 ? true : undefined));
    assert.equal(store.snapshot().pods.length, 1);
    api.put({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'b', namespace: 'default' },
      spec: { containers: [] },
      status: { podIP: '10.244.0.3', conditions: [] },
    });
    await waitFor('the new pod', () => (store.snapshot().pods.length === 2 ? true : undefined));
  } finally {
    await store.close();
    await api.close();
  }
});

void test('KubernetesStore: policy objects are checked as the local runtime checks them; one that fails is left out, logged once, and taken in once fixed', async () => {
  const api = new FakeApiServer({ bookmarkMs: 20 });
  const lines: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
  const url = await api.listen();
  const store = new KubernetesStore({
    kubeConfig: kubeConfigFor(url),
    coalesceMs: 2,
    backoff: { initialMs: 20, maxMs: 200 },
    log,
  }).start();
  try {
    await store.ready;
    const good = policyObjects(samplePolicy());
    // Unknown field, a rule of checkPolicy (an exception outside its network), a wrong version.
    const typo: Obj = {
      apiVersion: 'policy.outrigger.io/v1beta1',
      kind: 'Server',
      metadata: { name: 'typo', namespace: 'default' },
      spec: { podSelector: {}, port: 80, protocl: 'HTTP/1' },
    };
    const outside: Obj = {
      apiVersion: 'policy.outrigger.io/v1beta1',
      kind: 'NetworkAuthentication',
      metadata: { name: 'outside', namespace: 'default' },
      spec: { networks: [{ cidr: '10.0.0.0/8', except: ['192.168.0.0/16'] }] },
    };
    for (const o of [...good, typo, outside]) api.put(o);
    await waitFor('the store to catch up', () => (caughtUp(store, api) ? true : undefined));
    const s = store.snapshot();
    assert.deepEqual(s.policy, samplePolicy(), 'the valid ones, normalised as the local runtime normalises them');
    await waitFor('both problems logged', () => (lines.length >= 2 ? true : undefined));
    const logged = lines.map((l) => JSON.parse(l) as { object: string; problems: string[] });
    assert.deepEqual(logged.map((l) => l.object).sort(), [
      'NetworkAuthentication default/outside',
      'Server default/typo',
    ]);
    assert.match(
      logged.find((l) => l.object === 'NetworkAuthentication default/outside')?.problems[0] ?? '',
      /192\.168\.0\.0\/16 is not inside 10\.0\.0\.0\/8/,
    );
    // Other changes recompute the snapshot; the same problems are not logged again.
    api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(lines.length, 2);
    api.put({ ...typo, spec: { podSelector: {}, port: 80, proxyProtocol: 'HTTP/1' } });
    await waitFor('the fixed Server', () =>
      store.snapshot().policy?.servers.some((x) => x.name === 'typo') === true ? true : undefined,
    );
    for (const o of [...good, outside]) api.delete(o);
    await waitFor('only the fixed Server left', () =>
      store
        .snapshot()
        .policy?.servers.map((x) => x.name)
        .join() === 'typo' && store.snapshot().policy?.authorizationPolicies.length === 0
        ? true
        : undefined,
    );
  } finally {
    await store.close();
    await api.close();
  }
});

void test("KubernetesStore: the default inbound policy is the pod's annotation, else its namespace's; a bad value is ignored", async () => {
  const api = new FakeApiServer();
  const annotation = 'config.outrigger.io/default-inbound-policy';
  api.put({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'locked', annotations: { [annotation]: 'all-authenticated' } },
  });
  api.put({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'open' } });
  const pod = (namespace: string, name: string, ip: string, annotations: Record<string, string> = {}): Obj => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, annotations },
    spec: { containers: [{ name: 'a', image: 'a' }] },
    status: { phase: 'Running', podIP: ip, conditions: [{ type: 'Ready', status: 'True' }] },
  });
  api.put(pod('locked', 'inherits', '10.244.0.2'));
  api.put(pod('locked', 'own', '10.244.0.3', { [annotation]: 'deny' }));
  api.put(pod('locked', 'bad', '10.244.0.4', { [annotation]: 'nobody' }));
  api.put(pod('open', 'plain', '10.244.0.5'));
  const store = await startStore(api);
  try {
    await store.ready;
    const s = await waitFor('four pods', () => (store.snapshot().pods.length === 4 ? store.snapshot() : undefined));
    const of = (name: string) => s.pods.find((p) => p.name === name)?.defaultInboundPolicy;
    assert.equal(of('inherits'), 'all-authenticated');
    assert.equal(of('own'), 'deny');
    assert.equal(of('bad'), 'all-authenticated');
    assert.equal(of('plain'), undefined, "the mesh's default then (the policy service's setting)");
  } finally {
    await store.close();
    await api.close();
  }
});

void test('KubernetesStore: CRDs that are not installed do not hold up readiness, and are picked up later', async () => {
  const api = new FakeApiServer();
  const routes = RESOURCES.filter((r) => r.optional).map((r) => r.path);
  for (const p of routes) api.absent.add(p);
  const store = await startStore(api, { absentRetryMs: 50 });
  try {
    await store.ready;
    assert.equal(store.snapshot().routes, undefined);
    api.absent.clear();
    for (const o of await recorded()) api.put(o);
    await waitFor('the route once the CRD exists', () => (store.snapshot().routes?.length === 1 ? true : undefined));
    assert.equal(store.snapshot().policy, undefined);
    for (const o of policyObjects(samplePolicy())) api.put(o);
    await waitFor('the policy once its CRDs exist', () =>
      store.snapshot().policy?.rateLimits.length === 1 ? true : undefined,
    );
  } finally {
    await store.close();
    await api.close();
  }
});

void test('KubernetesTokenReviewer: TokenReview with the audience, then the pod binding', async () => {
  const api = new FakeApiServer();
  for (const o of await recorded()) api.put(o);
  const store = await startStore(api);
  const seen: unknown[] = [];
  api.tokenReview = (body) => {
    seen.push(body.spec);
    if (body.spec?.token === 'good' || body.spec?.token === 'stale') {
      return {
        status: {
          authenticated: true,
          audiences: body.spec.audiences,
          user: {
            username: 'system:serviceaccount:shop:web',
            extra: {
              'authentication.kubernetes.io/pod-name': ['web-7d9f8b6c5-4xk2p'],
              'authentication.kubernetes.io/pod-uid': [
                body.spec.token === 'good' ? '5b0c1f0e-8a51-4a43-9d5e-3f7f2a0c9b11' : 'old-uid',
              ],
            },
          },
        },
      };
    }
    if (body.spec?.token === 'unbound')
      return {
        status: {
          authenticated: true,
          audiences: body.spec.audiences,
          user: { username: 'system:serviceaccount:shop:web' },
        },
      };
    return { status: { authenticated: false, error: 'invalid bearer token' } };
  };
  try {
    await store.ready;
    const reviewer = new KubernetesTokenReviewer({
      kubeConfig: store['o'].kubeConfig,
      audience: 'identity.outrigger.io',
      podExists: (ns, p) => store.podExists(ns, p),
    });
    assert.deepEqual(await reviewer.review('good'), {
      namespace: 'shop',
      serviceAccount: 'web',
      pod: { name: 'web-7d9f8b6c5-4xk2p', uid: '5b0c1f0e-8a51-4a43-9d5e-3f7f2a0c9b11' },
    });
    assert.deepEqual(seen[0], { token: 'good', audiences: ['identity.outrigger.io'] });
    await assert.rejects(
      reviewer.review('bad'),
      (e: Error & { tokenProblem?: string }) =>
        e.tokenProblem === 'bad-signature' && !e.message.includes('bad'.repeat(2)),
    );
    await assert.rejects(
      reviewer.review('stale'),
      (e: Error & { tokenProblem?: string }) => e.tokenProblem === 'pod-not-found',
    );
    await assert.rejects(
      reviewer.review('unbound'),
      (e: Error & { tokenProblem?: string }) => e.tokenProblem === 'missing-claims',
    );
    await assert.rejects(reviewer.review(''), (e: Error & { tokenProblem?: string }) => e.tokenProblem === 'missing');
  } finally {
    await store.close();
    await api.close();
  }
});
