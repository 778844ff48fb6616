// End-to-end, as root: the real `outrigger up / get / exec / logs / down` on a test-only
// bridge, pod CIDR and state directory: a meshed python3 http.server Deployment and a client pod, a
// request through both sidecars, refusals, and `down` (also after kill -9 of the control process)
// leaving no namespace, link, rule, process or state file behind.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cli, MESH_TOOLS, meshPreconditions, show, unavailable as unavailable_, meshWorkDir } from './root-helpers.js';
import { sweepBridge } from '../src/runtime/net/index.js';
import type { PodView, ServiceView } from '../src/runtime/mesh.js';
import { sumMetric } from './metrics-text.js';


// --- preconditions ------------------------------------------------------------------------------------------

function unavailable(t: TestContext, why: string): void {
  unavailable_(t, 'runtime-cli', 'the end-to-end outrigger up/down test', why, 'iproute2, iptables, util-linux (setpriv), curl and python3');
}

function preconditions(): string | undefined {
  return meshPreconditions(MESH_TOOLS);
}

// --- what "nothing left" means ------------------------------------------------------------------------------

function leftovers(bridge: string, stateDir: string, pids: readonly number[]): string[] {
  const out: string[] = [];
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(`outr-${bridge}-`));
  out.push(...ns.map((n) => `netns ${n}`));
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  if (new RegExp(`: ${bridge}[:@]`).test(links)) out.push(`link ${bridge}`);
  if (new RegExp(`master ${bridge} `).test(links)) out.push(`links on ${bridge}`);
  const rules = spawnSync('iptables', ['-w', '-S'], { encoding: 'utf8' }).stdout;
  if (rules.includes(`OUTR-FWD-${bridge}`)) out.push(`iptables rules or chain OUTR-FWD-${bridge}`);
  if (existsSync('/etc/netns')) out.push(...readdirSync('/etc/netns').filter((e) => e.startsWith(`outr-${bridge}-`)).map((e) => `/etc/netns/${e}`));
  for (const pid of pids) if (alive(pid)) out.push(`process ${pid}`);
  if (existsSync(stateDir)) {
    // The logs stay, and the mesh CA (so the trust anchor outlives a restart); `down --purge` removes both.
    const extra = readdirSync(stateDir).filter((f) => f !== 'control.log' && f !== 'pods' && f !== 'identity');
    out.push(...extra.map((f) => `state file ${f}`));
    const ca = join(stateDir, 'identity');
    if (existsSync(ca)) {
      const odd = readdirSync(ca).filter((f) => !['issuer.crt', 'issuer.key', 'trust-anchor.crt', 'token-signing.key'].includes(f));
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
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`outr-${bridge}-`));
  return ns.flatMap((n) => spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l !== '').map(Number));
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

const metric = sumMetric;

// --- the test -----------------------------------------------------------------------------------------------

