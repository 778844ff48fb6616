// End-to-end, as root: the per-host data plane against sidecars, on what the comparison is about. Per
// host (always, whatever OUTRIGGER_TEST_DATA_PLANE says): pods placed on two nodes by spec.nodeName; one
// node proxy per node, in the node's cgroup, holding the keys of every identity on its node and
// dropping one when its pod goes; mTLS across nodes and on one node with the caller's identity seen by
// the server; a pod that takes another pod's address is refused and counted (the confused deputy); a
// node proxy killed is started again and serves its pods again. Then the same pods with sidecars: each
// proxy holds exactly one key, in its pod's cgroup.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { meshTest, type Mesh, type PodView } from './mesh-harness.js';
import { sumMetric } from './metrics-text.js';
import { show } from './root-helpers.js';
import type { DataPlaneProcess } from '../src/daemon/dataplane.js';

const TRUST = 'spiffe://cluster.local';

function manifest(dir: string, pods: readonly { name: string; node: string; serves?: boolean }[]): string {
  return pods
    .map(
      (p) => `
apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${p.name}
---
apiVersion: v1
kind: Pod
metadata:
  name: ${p.name}
spec:
  serviceAccountName: ${p.name}
  nodeName: ${p.node}
  containers:
    - name: app
${
  p.serves === true
    ? `      command: [python3, -m, http.server, "8080", --bind, 0.0.0.0]
      workingDir: ${join(dir, 'www')}
      readinessProbe:
        httpGet: {path: /, port: 8080}
        periodSeconds: 1`
    : '      command: [sleep, infinity]'
}`,
    )
    .join('\n---');
}

const PODS = [
  { name: 'alpha', node: 'node-1' },
  { name: 'bravo', node: 'node-1', serves: true },
  { name: 'charlie', node: 'node-2', serves: true },
];

async function dataPlane(mesh: Mesh): Promise<{ mode: string; items: DataPlaneProcess[] }> {
  const r = await mesh.cli(['get', 'dataplane', '-o', 'json']);
  assert.equal(r.code, 0, show(r));
  return JSON.parse(r.stdout) as { mode: string; items: DataPlaneProcess[] };
}

/** The cgroup lines of a process (v1: one per hierarchy; v2: one). */
function cgroupOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8');
}

async function fetchHello(mesh: Mesh, from: string, ip: string): Promise<string> {
  return mesh.run(from, ['curl', '-sS', '-m', '10', `http://${ip}:8080/hello.txt`]);
}

