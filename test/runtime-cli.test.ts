// End-to-end, as root: the real `outrigger up / get / exec / logs / down` on a test-only
// bridge, pod CIDR and state directory: a meshed python3 http.server Deployment and a client pod, a
// request through both sidecars, refusals, and `down` (also after kill -9 of the control process)
// leaving no namespace, link, rule, process or state file behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, show } from './root-helpers.js';
import { hostOf, literal, meshTest, prefixOf, type PodView, type ServiceView } from './mesh-harness.js';
import { sumMetric as metric } from './metrics-text.js';
import { outriggerVersion } from '../src/core/version.js';

// --- what "nothing left" means ------------------------------------------------------------------------------

function leftovers(bridge: string, stateDir: string, pids: readonly number[]): string[] {
  const out: string[] = [];
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter((l) => l.startsWith(`outr-${bridge}-`));
  out.push(...ns.map((n) => `netns ${n}`));
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  if (new RegExp(`: ${bridge}[:@]`).test(links)) out.push(`link ${bridge}`);
  if (new RegExp(`master ${bridge} `).test(links)) out.push(`links on ${bridge}`);
  const rules = spawnSync('iptables', ['-w', '-S'], { encoding: 'utf8' }).stdout;
  if (rules.includes(`OUTR-FWD-${bridge}`)) out.push(`iptables rules or chain OUTR-FWD-${bridge}`);
  if (existsSync('/etc/netns'))
    out.push(
      ...readdirSync('/etc/netns')
        .filter((e) => e.startsWith(`outr-${bridge}-`))
        .map((e) => `/etc/netns/${e}`),
    );
  for (const pid of pids) if (alive(pid)) out.push(`process ${pid}`);
  if (existsSync(stateDir)) {
    // The logs stay (the control process's, the pods', and per-host the node proxies' in dataplane/), and
    // the mesh CA (so the trust anchor outlives a restart); `down --purge` removes both.
    const logs = ['control.log', 'pods', 'identity', 'dataplane'];
    const extra = readdirSync(stateDir).filter((f) => !logs.includes(f));
    out.push(...extra.map((f) => `state file ${f}`));
    const ca = join(stateDir, 'identity');
    if (existsSync(ca)) {
      const odd = readdirSync(ca).filter(
        (f) => !['issuer.crt', 'issuer.key', 'trust-anchor.crt', 'trust-anchor.key', 'token-signing.key'].includes(f),
      );
      out.push(...odd.map((f) => `state file identity/${f}`));
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead: it only waits for its parent (the killed control process's init) to reap it.
  const stat = spawnSync('cat', [`/proc/${pid}/stat`], { encoding: 'utf8' }).stdout;
  return !/^\d+ \(.*\) Z /.test(stat);
}

/** Every pid in the mesh's pod namespaces (to check that `down` killed them all). */
function podPids(bridge: string): number[] {
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(`outr-${bridge}-`));
  return ns.flatMap((n) =>
    spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter((l) => l !== '')
      .map(Number),
  );
}

async function waitGone(bridge: string, stateDir: string, pids: readonly number[]): Promise<string[]> {
  let left = leftovers(bridge, stateDir, pids);
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = leftovers(bridge, stateDir, pids);
  }
  return left;
}

function manifest(webRoot: string): string {
  return `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: http
          command: [python3, -m, http.server, "8080", --bind, 0.0.0.0]
          workingDir: ${webRoot}
          ports:
            - {containerPort: 8080, name: http}
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
    - {name: http, port: 8080, targetPort: http}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  containers:
    - name: sleep
      command: [sleep, infinity]
`;
}

// --- the test -----------------------------------------------------------------------------------------------

void test('outrigger up / get / exec / logs / down with real pods', { timeout: 240_000 }, async (t) => {
  const mesh = await meshTest(t, 'runtime-cli', {
    what: 'the end-to-end outrigger up/down test',
    files: { 'www/hello.txt': 'hello from web\n' },
  });
  if (mesh === undefined) return;
  const { bridge, podCidr } = mesh.net;
  const stateDir = mesh.stateDir;
  const podIp = `${literal(prefixOf(podCidr))}\\.`;
  const up = await mesh.up(manifest(mesh.path('www')));
  assert.match(up.stdout, /pod default\/client: ready/);
  assert.match(up.stdout, /mesh is up: 3 pods ready/);

  await t.test('get pods -o json: all ready and meshed', async () => {
    const pods = await mesh.pods();
    assert.equal(pods.length, 3, JSON.stringify(pods));
    for (const p of pods) {
      assert.equal(p.ready, true, `${p.name} ready`);
      assert.equal(p.meshed, true, `${p.name} meshed`);
      assert.equal(p.phase, 'Running');
      assert.match(p.ip, new RegExp(`^${podIp}`));
    }
    const table = await mesh.cli(['get', 'pods']);
    assert.match(table.stdout, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+IP\s+MESHED\n/);
    assert.match(table.stdout, new RegExp(`\\nclient\\s+1/1\\s+Running\\s+0\\s+${podIp}\\S+\\s+yes\\n`));
  });

  await t.test('get services and deployments', async () => {
    const [svc] = await mesh.get<ServiceView>('services');
    assert.equal(svc?.name, 'web');
    assert.equal(svc?.endpoints.length, 2, JSON.stringify(svc));
    const d = await mesh.cli(['get', 'deployments']);
    assert.match(d.stdout, /\nweb\s+2\/2\s/, show(d));
  });

  await t.test('exec: curl from the client to a web pod goes through both proxies', async () => {
    const web = (await mesh.pods()).find((p: PodView) => p.deployment === 'web');
    assert.ok(web);
    const target = `${web.ip}:8080`;
    const metrics = (pod: string) => mesh.metrics(pod);
    const outBefore = metric(await metrics('client'), 'request_total', { direction: 'outbound', target_addr: target });
    const inBefore = metric(await metrics(web.name), 'response_total', { direction: 'inbound', status_code: '200' });
    const body = await mesh.run('client', ['curl', '-sS', '-m', '10', `http://${target}/hello.txt`]);
    assert.equal(body, 'hello from web\n');

    const out = await metrics('client');
    assert.equal(
      metric(out, 'request_total', { direction: 'outbound', target_addr: target }),
      outBefore + 1,
      `client proxy outbound request_total for ${target}:\n${out}`,
    );
    // Readiness probes reach the app from inside its own pod (not through the inbound proxy), so the
    // count moves by exactly our one request.
    const inn = await metrics(web.name);
    assert.equal(
      metric(inn, 'response_total', { direction: 'inbound', status_code: '200' }),
      inBefore + 1,
      `web proxy inbound response_total:\n${inn}`,
    );

    const code = await mesh.exec('deploy/web', ['sh', '-c', 'exit 7']);
    assert.equal(code.code, 7, 'the exit code is passed through');

    const logs = await mesh.cli(['logs', web.name]);
    assert.equal(logs.code, 0, show(logs));
    assert.match(logs.stdout, /"GET \/hello\.txt HTTP\/1\.1" 200/);
    const proxyLog = await mesh.cli(['logs', 'client', '-c', 'proxy']);
    if (mesh.dataPlane === 'per-host') {
      // No proxy in the pod: the node proxy that serves it, which logged the pod's arrival.
      assert.match(proxyLog.stderr, /per-host data plane: the log of node-\d+'s proxy/, show(proxyLog));
      assert.match(proxyLog.stdout, /"pod":"[^"]*client[^"]*".*"msg":"pod added"/, show(proxyLog));
    } else assert.match(proxyLog.stdout, /proxy ready/, show(proxyLog));
  });

  await t.test('version: the CLI, the control process and every proxy say which Outrigger they run', async () => {
    const r = await mesh.cli(['version', '-o', 'json']);
    assert.equal(r.code, 0, show(r));
    const v = JSON.parse(r.stdout) as {
      client: { version: string; node: string };
      control: { version: string; node: string };
      proxies: { namespace: string; pod: string; version?: string; node?: string; error?: string }[];
    };
    const mine = { version: outriggerVersion(), node: process.version };
    assert.deepEqual(v.client, mine);
    assert.deepEqual(v.control, mine);
    const pods = (await mesh.pods()).map((p: PodView) => p.name).sort();
    assert.deepEqual(v.proxies.map((p) => p.pod).sort(), pods);
    for (const p of v.proxies) assert.deepEqual({ version: p.version, node: p.node }, mine, JSON.stringify(p));
    const table = await mesh.cli(['version']);
    assert.match(
      table.stdout,
      new RegExp(`^Control process: ${literal(mine.version)} \\(node ${literal(mine.node)}\\)$`, 'm'),
    );
    assert.match(table.stdout, new RegExp(`^default\\s+client\\s+${literal(mine.version)} `, 'm'), show(table));
  });

  await t.test('a second up is refused', async () => {
    const r = await mesh.cli(['up', '-f', mesh.file, ...mesh.netFlags()]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /a mesh is already running \(pid \d+\); use apply or down/);
  });

  await t.test('a bad manifest gets its errors and nothing is created', async () => {
    const badNet = mesh.spare(2);
    const badState = badNet.stateDir;
    const bad = mesh.path('bad.yaml');
    const pod = (name: string) =>
      `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers: [{name: c, command: [sleep, infinity]}]\n`;
    await writeFile(
      bad,
      [
        'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 70000}]\n',
        'apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: x}]\n',
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: three\n  selector: {matchLabels: {app: d}}\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      containers: [{name: c, command: [sleep, infinity]}]\n',
        pod('twin'),
        pod('twin'),
      ].join('---\n'),
    );
    const r = await cli(['up', '-f', bad, '--state-dir', badState, ...mesh.netFlags(badNet)]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /spec\.ports\[0\]\.port: must be an integer from 1 to 65535, got 70000/);
    assert.match(r.stderr, /spec\.containers\[0\]\.command: is required/);
    assert.match(
      r.stderr,
      /document 3 \(Deployment default\/d\): spec\.replicas: must be an integer of 0 or more, got "three"/,
    );
    assert.match(
      r.stderr,
      /document 5 \(Pod default\/twin\): metadata\.name: duplicate Pod "default\/twin": first defined in document 4/,
    );
    assert.equal(existsSync(badState), false, 'no state directory');
    assert.deepEqual(leftovers(badNet.bridge, badState, []), []);
  });

  await t.test('an up whose pod never becomes ready fails with why, and removes everything', async () => {
    const failNet = mesh.spare(3);
    const failing = mesh.path('failing.yaml');
    await writeFile(
      failing,
      'apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers:\n    - name: x\n      command: [sleep, infinity]\n      readinessProbe:\n        tcpSocket: {port: 9}\n        periodSeconds: 1\n',
    );
    const failState = failNet.stateDir;
    const r = await cli(['up', '-f', failing, '--state-dir', failState, ...mesh.netFlags(failNet), '--timeout', '3']);
    assert.equal(r.code, 1, show(r));
    const refused = `probe: connect ${literal(hostOf(failNet.podCidr, 2))}:9: ECONNREFUSED`;
    assert.match(r.stderr, new RegExp(`pod default/broken was not ready within 3 s: .*${refused}`));
    assert.deepEqual(await waitGone(failNet.bridge, failState, []), []);
  });

  await t.test('down leaves nothing but the logs and the CA; --purge removes those too', async () => {
    const pids = podPids(bridge);
    assert.ok(pids.length >= 6, `pids in the pods: ${pids.join(', ')}`);
    const r = await mesh.cli(['down']);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await waitGone(bridge, stateDir, pids), []);
    const kept = ['control.log', 'identity', 'pods', ...(mesh.dataPlane === 'per-host' ? ['dataplane'] : [])].sort();
    assert.deepEqual((await readdir(stateDir)).sort(), kept);
    const again = await mesh.cli(['get', 'pods']);
    assert.equal(again.code, 1);
    const purge = await mesh.cli(['down', '--purge']);
    assert.equal(purge.code, 0, show(purge));
    assert.equal(existsSync(stateDir), false, 'the state directory is gone');
    assert.match(again.stderr, /no mesh is running/);
  });

  await t.test('down after kill -9 of the control process leaves nothing', async () => {
    const second = mesh.spare(1);
    const { bridge: bridge2, stateDir: stateDir2 } = second;
    const c2 = ['--state-dir', stateDir2];
    const r = await cli(['up', '-f', mesh.file, ...c2, ...mesh.netFlags(second)]);
    assert.equal(r.code, 0, show(r));
    const pids = podPids(bridge2);
    const control = Number((await readFile(join(stateDir2, 'control.pid'), 'utf8')).trim());
    process.kill(control, 'SIGKILL');
    const refused = await cli(['up', '-f', mesh.file, ...c2, ...mesh.netFlags(second)]);
    assert.equal(refused.code, 1, show(refused));
    assert.match(
      refused.stderr,
      /lost its control process \(\d+\) but its pods may still run: run outrigger up --state-dir \S+ without -f to resume it, or outrigger down/,
    );
    const down = await cli(['down', ...c2]);
    assert.equal(down.code, 0, show(down));
    assert.match(down.stdout, /killed default\/client\/outrigger-proxy/);
    assert.deepEqual(await waitGone(bridge2, stateDir2, [...pids, control]), []);
  });
});
