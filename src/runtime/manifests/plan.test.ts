import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatPortList } from '../../core/ports.js';
import {
  formatProblem,
  loadManifestFiles,
  ManifestError,
  parseManifests,
  planPods,
  selectPods,
  serviceTargets,
  templateHash,
  TEMPLATE_HASH_LABEL,
} from './index.js';

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const dir = join(root, 'src/runtime/manifests/testdata');

void test('a Deployment expands into <name>-<template hash>-<n>; Pods keep their names', async () => {
  const set = await loadManifestFiles([join(dir, 'valid/web.yaml'), join(dir, 'valid/shop.yaml')]);
  const pods = planPods(set);
  const web = set.deployments[0];
  assert.ok(web);
  const hash = templateHash(web.spec.template);
  assert.match(hash, /^[bcdfghjklmnpqrstvwxz2456789]{10}$/);
  assert.deepEqual(
    pods.map((p) => `${p.namespace}/${p.name}`),
    [`default/web-${hash}-0`, `default/web-${hash}-1`, `default/web-${hash}-2`, 'default/client', 'shop/db'],
  );
  const w1 = pods[1];
  assert.ok(w1);
  assert.equal(w1.hostname, w1.name);
  assert.deepEqual(w1.labels, { app: 'web', tier: 'front', [TEMPLATE_HASH_LABEL]: hash });
  assert.deepEqual(w1.owner, { kind: 'Deployment', name: 'web', templateHash: hash, index: 1 });
  assert.deepEqual(w1.spec.containers[0]?.command, ['python3', '-m', 'http.server']);
  assert.equal(w1.source.file, join(dir, 'valid/web.yaml'));
});

void test('mesh settings: the pod annotation wins over the namespace, field by field; meshed by default', async () => {
  const set = await loadManifestFiles([join(dir, 'valid/web.yaml'), join(dir, 'valid/shop.yaml')]);
  const pods = planPods(set);
  const byName = (n: string) => pods.find((p) => p.name === n || p.name.startsWith(`${n}-`));
  const db = byName('db');
  assert.ok(db);
  assert.equal(db.mesh.inject, true);
  assert.equal(formatPortList(db.mesh.opaquePorts), '5432'); // pod's, not the namespace's 6379
  assert.equal(formatPortList(db.mesh.skipOutboundPorts), '25,587'); // from the namespace
  assert.equal(formatPortList(db.mesh.skipInboundPorts), '');
  assert.equal(byName('client')?.mesh.inject, false);
  assert.equal(formatPortList(byName('web')?.mesh.opaquePorts ?? []), '3306-3310,5432');
});

void test('the template hash ignores key order and replicas, and changes with the template', () => {
  const a = { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'c', command: ['a'] }] } };
  const b = { spec: { containers: [{ command: ['a'], name: 'c' }] }, metadata: { labels: { app: 'x' } } };
  assert.equal(templateHash(a), templateHash(b));
  assert.notEqual(templateHash(a), templateHash({ ...a, spec: { containers: [{ name: 'c', command: ['b'] }] } }));

  const deployment = (replicas: number, cmd: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: api }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api } }
    spec: { containers: [{ name: api, command: [${cmd}] }] }
`;
  const names = (text: string) => planPods(parseManifests([{ file: 'd.yaml', text }])).map((p) => p.name);
  const three = names(deployment(3, './api'));
  assert.equal(three.length, 3);
  assert.deepEqual(names(deployment(1, './api')), three.slice(0, 1));
  assert.notDeepEqual(names(deployment(1, './api2')), three.slice(0, 1));
  assert.deepEqual(names(deployment(0, './api')), []);
});

void test('a Pod named like a Deployment replica is an error naming both', () => {
  const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: { name: api }
spec:
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api } }
    spec: { containers: [{ name: api, command: [./api] }] }
`;
  const set0 = parseManifests([{ file: 'd.yaml', text: deployment }]);
  const replica = planPods(set0)[0]?.name;
  assert.ok(replica);
  const pod = `apiVersion: v1\nkind: Pod\nmetadata: { name: ${replica} }\nspec: { containers: [{ name: a, command: [x] }] }\n`;
  const set = parseManifests([
    { file: 'd.yaml', text: deployment },
    { file: 'p.yaml', text: pod },
  ]);
  assert.throws(
    () => planPods(set),
    (err: unknown) => {
      assert.ok(err instanceof ManifestError);
      assert.deepEqual(err.problems.map(formatProblem), [
        `p.yaml: document 1 (Pod default/${replica}): metadata.name: pod name "default/${replica}" is also the name of replica 0 of Deployment "default/api" in d.yaml document 1`,
      ]);
      return true;
    },
  );
});

void test('a Service selects pods in its namespace by labels; named target ports resolve per pod', () => {
  const text = `
apiVersion: v1
kind: Namespace
metadata: { name: other }
---
apiVersion: v1
kind: Pod
metadata: { name: a, labels: { app: web, v: "1" } }
spec: { containers: [{ name: c, command: [x], ports: [{ name: http, containerPort: 8080 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: b, labels: { app: web, v: "2" } }
spec: { containers: [{ name: c, command: [x], ports: [{ name: http, containerPort: 9090 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: c, labels: { app: web } }
spec: { containers: [{ name: c, command: [x] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: d, namespace: other, labels: { app: web } }
spec: { containers: [{ name: c, command: [x] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: e, labels: { app: db } }
spec: { containers: [{ name: c, command: [x] }] }
---
apiVersion: v1
kind: Service
metadata: { name: web }
spec:
  selector: { app: web }
  ports:
    - { name: http, port: 80, targetPort: http }
    - { name: raw, port: 7000 }
---
apiVersion: v1
kind: Service
metadata: { name: external }
spec:
  ports: [{ port: 443 }]
`;
  const set = parseManifests([{ file: 's.yaml', text }], {});
  const pods = planPods(set);
  const [web, external] = set.services;
  assert.ok(web && external);
  assert.deepEqual(
    selectPods(web, pods).map((p) => p.name),
    ['a', 'b', 'c'],
  );
  assert.deepEqual(
    serviceTargets(web, pods).map((t) => [t.port.name, t.targets.map((x) => `${x.pod.name}:${x.port}`)]),
    [
      ['http', ['a:8080', 'b:9090']], // c has no port named http
      ['raw', ['a:7000', 'b:7000', 'c:7000']],
    ],
  );
  // No selector: no automatic endpoints, as in Kubernetes.
  assert.deepEqual(selectPods(external, pods), []);
});

void test('matchExpressions select as Kubernetes does', () => {
  const text = `
apiVersion: apps/v1
kind: Deployment
metadata: { name: api }
spec:
  selector:
    matchLabels: { app: api }
    matchExpressions:
      - { key: tier, operator: In, values: [back, middle] }
      - { key: canary, operator: DoesNotExist }
  template:
    metadata: { labels: { app: api, tier: back } }
    spec: { containers: [{ name: api, command: [./api] }] }
`;
  assert.equal(planPods(parseManifests([{ file: 'm.yaml', text }])).length, 1);
  const bad = text.replace('tier: back }', 'tier: front }');
  assert.throws(
    () => parseManifests([{ file: 'm.yaml', text: bad }]),
    /spec\.selector: does not match the template's labels/,
  );
});
