// End-to-end, as root: `outrigger apply -f` of a file that holds one changed object of a running mesh
// (an HTTPRoute whose Namespace and Services came from the file given to `up`) is checked against the
// running mesh, not on its own; what it takes over is named as a user names it; a reference that
// nothing holds is still refused, naming the file and the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { show } from './root-helpers.js';
import { meshTest, type MeshStatus } from './mesh-harness.js';

const MESH = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {outrigger.io/inject: disabled}
spec:
  containers: [{name: app, command: [sleep, infinity], ports: [{containerPort: 8080}]}]
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

void test('apply of one changed route is checked against the running mesh', { timeout: 180_000 }, async (t) => {
  const mesh = await meshTest(t, 'runtime-apply', { what: 'the end-to-end apply test' });
  if (mesh === undefined) return;
  await mesh.up(MESH);
  const meshFile = mesh.file;

  const routeFile = await mesh.write('route.yaml', route('web-v2'));
  const ok = await mesh.cli(['apply', '-f', routeFile]);
  assert.equal(ok.code, 0, show(ok));
  assert.ok(ok.stdout.includes(`taken over: httproute shop/web from ${meshFile}\n`), show(ok));
  // The mesh's status (state.json) shows the new version of the route.
  const state = JSON.parse(await readFile(join(mesh.stateDir, 'state.json'), 'utf8')) as MeshStatus;
  const web = state.routes?.find((r) => r.namespace === 'shop' && r.name === 'web');
  assert.deepEqual(
    web?.backends.map((b) => b.service),
    ['web', 'web-v2'],
  );

  const badFile = await mesh.write('bad-route.yaml', route('web-v3'));
  const bad = await mesh.cli(['apply', '-f', badFile]);
  assert.notEqual(bad.code, 0, show(bad));
  assert.match(bad.stderr, /refused, nothing changed/, show(bad));
  const field = 'spec\\.rules\\[0\\]\\.backendRefs\\[1\\]\\.name';
  const where = new RegExp(`bad-route\\.yaml: document 1 \\(HTTPRoute shop/web\\): ${field}: .*web-v3`);
  assert.match(bad.stderr, where, show(bad));
  assert.doesNotMatch(bad.stderr, /namespace "shop" does not exist/, show(bad));
});
