// End-to-end, as root (static stability): the mesh's control process (which hosts the control
// plane) is killed with SIGKILL while a meshed client sends requests, and stays dead for 30 s. The pods
// run on, and the proxies keep routing with what they last knew: no request fails. `outrigger up`
// without files then resumes the mesh: the pods' processes are adopted (same pids, no restart), and a
// change applied after that (a fourth replica) reaches the proxies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { show } from './root-helpers.js';
import { meshTest, type PodView } from './mesh-harness.js';
import { WEB_SERVER } from './pod-programs.js';
import { sumMetric } from './metrics-text.js';

/** How long the control process stays dead (the issue asks for 30 s). */
const DEAD_MS = 30_000;

function manifest(dir: string, replicas: number): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: ${replicas}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{name: http, containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /, port: http}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers:
    - {name: sleep, command: [sleep, infinity]}
`;
}

/** `pod/container` → pid of every running container, as the mesh reports them. */
function containerPids(pods: readonly PodView[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of pods)
    for (const c of p.containers) if (c.state.state === 'running') out[`${p.name}/${c.name}`] = c.state.pid;
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

void test(
  'the control process killed for 30 s under load: nothing fails, `up` resumes the mesh, a later change reaches the proxies',
  { timeout: 240_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-resume', {
      what: 'the control-process restart test',
      needs: 'iproute2, iptables, util-linux (setpriv) and python3',
      files: { 'web.py': WEB_SERVER },
    });
    if (mesh === undefined) return;
    await mesh.up(manifest(mesh.work, 3));

    // A meshed client: every request goes through its proxy, which asks the control plane about `web`.
    const load = mesh.loadLoop('client', 'web', 80, '/', { keepAlive: true });
    await new Promise((r) => setTimeout(r, 2000));

    const getPods = () => mesh.pods();
    // Per-host (the test matrix): no proxy containers; the node proxies serve on without their control
    // process, and the resumed one hands the pods to node proxies of its own, then ends the old ones.
    const perHost = mesh.dataPlane === 'per-host';
    const nodeProxies = async () => (await mesh.nodeProxies()).map((i) => i.pid as number).sort();
    const oldNodeProxies = perHost ? await nodeProxies() : [];
    const pidsBefore = containerPids(await getPods());
    assert.equal(Object.keys(pidsBefore).length, perHost ? 4 : 8, JSON.stringify(pidsBefore));
    const updatesAtKill = await mesh.metric('client', 'destination_updates_total');
    const control = Number((await readFile(join(mesh.stateDir, 'control.pid'), 'utf8')).trim());
    process.kill(control, 'SIGKILL');
    const killedAt = Date.now();
    // While it is dead nobody answers for the mesh, but the pods and their proxies run on.
    const status = await mesh.cli(['get', 'pods']);
    assert.notEqual(status.code, 0, 'no control process answers');
    await new Promise((r) => setTimeout(r, DEAD_MS - (Date.now() - killedAt)));
    for (const [c, pid] of Object.entries(pidsBefore))
      assert.ok(alive(pid), `${c} (pid ${pid}) ran on without its control process`);
    for (const pid of oldNodeProxies) assert.ok(alive(pid), `node proxy ${pid} ran on without its control process`);

    const resumed = await mesh.cli(['up'], 120_000);
    assert.equal(resumed.code, 0, show(resumed));
    assert.match(resumed.stdout, /lost its control process \(\d+\): resuming it/);
    const adoptedLine = perHost ? /: adopted (http|sleep)\n/g : /: adopted outrigger-proxy, (http|sleep)\n/g;
    assert.equal((resumed.stdout.match(adoptedLine) ?? []).length, 4, resumed.stdout);
    if (perHost) {
      // New node proxies serve the pods; the old ones handed over and are gone.
      assert.match(resumed.stdout, /the node proxies left behind \(pid [0-9, ]+\) handed over and ended/);
      const now = await nodeProxies();
      assert.equal(now.length, oldNodeProxies.length);
      for (const pid of oldNodeProxies) {
        assert.ok(!now.includes(pid), `${pid} still serves: ${now.join(', ')}`);
        assert.ok(!alive(pid), `the old node proxy ${pid} ended`);
      }
    }
    const pods = await getPods();
    assert.deepEqual(containerPids(pods), pidsBefore, 'the pods were adopted, not restarted');
    assert.equal(pods.length, 4);
    for (const p of pods) {
      assert.equal(p.ready, true, `${p.name} ready`);
      assert.equal(p.restarts, 0, `${p.name} restarts`);
    }

    // The client's proxy reconnects on its own (jittered backoff) and gets the state again.
    const clientMetrics = () => mesh.metrics('client');
    const resumedAt = Date.now();
    // Per-host the client's proxy is a new process: its counters start again.
    const updatesBefore = perHost ? 0 : updatesAtKill;
    while (
      sumMetric(await clientMetrics(), 'destination_updates_total', {}) <= updatesBefore &&
      Date.now() - resumedAt < 20_000
    )
      await new Promise((r) => setTimeout(r, 200));
    const reconnectedS = (Date.now() - resumedAt) / 1000;
    assert.ok(
      sumMetric(await clientMetrics(), 'destination_updates_total', {}) > updatesBefore,
      'the client proxy reconnected to the control plane and got an answer',
    );

    // A change made after that reaches the proxies: a fourth replica gets requests.
    const applied = await mesh.apply(manifest(mesh.work, 4), { timeoutMs: 120_000 });
    assert.match(applied.stdout, /applied: pods 1 created, 0 replaced, 0 deleted, 4 unchanged/);
    const appliedAt = Date.now();
    const newName = (await getPods()).map((p) => p.name).find((n) => !pods.some((p) => p.name === n)) as string;
    // The client's proxy reports what it sent where (dst_pod): wait for the new replica to show up.
    let toNew = 0;
    let text = '';
    while (toNew === 0 && Date.now() - appliedAt < 20_000) {
      text = await clientMetrics();
      toNew = sumMetric(text, 'route_response_total', { direction: 'outbound', dst_pod: newName });
      if (toNew === 0) await new Promise((r) => setTimeout(r, 250));
    }
    console.log(
      `# the client's proxy had the control plane again ${reconnectedS.toFixed(1)} s after the resume (reconnect attempts ${sumMetric(text, 'destination_reconnects_total', {})}); ` +
        `the replica added after that (${newName}) got its first requests ${((Date.now() - appliedAt) / 1000).toFixed(1)} s after apply returned`,
    );
    assert.ok(toNew > 0, `the client's proxy sent nothing to ${newName} within 20 s`);
    await new Promise((r) => setTimeout(r, 2000));

    const s = await load.stop();
    const byPod = Object.fromEntries(
      Object.entries(s.seen).map(([body, n]) => [body.replace(/^hello from /, '').replace(/ \/$/, ''), n]),
    );
    console.log(
      `# load through kill -9, ${DEAD_MS / 1000} s without a control process, resume and scale-up: ${s.ok} ok, ${s.fail} failed; by pod ${JSON.stringify(byPod)}`,
    );
    assert.equal(s.fail, 0, JSON.stringify(s));
    assert.ok(s.ok > 300, `the client kept sending: ${JSON.stringify(s)}`);
    assert.ok(
      (byPod[newName] ?? 0) > 0,
      `the replica added after the resume answered the load: ${JSON.stringify(byPod)}`,
    );
  },
);
