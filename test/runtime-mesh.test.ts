// End-to-end, as root: traffic cases that need no Service VIPs, in one mesh brought up once
// with the real `outrigger up` on a test-only bridge, pod CIDR and state directory: a server-speaks-first
// program on an opaque port (the default list, and a port made opaque by the pod annotation), an
// unmeshed pod reaching a meshed one and the other way round, and `get pods` telling them apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { meshTest, type PodView } from './mesh-harness.js';
import { sumMetric as metric } from './metrics-text.js';
import { BANNER_CLIENT, BANNER_SERVER } from './pod-programs.js';

function manifest(dir: string): string {
  const banner = (name: string, port: number) => `
        - name: ${name}
          command: [python3, ${join(dir, 'banner.py')}, "${port}", "hello from ${port}"]
          readinessProbe:
            tcpSocket: {port: ${port}}
            periodSeconds: 1`;
  const web = (port: number, indent: string) =>
    [
      `command: [python3, -m, http.server, "${port}", --bind, 0.0.0.0]`,
      `workingDir: ${join(dir, 'www')}`,
      'readinessProbe:',
      `  httpGet: {path: /, port: ${port}}`,
      '  periodSeconds: 1',
    ]
      .map((l) => `\n${indent}${l}`)
      .join('');
  return `
apiVersion: v1
kind: Pod
metadata:
  name: banner
  annotations:
    config.outrigger.io/opaque-ports: "3306,9000"
spec:
  containers:${banner('mysqlish', 3306)}${banner('custom', 9000)}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
    - name: sleep
      command: [sleep, infinity]
---
apiVersion: v1
kind: Pod
metadata:
  name: client-opaque
  annotations:
    config.outrigger.io/opaque-ports: "9000"
spec:
  containers:
    - name: sleep
      command: [sleep, infinity]
---
apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: http${web(8080, '      ')}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: plain
spec:
  replicas: 1
  selector:
    matchLabels: {app: plain}
  template:
    metadata:
      labels: {app: plain}
      annotations:
        outrigger.io/inject: disabled
    spec:
      containers:
        - name: http${web(8081, '          ')}
`;
}

void test(
  'mesh traffic without Service VIPs: opaque server-first, unmeshed both ways',
  { timeout: 110_000 },
  async (t) => {
    const mesh = await meshTest(t, 'runtime-mesh', {
      what: 'the end-to-end mesh traffic test',
      files: { 'www/hello.txt': 'hello from www\n', 'banner.py': BANNER_SERVER, 'banner-client.py': BANNER_CLIENT },
    });
    if (mesh === undefined) return;
    const up = await mesh.up(manifest(mesh.work));
    assert.match(up.stdout, /mesh is up: 5 pods ready/);

    const pods = await mesh.pods();
    const pod = (pred: (p: PodView) => boolean, what: string): PodView => {
      const p = pods.find(pred);
      assert.ok(p, `${what} in ${JSON.stringify(pods)}`);
      return p;
    };
    const banner = pod((p) => p.name === 'banner', 'pod banner');
    const web = pod((p) => p.name === 'web', 'pod web');
    const plain = pod((p) => p.deployment === 'plain', 'the plain pod');

    const metrics = (name: string) => mesh.metrics(name);
    const readBanner = async (from: string, port: number) => {
      const got = await mesh.run(from, ['python3', mesh.path('banner-client.py'), banner.ip, String(port)]);
      assert.equal(got, `hello from ${port}\n`);
    };

    await t.test('get pods -o json: the inject-disabled pod is not meshed and has no proxy', () => {
      assert.equal(pods.length, 5, JSON.stringify(pods));
      assert.equal(plain.meshed, false, JSON.stringify(plain));
      assert.equal(plain.ready, true);
      assert.deepEqual(
        plain.containers.map((c) => c.name),
        ['http'],
      );
      assert.deepEqual(plain.appContainers, ['http']);
      for (const p of pods.filter((q) => q !== plain)) {
        assert.equal(p.meshed, true, `${p.name} meshed`);
        if (mesh.dataPlane === 'sidecar') {
          assert.equal(p.containers[0]?.name, 'outrigger-proxy', `${p.name}: the proxy comes first`);
        } else {
          // Per-host: no proxy in the pod; its node's proxy serves it.
          assert.ok(!p.containers.some((c) => c.name === 'outrigger-proxy'), `${p.name}: no proxy container`);
          assert.match(p.node ?? '', /^node-[0-9]+$/, `${p.name}: placed on a node`);
        }
      }
    });

    await t.test(
      'a server-speaks-first program on a default opaque port (3306) gets its banner without detection',
      async () => {
        const target = `${banner.ip}:3306`;
        const before = await metrics('client');
        await readBanner('client', 3306);
        const after = await metrics('client');
        assert.equal(
          metric(after, 'tcp_open_total', { direction: 'outbound', target_addr: target }),
          metric(before, 'tcp_open_total', { direction: 'outbound', target_addr: target }) + 1,
          after,
        );
        assert.equal(metric(after, 'protocol_detect_timeout_total', {}), 0, after);
        const server = await metrics('banner');
        assert.equal(metric(server, 'protocol_detect_timeout_total', {}), 0, server);
        assert.ok(metric(server, 'tcp_open_total', { direction: 'inbound', target_addr: target }) >= 1, server);
      },
    );

    await t.test(
      'an unmeshed client gets the banner of a meshed server-first app too (in clear: it has no identity)',
      async () => {
        // The server's proxy asks discovery whether the client is a meshed pod; it is not, so the app's
        // greeting is not held for a ClientHello that will never come.
        const started = Date.now();
        await readBanner(plain.name, 3306);
        console.log(`# unmeshed client got the banner in ${Date.now() - started} ms (including outrigger exec)`);
      },
    );

    await t.test('the opaque-ports annotation makes a non-default port (9000) opaque', async () => {
      const target = `${banner.ip}:9000`;
      await readBanner('client-opaque', 9000);
      const after = await metrics('client-opaque');
      assert.equal(metric(after, 'tcp_open_total', { direction: 'outbound', target_addr: target }), 1, after);
      assert.equal(metric(after, 'protocol_detect_timeout_total', {}), 0, after);
      const server = await metrics('banner');
      assert.equal(metric(server, 'protocol_detect_timeout_total', {}), 0, server);
      assert.ok(metric(server, 'tcp_open_total', { direction: 'inbound', target_addr: target }) >= 1, server);
    });

    await t.test('an unmeshed pod reaches a meshed pod, and a meshed pod reaches the unmeshed one', async () => {
      const toWeb = `${web.ip}:8080`;
      const inBefore = metric(await metrics('web'), 'request_total', { direction: 'inbound' });
      const there = await mesh.run(plain.name, ['curl', '-sS', '-m', '10', `http://${toWeb}/hello.txt`]);
      assert.equal(there, 'hello from www\n');
      const inn = await metrics('web');
      assert.equal(metric(inn, 'request_total', { direction: 'inbound' }), inBefore + 1, inn);

      const toPlain = `${plain.ip}:8081`;
      const outBefore = metric(await metrics('client'), 'request_total', {
        direction: 'outbound',
        target_addr: toPlain,
      });
      const back = await mesh.run('client', ['curl', '-sS', '-m', '10', `http://${toPlain}/hello.txt`]);
      assert.equal(back, 'hello from www\n');
      const out = await metrics('client');
      assert.equal(metric(out, 'request_total', { direction: 'outbound', target_addr: toPlain }), outBefore + 1, out);
    });
  },
);
