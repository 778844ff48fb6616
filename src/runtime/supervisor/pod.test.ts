// The pod's side without root: its phase rule, the proxy's command line, and an unmeshed pod's
// containers on the host's own namespace (start order, readiness, restarts, stop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManifests, planPods, type PodPlan } from '../manifests/index.js';
import { PodProcesses, podPhase, proxyContainerSpec, PROXY_CONTAINER, type PodPhase } from './pod.js';
import { isGone } from './proc.js';

function plan(yaml: string): PodPlan {
  const pods = planPods(parseManifests([{ file: 'test.yaml', text: yaml }]));
  const pod = pods[0];
  if (pod === undefined) throw new Error('no pod');
  return pod;
}

const proxyCommand = {
  argv: ['/usr/bin/node', '/opt/outrigger/bin/outrigger.js', 'proxy'],
  root: '/opt/outrigger',
  staged: false,
  env: {},
};

void test('podPhase: Pending until all started, Running, then Succeeded or Failed when all ended for good', () => {
  const running = { started: true, finished: false };
  const waiting = { started: false, finished: false };
  const done = (reason: 'Completed' | 'Error') => ({
    started: true,
    finished: true,
    lastTermination: { reason, exitCode: reason === 'Completed' ? 0 : 1, signal: null, finishedAt: new Date() },
  });
  const cases: [Parameters<typeof podPhase>[0], PodPhase][] = [
    [[waiting], 'Pending'],
    [[running, waiting], 'Pending'],
    [[running, running], 'Running'],
    [[running, done('Completed')], 'Running'],
    [[running, done('Error')], 'Running'],
    [[done('Completed'), done('Completed')], 'Succeeded'],
    [[done('Completed'), done('Error')], 'Failed'],
  ];
  for (const [apps, want] of cases) assert.equal(podPhase(apps), want, JSON.stringify(apps));
  assert.equal(podPhase([running], true), 'Failed', 'a pod whose start failed');
});

const MESHED = `
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    config.outrigger.io/opaque-ports: "5432,3306-3310"
spec:
  terminationGracePeriodSeconds: 5
  containers:
    - name: app
      command: [sleep, "300"]
`;

void test('proxy container: uid 2102, the redirect ports, the pod opaque ports, probed on /ready', () => {
  const spec = proxyContainerSpec(plan(MESHED), { command: proxyCommand, terminationGraceMs: 4000 });
  assert.equal(spec.name, PROXY_CONTAINER);
  assert.deepEqual(spec.user, { uid: 2102, gid: 2102 });
  assert.deepEqual(spec.argv.slice(0, 3), proxyCommand.argv);
  const args = spec.argv.slice(3).join(' ');
  assert.match(args, /--inbound-addr 0\.0\.0\.0 --inbound-port 4143/);
  assert.match(args, /--outbound-addr 127\.0\.0\.1 --outbound-port 4140/);
  assert.match(args, /--admin-port 4191/);
  assert.match(args, /--drain-timeout-ms 3000/);
  assert.match(args, /--opaque-ports 3306-3310,5432/);
  assert.deepEqual(spec.readinessProbe?.action, {
    kind: 'http',
    host: '127.0.0.1',
    port: 4191,
    path: '/ready',
    scheme: 'HTTP',
    headers: [],
  });
  assert.equal(spec.restartPolicy, 'Always');
  assert.deepEqual(
    Object.keys(spec.env).sort(),
    ['HOME', 'HOSTNAME', 'PATH'],
    'no runtime environment leaks into the proxy',
  );
  const otherAddon = proxyContainerSpec(plan(MESHED), {
    command: { ...proxyCommand, env: { OUTRIGGER_ORIGDST_ADDON: '/opt/node24/origdst.node' } },
  });
  assert.equal(otherAddon.env.OUTRIGGER_ORIGDST_ADDON, '/opt/node24/origdst.node', 'what the command needs is added');

  const plain = proxyContainerSpec(plan(MESHED.replace(/ {2}annotations:\n.*\n/, '')), { command: proxyCommand });
  assert.doesNotMatch(
    plain.argv.join(' '),
    /--opaque-ports/,
    'without the annotation the proxy keeps its default list',
  );
  const none = proxyContainerSpec(plan(MESHED.replace('"5432,3306-3310"', '""')), { command: proxyCommand });
  assert.equal(none.argv[none.argv.indexOf('--opaque-ports') + 1], '', 'an explicit empty annotation means none');
});