void test(
  'the per-host data plane beside sidecars: keys, cgroups, mTLS, the confused deputy',
  { timeout: 300_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-dataplane', {
      what: 'the per-host data plane test',
      files: { 'www/hello.txt': 'hello\n' },
    });
    if (mesh === undefined) return;
    mesh.dataPlane = 'per-host';
    await mesh.up(manifest(mesh.work, PODS), ['--data-plane', 'per-host', '--nodes', '2']);
    let pods = await mesh.pods();
    const pod = (name: string): PodView => {
      const p = pods.find((x) => x.name === name);
      assert.ok(p, `${name} in ${JSON.stringify(pods)}`);
      return p;
    };

    await t.test('get pods: each pod on the node its spec.nodeName names, no proxy container', async () => {
      for (const p of PODS) {
        assert.equal(pod(p.name).node, p.node, JSON.stringify(pod(p.name)));
        assert.deepEqual(
          pod(p.name).containers.map((c) => c.name),
          ['app'],
        );
      }
      const wide = await mesh.cli(['get', 'pods', '-o', 'wide']);
      assert.equal(wide.code, 0, show(wide));
      assert.match(wide.stdout, /NODE/, wide.stdout);
      assert.match(wide.stdout, /charlie\s.*node-2/, wide.stdout);
    });

    await t.test('get dataplane: one node proxy per node, holding the key of every identity on it', async () => {
      const dp = await dataPlane(mesh);
      assert.equal(dp.mode, 'per-host');
      assert.equal(dp.items.length, 2, JSON.stringify(dp));
      const [n1, n2] = dp.items;
      assert.ok(n1 !== undefined && n2 !== undefined);
      assert.equal(n1.node, 'node-1');
      assert.deepEqual(n1.pods, ['default/alpha', 'default/bravo']);
      assert.deepEqual(n1.identities, [`${TRUST}/ns/default/sa/alpha`, `${TRUST}/ns/default/sa/bravo`]);
      assert.deepEqual(n2.pods, ['default/charlie']);
      assert.deepEqual(n2.identities, [`${TRUST}/ns/default/sa/charlie`]);
      // The node proxies are in their nodes' cgroups, as a kubelet places a node agent, not in a pod's.
      for (const n of dp.items) {
        assert.ok(n.pid !== undefined, JSON.stringify(n));
        assert.match(n.cgroups[0] ?? '', new RegExp(`/outrigger/otedp-${n.node}$`));
        assert.match(cgroupOf(n.pid), new RegExp(`/outrigger/otedp-${n.node}$`, 'm'), cgroupOf(n.pid));
        // In the host's network namespace, not a pod's.
        const hostNs = spawnSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).stdout;
        const itsNs = spawnSync('readlink', [`/proc/${n.pid}/ns/net`], { encoding: 'utf8' }).stdout;
        assert.equal(itsNs, hostNs);
      }
      const table = await mesh.cli(['get', 'dataplane']);
      assert.match(table.stdout, /proxy-node\/node-1\s+per-host\s+node-1\s+[0-9]+\s+2\s+2\s/, table.stdout);
    });

    await t.test('across nodes and on one node: mTLS with the calling pod identity, seen by the server', async () => {
      assert.equal(await fetchHello(mesh, 'alpha', pod('charlie').ip), 'hello\n');
      assert.equal(await fetchHello(mesh, 'alpha', pod('bravo').ip), 'hello\n');
      for (const server of ['charlie', 'bravo']) {
        const text = await mesh.metrics(server);
        const seen = sumMetric(text, 'response_total', {
          direction: 'inbound',
          tls: 'true',
          client_id: `${TRUST}/ns/default/sa/alpha`,
        });
        assert.ok(seen >= 1, `${server} saw alpha's identity:\n${text}`);
      }
      const out = sumMetric(await mesh.metrics('alpha'), 'response_total', {
        direction: 'outbound',
        server_id: `${TRUST}/ns/default/sa/charlie`,
      });
      assert.ok(out >= 1, 'alpha sent to charlie over mTLS with its identity checked');
    });

    await t.test("confused deputy: a pod with another pod's address is refused and counted", async () => {
      const alpha = pod('alpha');
      const bravo = pod('bravo');
      assert.ok(alpha.netns !== undefined);
      const before = sumMetric(await mesh.metrics('alpha'), 'tcp_refused_total', {
        direction: 'outbound',
        reason: 'source_not_pod',
      });
      const served = sumMetric(await mesh.metrics('charlie'), 'response_total', { direction: 'inbound' });
      // As if alpha's isolation failed (NET_ADMIN): it takes bravo's address and calls charlie from it,
      // through the node proxy that holds bravo's key too. The node proxy must not speak for bravo (nor
      // for alpha, from an address that is not alpha's).
      const script = [
        `ip addr add ${bravo.ip}/32 dev lo`,
        `curl -sS -m 5 --interface ${bravo.ip} http://${pod('charlie').ip}:8080/hello.txt; rc=$?`,
        `ip addr del ${bravo.ip}/32 dev lo`,
        'exit $rc',
      ].join('; ');
      const r = spawnSync('ip', ['netns', 'exec', alpha.netns, 'sh', '-c', script], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `curl from bravo's address must fail: ${r.stdout}${r.stderr}`);
      // A reset: after the handshake, or (the refusal is that fast on loopback) before curl saw it done.
      assert.match(r.stderr, /reset|Recv failure|Empty reply|Couldn't connect/i, r.stderr);
      const after = sumMetric(await mesh.metrics('alpha'), 'tcp_refused_total', {
        direction: 'outbound',
        reason: 'source_not_pod',
      });
      assert.equal(after, before + 1, `refused by the node proxy's guard: ${r.stderr}`);
      assert.equal(sumMetric(await mesh.metrics('charlie'), 'response_total', { direction: 'inbound' }), served);
      // The same pod from its own address still gets through.
      assert.equal(await fetchHello(mesh, 'alpha', pod('charlie').ip), 'hello\n');
    });

    await t.test('a pod that leaves takes its key out of the node proxy', async () => {
      await mesh.apply(
        manifest(
          mesh.work,
          PODS.filter((p) => p.name !== 'bravo'),
        ),
      );
      const dp = await dataPlane(mesh);
      const n1 = dp.items.find((n) => n.node === 'node-1');
      assert.deepEqual(n1?.pods, ['default/alpha']);
      assert.deepEqual(n1?.identities, [`${TRUST}/ns/default/sa/alpha`]);
      pods = await mesh.pods();
    });

    await t.test('a node proxy killed is started again, and serves its pods again', async () => {
      const before = (await dataPlane(mesh)).items.find((n) => n.node === 'node-2');
      assert.ok(before?.pid !== undefined);
      process.kill(before.pid, 'SIGKILL');
      const deadline = Date.now() + 30_000;
      let got = '';
      while (Date.now() < deadline) {
        const r = await mesh.exec('alpha', ['curl', '-sS', '-m', '3', `http://${pod('charlie').ip}:8080/hello.txt`]);
        got = r.stdout;
        if (r.code === 0 && got === 'hello\n') break;
        await new Promise((res) => setTimeout(res, 500));
      }
      assert.equal(got, 'hello\n');
      const after = (await dataPlane(mesh)).items.find((n) => n.node === 'node-2');
      assert.ok(after?.pid !== undefined && after.pid !== before.pid, JSON.stringify(after));
      assert.deepEqual(after.identities, [`${TRUST}/ns/default/sa/charlie`]);
    });

    await t.test('with sidecars instead: one proxy per pod, exactly one key each, in its pod cgroup', async () => {
      const down = await mesh.cli(['down']);
      assert.equal(down.code, 0, show(down));
      mesh.dataPlane = 'sidecar';
      await mesh.up(manifest(mesh.work, PODS), ['--data-plane', 'sidecar']);
      const dp = await dataPlane(mesh);
      assert.equal(dp.mode, 'sidecar');
      assert.equal(dp.items.length, 3, JSON.stringify(dp));
      for (const p of dp.items) {
        assert.equal(p.pods.length, 1);
        const [ns, name] = (p.pods[0] ?? '').split('/');
        assert.deepEqual(p.identities, [`${TRUST}/ns/${ns}/sa/${name}`]);
        assert.ok(p.pid !== undefined);
        assert.match(cgroupOf(p.pid), /\/outrigger\/[^/\n]+\/outrigger-proxy$/m, cgroupOf(p.pid));
      }
      pods = await mesh.pods();
      assert.equal(await fetchHello(mesh, 'alpha', pod('charlie').ip), 'hello\n');
    });
  },
);
