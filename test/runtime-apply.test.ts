// End-to-end, as root: `outrigger apply -f` of a file that holds one changed object of a running mesh
// (an HTTPRoute whose Namespace and Services came from the file given to `up`) is checked against the
// running mesh, not on its own; what it takes over is named as a user names it; a reference that
// nothing holds is still refused, naming the file and the field.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, MESH_TOOLS, meshPreconditions, meshWorkDir, show, unavailable as unavailable_ } from './root-helpers.js';
import { sweepBridge } from '../src/runtime/net/index.js';
import type { MeshStatus } from '../src/runtime/mesh.js';

function unavailable(t: TestContext, why: string): void {
  const needs = 'iproute2, iptables, util-linux (setpriv), curl and python3';
  unavailable_(t, 'runtime-apply', 'the end-to-end apply test', why, needs);
}

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
  const why = meshPreconditions(MESH_TOOLS);
  if (why) return unavailable(t, why);

  const tag = (process.pid + 37) % 10000;
  const bridge = `orap${tag}`;
  const work = await meshWorkDir('outrigger-apply-');
  const common = ['--state-dir', join(work, 'state')];
  t.after(async () => {
    await cli(['down', ...common], 60_000).catch(() => undefined);
    await sweepBridge(bridge).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });
  const meshFile = join(work, 'mesh.yaml');
  await writeFile(meshFile, MESH);
  const up = await cli([
    'up', '-f', meshFile, ...common, '--bridge', bridge, '--pod-cidr', `10.243.${process.pid % 250}.0/24`,
    '--service-cidr', `10.98.${process.pid % 250}.0/24`, '--control-port', String(21000 + (tag % 1000)),
  ]);
  assert.equal(up.code, 0, show(up));

  const routeFile = join(work, 'route.yaml');
  await writeFile(routeFile, route('web-v2'));
  const ok = await cli(['apply', '-f', routeFile, ...common]);
  assert.equal(ok.code, 0, show(ok));
  assert.ok(ok.stdout.includes(`taken over: httproute shop/web from ${meshFile}\n`), show(ok));
  // The mesh's status (state.json) shows the new version of the route.
  const state = JSON.parse(await readFile(join(work, 'state', 'state.json'), 'utf8')) as MeshStatus;
  const web = state.routes?.find((r) => r.namespace === 'shop' && r.name === 'web');
  assert.deepEqual(web?.backends.map((b) => b.service), ['web', 'web-v2']);

  const badFile = join(work, 'bad-route.yaml');
  await writeFile(badFile, route('web-v3'));
  const bad = await cli(['apply', '-f', badFile, ...common]);
  assert.notEqual(bad.code, 0, show(bad));
  assert.match(bad.stderr, /refused, nothing changed/, show(bad));
  const field = 'spec\\.rules\\[0\\]\\.backendRefs\\[1\\]\\.name';
  const where = new RegExp(`bad-route\\.yaml: document 1 \\(HTTPRoute shop/web\\): ${field}: .*web-v3`);
  assert.match(bad.stderr, where, show(bad));
  assert.doesNotMatch(bad.stderr, /namespace "shop" does not exist/, show(bad));
});