void test('pod: a meshed pod needs a proxy and a namespace; the proxy name is reserved', async () => {
  const stateDir = '/nonexistent';
  const pod = plan(MESHED);
  assert.throws(
    () => new PodProcesses({ pod, net: { netns: 'x', ip: '10.0.0.2', gateway: '10.0.0.1' }, stateDir }),
    /meshed but no proxy/,
  );
  assert.throws(
    () =>
      new PodProcesses({
        pod,
        net: { ip: '10.0.0.2', gateway: '10.0.0.1' },
        stateDir,
        proxy: { command: proxyCommand },
      }),
    /needs a network namespace/,
  );
  const reserved = plan(MESHED.replace('name: app', `name: ${PROXY_CONTAINER}`));
  assert.throws(
    () =>
      new PodProcesses({
        pod: reserved,
        net: { netns: 'x', ip: '10.0.0.2', gateway: '10.0.0.1' },
        stateDir,
        proxy: { command: proxyCommand },
      }),
    /reserved for the proxy/,
  );
});

void test('pod: an unmeshed pod runs its containers in order, becomes ready, counts restarts, stops', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'outr-sv-pod-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const pod = plan(`
apiVersion: v1
kind: Pod
metadata:
  name: two
  annotations: { outrigger.io/inject: disabled }
spec:
  containers:
    - name: first
      command: [sh, -c]
      args: ['echo "first $(POD_NAME) $(POD_IP) $HOSTNAME"; exec sleep 300']
      env:
        - name: POD_NAME
          valueFrom: { fieldRef: { fieldPath: metadata.name } }
        - name: POD_IP
          valueFrom: { fieldRef: { fieldPath: status.podIP } }
    - name: second
      command: [sh, -c, 'sleep 0.3; exit 1']
      readinessProbe:
        exec: { command: ["true"] }
        periodSeconds: 1
`);
  const pp = new PodProcesses({
    pod,
    net: { ip: '10.9.9.9', gateway: '10.9.9.1' },
    stateDir,
    backoff: { initialMs: 100, maxMs: 100 },
  });
  t.after(() => pp.stop());
  const phases: PodPhase[] = [];
  pp.on('phase', (p) => phases.push(p));
  assert.equal(pp.phase, 'Pending');
  await pp.start();
  assert.equal(pp.phase, 'Running');
  await pp.whenReady(5000);
  const s = pp.status();
  assert.equal(s.meshed, false);
  assert.deepEqual(
    s.containers.map((c) => c.name),
    ['first', 'second'],
  );
  assert.match(
    await readFile(join(pp.podDir, 'first.log'), 'utf8'),
    /^first two 10\.9\.9\.9 two$/m,
    '$(VAR) expansion in args, fieldRefs, HOSTNAME',
  );
  const firstStart = s.containers[0]?.state.state === 'running' ? s.containers[0].state.startedAt.getTime() : NaN;
  const secondStart = s.containers[1]?.state.state === 'running' ? s.containers[1].state.startedAt.getTime() : NaN;
  assert.ok(firstStart <= secondStart, 'started in order');

  // The second container exits after 0.3 s and is restarted (restartPolicy Always by default).
  const deadline = Date.now() + 5000;
  while (pp.status().restarts < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(pp.status().restarts >= 1, 'restarts counted');
  assert.match(pp.describe(), /second: .*restarts [1-9]/);
  const pid = s.containers[0]?.state.state === 'running' ? s.containers[0].state.pid : 0;
  await pp.stop();
  assert.equal(await isGone(pid), true);
  assert.equal(pp.ready, false);
  assert.deepEqual(phases, ['Running']);
});

void test("pod: whenReady fails with the containers' states when the pod cannot become ready", async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'outr-sv-pod-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const pod = plan(`
apiVersion: v1
kind: Pod
metadata: { name: once, annotations: { outrigger.io/inject: disabled } }
spec:
  restartPolicy: Never
  containers:
    - name: job
      command: [sh, -c, 'sleep 0.3; exit 3']
      readinessProbe:
        exec: { command: ["false"] }
`);
  const pp = new PodProcesses({ pod, net: { ip: '10.9.9.9', gateway: '10.9.9.1' }, stateDir });
  t.after(() => pp.stop());
  await pp.start();
  await assert.rejects(
    pp.whenReady(5000),
    /pod default\/once is Failed and will not become ready: .*job: terminated \(Error, exit 3\)/,
  );
});
