import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests } from './load.js';
import { ManifestError, formatProblem } from '../../manifests/errors.js';
import { applyOver, objectName, takeOver } from './takeover.js';

const pod = (name: string, ns?: string) =>
  `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}${ns !== undefined ? `, namespace: ${ns}` : ''}}\nspec:\n  containers: [{name: c, command: [sleep, infinity]}]\n`;

void test('a file applied later takes over the objects it shares with earlier files', () => {
  const earlier = new Map([
    ['/a.yaml', { file: 'a.yaml', text: [pod('one'), pod('two'), pod('three', 'other')].join('---\n') }],
    ['/b.yaml', { file: 'b.yaml', text: pod('solo') }],
  ]);
  const applied = new Map([['/c.yaml', { file: 'c.yaml', text: [pod('two'), pod('solo')].join('---\n') }]]);
  const { sources, moved } = takeOver(earlier, applied);
  assert.deepEqual(moved.sort(), ['pod default/solo from b.yaml', 'pod default/two from a.yaml']);
  assert.deepEqual([...sources.keys()].sort(), ['/a.yaml', '/c.yaml'], 'a file left with nothing is dropped');
  const set = parseManifests([...sources.values()], { knownNamespaces: ['default', 'other'] });
  assert.deepEqual(set.pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}@${p.source.file}`).sort(), [
    'default/one@a.yaml',
    'default/solo@c.yaml',
    'default/two@c.yaml',
    'other/three@a.yaml',
  ]);
});

void test('the same file applied again replaces itself; a same name in another namespace is another object', () => {
  const earlier = new Map([['/a.yaml', { file: 'a.yaml', text: [pod('one'), pod('one', 'other')].join('---\n') }]]);
  const { sources, moved } = takeOver(earlier, new Map([['/a.yaml', { file: 'a.yaml', text: pod('one') }]]));
  assert.deepEqual(moved, []);
  assert.equal(sources.get('/a.yaml')?.text, pod('one'));
  const { moved: m2 } = takeOver(earlier, new Map([['/b.yaml', { file: 'b.yaml', text: pod('one', 'other') }]]));
  assert.deepEqual(m2, ['pod other/one from a.yaml']);
});

// A mesh brought up from one file: a Namespace, a ServiceAccount, Services, a Server, a route.
const UP = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: web, namespace: shop}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  serviceAccountName: web
  containers: [{name: c, command: [sleep, infinity], ports: [{containerPort: 8080}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: policy.outrigger.io/v1beta1
kind: Server
metadata: {name: web-http, namespace: shop}
spec: {podSelector: {matchLabels: {app: web}}, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: web, kind: Service, group: core}]
  rules: [{backendRefs: [{name: web, port: 80}]}]
`;

const route = (backend: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: web, kind: Service, group: core}]
  rules: [{backendRefs: [{name: web, port: 80, weight: 50}, {name: ${backend}, port: 80, weight: 50}]}]
`;

const problemsOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (e) {
    if (e instanceof ManifestError) return e.problems.map(formatProblem);
    throw e;
  }
  return [];
};

void test("an applied file is checked with the running mesh's objects: it may name what earlier files hold", () => {
  const earlier = new Map([['/work/mesh.yaml', { file: 'mesh.yaml', text: UP }]]);
  const policy = `apiVersion: policy.outrigger.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: web-allow, namespace: shop}
spec:
  targetRef: {kind: Server, name: web-http}
  requiredAuthenticationRefs: [{kind: ServiceAccount, name: web}]
`;
  const pod = `apiVersion: v1
kind: Pod
metadata: {name: client, namespace: shop}
spec:
  serviceAccountName: web
  containers: [{name: c, command: [sleep, infinity]}]
`;
  const applied = new Map([
    ['/work/route.yaml', { file: 'route.yaml', text: route('web-v2') }],
    ['/work/policy.yaml', { file: 'policy.yaml', text: policy }],
    ['/work/client.yaml', { file: 'client.yaml', text: pod }],
  ]);
  // On its own, the route file names a Namespace and Services it does not hold.
  assert.ok(problemsOf(() => parseManifests([{ file: 'route.yaml', text: route('web-v2') }])).length > 0);
  const { moved, set } = applyOver(earlier, applied);
  assert.deepEqual(moved, ['httproute shop/web from mesh.yaml']);
  assert.equal(set.httpRoutes?.length, 1, 'the new version replaces the old one');
  assert.equal(set.httpRoutes?.[0]?.source.file, 'route.yaml');
  assert.deepEqual(
    set.httpRoutes?.[0]?.spec.rules[0]?.backendRefs.map((b) => b.name),
    ['web', 'web-v2'],
  );
  assert.deepEqual(set.services.map((s) => s.metadata.name).sort(), ['web', 'web-v2']);
  assert.equal(set.policies?.length, 2);
  assert.deepEqual(set.pods.map((p) => p.metadata.name).sort(), ['client', 'web']);
});

void test('a reference that neither the mesh nor the applied files hold is refused, naming file and field', () => {
  const earlier = new Map([['/work/mesh.yaml', { file: 'mesh.yaml', text: UP }]]);
  const applied = new Map([['/work/route.yaml', { file: 'route.yaml', text: route('web-v3') }]]);
  const problems = problemsOf(() => applyOver(earlier, applied));
  assert.equal(problems.length, 1, problems.join('\n'));
  const at = /^route\.yaml: document 1 \(HTTPRoute shop\/web\): spec\.rules\[0\]\.backendRefs\[1\]\.name: /;
  assert.match(problems[0] ?? '', at);
  assert.match(problems[0] ?? '', /web-v3/);
  // A Namespace that an earlier file held and that a new version of that file no longer holds is gone.
  const ns = (name: string) => `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${name}}\n`;
  const noNs = UP.replace(`${ns('shop')}---\n`, '');
  assert.ok(noNs !== UP);
  const before = new Map([
    ['/work/mesh.yaml', { file: 'mesh.yaml', text: noNs }],
    ['/work/ns.yaml', { file: 'ns.yaml', text: ns('shop') }],
  ]);
  const renamed = new Map([['/work/ns.yaml', { file: 'ns.yaml', text: ns('shop2') }]]);
  const again = problemsOf(() => applyOver(before, renamed));
  const gone = (p: string) => p.startsWith('mesh.yaml: ') && p.includes('namespace "shop" does not exist');
  assert.ok(again.some(gone), again.join('\n'));
});

void test('objects are named as a user names them', () => {
  assert.equal(objectName('Namespace', undefined, 'shop'), 'namespace shop');
  assert.equal(objectName('HTTPRoute', 'shop', 'web'), 'httproute shop/web');
  const text = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n';
  const earlier = new Map([['/a.yaml', { file: 'a.yaml', text }]]);
  const { moved } = takeOver(earlier, new Map([['/b.yaml', { file: 'b.yaml', text }]]));
  assert.deepEqual(moved, ['namespace shop from a.yaml']);
});
