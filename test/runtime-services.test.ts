// End-to-end, as root: Services. One mesh brought up with the real `outrigger up`: a
// Deployment of three meshed web servers behind a Service, a meshed client and an unmeshed one. Names
// resolve from the pods' hosts files; requests spread over the replicas from both clients; `apply`
// scales 3 → 1 → 3 and rolls a template change while both clients send requests the whole time,
// without a failed request; a bad apply changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { literal, meshTest, prefixOf, type DeploymentView, type PodView, type ServiceView } from './mesh-harness.js';
import { show } from './root-helpers.js';
import { sumMetric } from './metrics-text.js';
import { WEB_SERVER } from './pod-programs.js';

function manifest(dir: string, replicas: number, version: string): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${replicas}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: http
          command: [python3, -u, ${join(dir, 'web.py')}]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: VERSION
              value: "${version}"
          ports:
            - {name: http, containerPort: 8080}
          readinessProbe:
            httpGet: {path: /, port: http}
            periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - {name: http, port: 80, targetPort: http}
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
  name: plain-client
  annotations:
    outrigger.io/inject: disabled
spec:
  containers:
    - name: sleep
      command: [sleep, infinity]
`;
}

void test('Services: names, spreading, apply scaling and rollout under load', { timeout: 240_000 }, async (t) => {
  const mesh = await meshTest(t, 'runtime-services', {
    what: 'the end-to-end Services test',
    files: { 'web.py': WEB_SERVER },
  });
  if (mesh === undefined) return;
  const up = await mesh.up(manifest(mesh.work, 3, 'v1'));
  assert.match(up.stdout, /mesh is up: 5 pods ready/);

  const get = <T>(kind: string) => mesh.get<T>(kind);
  const exec = (pod: string, argv: readonly string[]) => mesh.exec(pod, argv);
  const curl = (pod: string, url: string): Promise<string> => mesh.run(pod, ['curl', '-sS', '-m', '10', '--fail', url]);
  const metrics = (pod: string) => mesh.metrics(pod);
  const replicaOf = (body: string) => /hello from (web-\S+)/.exec(body)?.[1] ?? `?${body}`;

  await t.test('get services: a virtual IP from the service CIDR and three endpoints', async () => {
    const [web] = await get<ServiceView>('services');
    assert.ok(web, 'the web Service');
    assert.match(web.clusterIP, new RegExp(`^${literal(prefixOf(mesh.net.serviceCidr))}\\.\\d+$`), JSON.stringify(web));
    assert.equal(web.endpoints.length, 3, JSON.stringify(web));
    const table = await mesh.cli(['get', 'svc']);
    assert.match(
      table.stdout,
      new RegExp(`web\\s+${web.clusterIP.replace(/\./g, '\\.')}\\s+app=web\\s+80:http/TCP`),
      table.stdout,
    );
  });

  await t.test('a meshed client reaches the Service by every name form, through both proxies', async () => {
    const before = sumMetric(await metrics('client'), 'request_total', { direction: 'outbound' });
    for (const name of ['web', 'web.default', 'web.default.svc', 'web.default.svc.cluster.local']) {
      assert.match(await curl('client', `http://${name}/`), /^hello from web-\S+ v1 \/\n$/, name);
    }
    const after = sumMetric(await metrics('client'), 'request_total', { direction: 'outbound' });
    assert.equal(after, before + 4, 'four requests through the client proxy');
    let inbound = 0;
    for (const p of (await get<PodView>('pods')).filter((x) => x.deployment === 'web'))
      inbound += sumMetric(await metrics(p.name), 'request_total', { direction: 'inbound' });
    assert.ok(inbound >= 4, `the web pods' proxies saw the requests (${inbound})`);
  });

  // Peak-EWMA is latency-aware: one slow answer (a cold first request on a loaded machine) makes a
  // replica cost more until that peak decays (10 s time constant), and a client sending one request at
  // a time then never picks it meanwhile. So "spread" is checked as "every replica answers within a
  // bounded time", and how long it took is printed.
  const untilAllThree = async (what: string, batch: () => Promise<string[]>): Promise<void> => {
    const seen = new Map<string, number>();
    const started = Date.now();
    let batches = 0;
    while (seen.size < 3 && Date.now() - started < 90_000) {
      for (const line of await batch()) seen.set(replicaOf(line), (seen.get(replicaOf(line)) ?? 0) + 1);
      batches++;
    }
    console.log(
      `# ${what}: ${seen.size} replicas answered after ${batches} batch(es), ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify([...seen])}`,
    );
    assert.equal(seen.size, 3, `${what}: every replica answered: ${JSON.stringify([...seen])}`);
  };

  await t.test('requests spread over all three replicas, from a meshed and from an unmeshed client', async () => {
    for (const client of ['client', 'plain-client']) {
      await untilAllThree(`${client}, a new connection per request`, async () => {
        const r = await exec(client, [
          'sh',
          '-c',
          'for i in $(seq 1 45); do curl -sS -m 10 --fail http://web/ || exit 1; done',
        ]);
        assert.equal(r.code, 0, show(r));
        return r.stdout.trim().split('\n');
      });
    }
  });

  await t.test('the meshed client balances per request: one keep-alive connection reaches all three', async () => {
    const opened = async () => sumMetric(await metrics('client'), 'tcp_open_total', { direction: 'outbound' });
    const before = await opened();
    const urls = Array.from({ length: 30 }, () => 'http://web/');
    let batches = 0;
    await untilAllThree('client, one keep-alive connection', async () => {
      const r = await exec('client', ['curl', '-sS', '-m', '20', '--fail', ...urls]);
      assert.equal(r.code, 0, show(r));
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 30, r.stdout);
      batches++;
      return lines;
    });
    // One connection per curl run (the metrics scrapes go to the admin port, which is not outbound).
    assert.equal((await opened()) - before, batches, 'each curl run opened one connection to the proxy');
  });

  const startLoad = (pod: string) => mesh.loadLoop(pod, 'web', 80, '/');
  const applyFile = (text: string) => mesh.apply(text, { timeoutMs: 180_000 });

  await t.test(
    'apply scales 3 → 1 → 3 and rolls a new template while two clients send requests, none failing',
    async () => {
      const meshed = startLoad('client');
      const plain = startLoad('plain-client');
      await new Promise((r) => setTimeout(r, 1000));

      const down = await applyFile(manifest(mesh.work, 1, 'v1'));
      assert.match(down.stdout, /applied: pods 0 created, 0 replaced, 2 deleted, 3 unchanged/);
      let deps = await get<DeploymentView>('deployments');
      assert.equal(deps[0]?.replicas, 1);
      assert.equal(deps[0]?.pods.length, 1, JSON.stringify(deps));

      const back = await applyFile(manifest(mesh.work, 3, 'v1'));
      assert.match(back.stdout, /applied: pods 2 created, 0 replaced, 0 deleted, 3 unchanged/);
      deps = await get<DeploymentView>('deployments');
      assert.equal(deps[0]?.ready, 3, JSON.stringify(deps));

      // A new template: each new pod is ready before an old one goes.
      const roll = await applyFile(manifest(mesh.work, 3, 'v2'));
      assert.match(roll.stdout, /rolling out 3 new pods, replacing 3, one at a time/);
      const lines = roll.stdout.split('\n');
      const readyAt = lines.map((l, i) => (/pod default\/web-\S+: ready/.test(l) ? i : -1)).filter((i) => i >= 0);
      const removedAt = lines.map((l, i) => (/pod default\/web-\S+: removed/.test(l) ? i : -1)).filter((i) => i >= 0);
      assert.equal(readyAt.length, 3, roll.stdout);
      assert.equal(removedAt.length, 3, roll.stdout);
      for (let i = 0; i < 3; i++)
        assert.ok(
          (readyAt[i] ?? 0) < (removedAt[i] ?? 0),
          `new pod ${i} ready before old pod ${i} removed:\n${roll.stdout}`,
        );
      await new Promise((r) => setTimeout(r, 1500));
      assert.match(await curl('client', 'http://web/'), / v2 \/\n$/);

      for (const [name, load] of [
        ['meshed', meshed],
        ['unmeshed', plain],
      ] as const) {
        const s = await load.stop();
        console.log(
          `# ${name} client during scaling and rollout: ${s.ok} ok, ${s.fail} failed, ${Object.keys(s.seen).length} distinct replica versions`,
        );
        assert.equal(s.fail, 0, `${name} client: ${JSON.stringify(s)}`);
        assert.ok(s.ok > 50, `${name} client kept sending: ${JSON.stringify(s)}`);
      }
    },
  );

  await t.test('a bad apply is refused with the field named, and changes nothing', async () => {
    const before = await get<PodView>('pods');
    const r = await mesh.apply(manifest(mesh.work, 3, 'v2').replace('port: 80,', 'port: 70000,'), { code: 1 });
    assert.match(r.stderr, /mesh\.yaml: document 2 \(Service default\/web\): spec\.ports\[0\]\.port: .*70000/);
    assert.deepEqual(
      (await get<PodView>('pods')).map((p) => p.name),
      before.map((p) => p.name),
    );
  });
});
