import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseManifests, planPods } from './manifests/index.js';
import { fingerprint, planReconcile, podKey, type RunningPod } from './mesh-pods.js';

const deployment = (replicas: number, arg: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, command: [sleep, "${arg}"]}]
`;
const pod = (arg: string) => `apiVersion: v1
kind: Pod
metadata: {name: solo}
spec:
  containers: [{name: c, command: [sleep, "${arg}"]}]
`;

function load(...docs: string[]) {
  const set = parseManifests([{ file: 'm.yaml', text: docs.join('---\n') }]);
  return { set, plans: planPods(set) };
}

/** Running pods as the plans say (no processes or network: the plan never touches them). */
function running(...docs: string[]): Map<string, RunningPod> {
  const { plans } = load(...docs);
  const fake = (p: (typeof plans)[number]): RunningPod =>
    ({ plan: p, uid: podKey(p), fingerprint: fingerprint(p), terminating: false }) as unknown as RunningPod;
  return new Map(plans.map((p) => [podKey(p), fake(p)]));
}

const names = (xs: readonly { readonly name: string }[]) => xs.map((x) => x.name).sort();

void test('plans the mesh already runs change nothing', () => {
  const { set, plans } = load(deployment(2, '10'), pod('10'));
  const r = planReconcile(running(deployment(2, '10'), pod('10')), plans, set.deployments);
  assert.equal(r.unchanged, 3);
  assert.deepEqual([r.creates.length, r.replaces.length, r.deletes.length, r.rollouts.size], [0, 0, 0, 0]);
});

void test('a changed template rolls the Deployment: each new pod paired with an old one', () => {
  const { set, plans } = load(deployment(2, '20'), pod('10'));
  const r = planReconcile(running(deployment(2, '10'), pod('10')), plans, set.deployments);
  assert.equal(r.unchanged, 1);
  assert.deepEqual([r.creates.length, r.replaces.length, r.deletes.length], [0, 0, 0]);
  const ro = r.rollouts.get('default/web');
  assert.equal(ro?.news.length, 2);
  assert.equal(ro?.olds.length, 2);
  assert.ok(ro?.olds.every((o) => o.plan.owner?.templateHash !== ro.news[0]?.owner?.templateHash));
});

void test('a scale-down removes, a scale-up creates, a bare pod whose spec changed is replaced', () => {
  const before = running(deployment(2, '10'), pod('10'));
  const down = load(deployment(1, '10'), pod('20'));
  const r = planReconcile(before, down.plans, down.set.deployments);
  assert.deepEqual(
    r.deletes.map((d) => d.plan.owner?.index),
    [1],
    'the highest replica goes',
  );
  assert.deepEqual(names(r.replaces), ['solo']);
  assert.equal(r.rollouts.size, 0);
  const up = load(deployment(3, '10'), pod('10'));
  const u = planReconcile(before, up.plans, up.set.deployments);
  assert.equal(u.creates.length, 1);
  assert.equal(u.creates[0]?.owner?.index, 2);
  assert.equal(u.unchanged, 3);
});

void test('a pod being removed is not removed twice', () => {
  const before = running(deployment(1, '10'), pod('10'));
  for (const r of before.values()) if (r.plan.owner === undefined) r.terminating = true;
  const { set, plans } = load(deployment(1, '10'));
  assert.equal(planReconcile(before, plans, set.deployments).deletes.length, 0);
});