void test('outrigger up / get / exec / logs / down with real pods', { timeout: 240_000 }, async (t) => {
  const why = preconditions();
  if (why) return unavailable(t, why);

  const tag = process.pid % 10000;
  const bridge = `ortc${tag}`;
  const bridge2 = `ortk${tag}`;
  const cidr = `10.249.${process.pid % 250}.0/24`;
  const cidr2 = `10.248.${process.pid % 250}.0/24`;
  const work = await meshWorkDir('outrigger-cli-');
  const stateDir = join(work, 'state');
  const stateDir2 = join(work, 'state2');
  const badState = join(work, 'state-bad');
  t.after(async () => {
    // Whatever happened: stop the meshes, then sweep by bridge name for anything a failed down left.
    for (const [d, b] of [[stateDir, bridge], [stateDir2, bridge2], [join(work, 'state-fail'), `ortf${tag}`]] as const) {
      await cli(['down', '--state-dir', d], 60_000).catch(() => undefined);
      await sweepBridge(b).catch(() => undefined);
    }
    await rm(work, { recursive: true, force: true });
  });

  const webRoot = join(work, 'www');
  await rm(webRoot, { recursive: true, force: true });
  await mkdir(webRoot, { recursive: true });
  await writeFile(join(webRoot, 'hello.txt'), 'hello from web\n');
  const file = join(work, 'hello.yaml');
  await writeFile(file, manifest(webRoot));
  const common = ['--state-dir', stateDir];

  const up = await cli(['up', '-f', file, ...common, '--bridge', bridge, '--pod-cidr', cidr]);
  assert.equal(up.code, 0, show(up));
  assert.match(up.stdout, /pod default\/client: ready/);
  assert.match(up.stdout, /mesh is up: 3 pods ready/);

  await t.test('get pods -o json: all ready and meshed', async () => {
    const r = await cli(['get', 'pods', '-o', 'json', ...common]);
    assert.equal(r.code, 0, show(r));
    const pods = (JSON.parse(r.stdout) as { items: PodView[] }).items;
    assert.equal(pods.length, 3, r.stdout);
    for (const p of pods) {
      assert.equal(p.ready, true, `${p.name} ready`);
      assert.equal(p.meshed, true, `${p.name} meshed`);
      assert.equal(p.phase, 'Running');
      assert.match(p.ip, /^10\.249\./);
    }
    const table = await cli(['get', 'pods', ...common]);
    assert.match(table.stdout, /^NAME\s+READY\s+STATUS\s+RESTARTS\s+IP\s+MESHED\n/);
    assert.match(table.stdout, /\nclient\s+1\/1\s+Running\s+0\s+10\.249\.\S+\s+yes\n/);
  });

  await t.test('get services and deployments', async () => {
    const r = await cli(['get', 'services', '-o', 'json', ...common]);
    assert.equal(r.code, 0, show(r));
    const [svc] = (JSON.parse(r.stdout) as { items: ServiceView[] }).items;
    assert.equal(svc?.name, 'web');
    assert.equal(svc?.endpoints.length, 2, JSON.stringify(svc));
    const d = await cli(['get', 'deployments', ...common]);
    assert.match(d.stdout, /\nweb\s+2\/2\s/, show(d));
  });

  await t.test('exec: curl from the client to a web pod goes through both proxies', async () => {
    const pods = (JSON.parse((await cli(['get', 'pods', '-o', 'json', ...common])).stdout) as { items: PodView[] }).items;
    const web = pods.find((p) => p.deployment === 'web');
    assert.ok(web);
    const target = `${web.ip}:8080`;
    const metrics = async (pod: string) => {
      const m = await cli(['exec', pod, ...common, '--', 'curl', '-sS', '-m', '5', 'http://127.0.0.1:4191/metrics']);
      assert.equal(m.code, 0, show(m));
      return m.stdout;
    };
    const outBefore = metric(await metrics('client'), 'request_total', { direction: 'outbound', target_addr: target });
    const inBefore = metric(await metrics(web.name), 'response_total', { direction: 'inbound', status_code: '200' });
    const r = await cli(['exec', 'client', ...common, '--', 'curl', '-sS', '-m', '10', `http://${target}/hello.txt`]);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, 'hello from web\n');

    const out = await metrics('client');
    assert.equal(metric(out, 'request_total', { direction: 'outbound', target_addr: target }), outBefore + 1, `client proxy outbound request_total for ${target}:\n${out}`);
    // Readiness probes reach the app from inside its own pod (not through the inbound proxy), so the
    // count moves by exactly our one request.
    const inn = await metrics(web.name);
    assert.equal(metric(inn, 'response_total', { direction: 'inbound', status_code: '200' }), inBefore + 1, `web proxy inbound response_total:\n${inn}`);

    const code = await cli(['exec', 'deploy/web', ...common, '--', 'sh', '-c', 'exit 7']);
    assert.equal(code.code, 7, 'the exit code is passed through');

    const logs = await cli(['logs', web.name, ...common]);
    assert.equal(logs.code, 0, show(logs));
    assert.match(logs.stdout, /"GET \/hello\.txt HTTP\/1\.1" 200/);
    const proxyLog = await cli(['logs', 'client', '-c', 'proxy', ...common]);
    assert.match(proxyLog.stdout, /proxy ready/, show(proxyLog));
  });

  await t.test('a second up is refused', async () => {
    const r = await cli(['up', '-f', file, ...common, '--bridge', bridge, '--pod-cidr', cidr]);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /a mesh is already running \(pid \d+\); use apply or down/);
  });

  await t.test('a bad manifest gets its errors and nothing is created', async () => {
    const bad = join(work, 'bad.yaml');
    const pod = (name: string) => `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}}\nspec:\n  containers: [{name: c, command: [sleep, infinity]}]\n`;
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
    const r = await cli(['up', '-f', bad, '--state-dir', badState, '--bridge', `ortb${tag}`, '--pod-cidr', '10.239.0.0/24']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /spec\.ports\[0\]\.port: must be an integer from 1 to 65535, got 70000/);
    assert.match(r.stderr, /spec\.containers\[0\]\.command: is required/);
    assert.match(r.stderr, /document 3 \(Deployment default\/d\): spec\.replicas: must be an integer of 0 or more, got "three"/);
    assert.match(r.stderr, /document 5 \(Pod default\/twin\): metadata\.name: duplicate Pod "default\/twin": first defined in document 4/);
    assert.equal(existsSync(badState), false, 'no state directory');
    assert.deepEqual(leftovers(`ortb${tag}`, badState, []), []);
  });

  await t.test('an up whose pod never becomes ready fails with why, and removes everything', async () => {
    const failing = join(work, 'failing.yaml');
    await writeFile(failing, 'apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers:\n    - name: x\n      command: [sleep, infinity]\n      readinessProbe:\n        tcpSocket: {port: 9}\n        periodSeconds: 1\n');
    const failState = join(work, 'state-fail');
    const r = await cli(['up', '-f', failing, '--state-dir', failState, '--bridge', `ortf${tag}`, '--pod-cidr', '10.239.1.0/24', '--timeout', '3']);
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /pod default\/broken was not ready within 3 s: .*probe: connect 10\.239\.1\.2:9: ECONNREFUSED/);
    assert.deepEqual(await waitGone(`ortf${tag}`, failState, []), []);
  });

  await t.test('down leaves nothing but the logs and the CA; --purge removes those too', async () => {
    const pids = podPids(bridge);
    assert.ok(pids.length >= 6, `pids in the pods: ${pids.join(', ')}`);
    const r = await cli(['down', ...common]);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await waitGone(bridge, stateDir, pids), []);
    assert.deepEqual((await readdir(stateDir)).sort(), ['control.log', 'identity', 'pods']);
    const again = await cli(['get', 'pods', ...common]);
    assert.equal(again.code, 1);
    const purge = await cli(['down', '--purge', ...common]);
    assert.equal(purge.code, 0, show(purge));
    assert.equal(existsSync(stateDir), false, 'the state directory is gone');
    assert.match(again.stderr, /no mesh is running/);
  });

  await t.test('down after kill -9 of the control process leaves nothing', async () => {
    const c2 = ['--state-dir', stateDir2];
    const r = await cli(['up', '-f', file, ...c2, '--bridge', bridge2, '--pod-cidr', cidr2]);
    assert.equal(r.code, 0, show(r));
    const pids = podPids(bridge2);
    const control = Number((await readFile(join(stateDir2, 'control.pid'), 'utf8')).trim());
    process.kill(control, 'SIGKILL');
    const refused = await cli(['up', '-f', file, ...c2, '--bridge', bridge2, '--pod-cidr', cidr2]);
    assert.equal(refused.code, 1, show(refused));
    assert.match(refused.stderr, /lost its control process \(\d+\) but its pods may still run: run outrigger up --state-dir \S+ without -f to resume it, or outrigger down/);
    const down = await cli(['down', ...c2]);
    assert.equal(down.code, 0, show(down));
    assert.match(down.stdout, /killed default\/client\/outrigger-proxy/);
    assert.deepEqual(await waitGone(bridge2, stateDir2, [...pids, control]), []);
  });
});
