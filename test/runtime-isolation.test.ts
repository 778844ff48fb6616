// End to end, as root: a pod is the security boundary in the local runtime too. From inside an app
// container (`outrigger exec`, which enters it as kubectl exec does): the mesh CA's keys, another pod's
// token, its own proxy's token, the proxy's /proc/<pid>/environ and the control socket cannot be read
// or reached; `iptables -t nat -F` is refused and traffic still goes through the sidecar; the host's
// filesystem is read-only; the container has the default capability set and no_new_privs. Containers
// of a pod share an emptyDir; apps get a ServiceAccount token for the API audience; securityContext's
// uid and read-only root hold. A container over its memory limit is OOM-killed and restarted while a
// neighbour's requests all succeed, `get pods` says OOMKilled, and `down` removes the pods' cgroups.
// A pod with shareProcessNamespace: true has one PID namespace, held by a holder as pid 1 that reaps
// orphans; its app sees the proxy's process but cannot read its environ or its token through
// /proc/<pid>/root (another uid, no SYS_PTRACE); a container's restart leaves the holder and the others
// running; deleting the pod, resuming the mesh and `down` leave no holder behind or take it over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from './helpers.js';
import { show } from './root-helpers.js';
import { meshTest, type PodView } from './mesh-harness.js';

const HOG_LIMIT = 64 * 1024 * 1024;

/** Grows by 8 MiB every 50 ms until the kernel stops it. */
const HOG = `import time
b = []
while True:
    b.append(bytearray(8 << 20))
    time.sleep(0.05)
`;

/** The pod with one PID namespace for its containers, the proxy's included. */
const SHARED_POD = `apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  shareProcessNamespace: true
  containers:
    - name: app
      command: [sleep, infinity]
    - name: sidekick
      command: [sleep, "2147483646"]
`;

const manifest = (work: string) => `${SHARED_POD}---
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  volumes: [{name: shared, emptyDir: {}}]
  containers:
    - name: http
      command: [python3, -m, http.server, "8080", --directory, /run/shared]
      ports: [{containerPort: 8080}]
      volumeMounts: [{name: shared, mountPath: /run/shared}]
      readinessProbe: {httpGet: {path: /hello.txt, port: 8080}, periodSeconds: 1}
      resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {cpu: "1", memory: 256Mi}}
    - name: writer
      command: [sh, -c, "echo hello-from-writer > /run/shared/hello.txt && exec sleep infinity"]
      volumeMounts: [{name: shared, mountPath: /run/shared}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  containers: [{name: app, command: [sleep, infinity]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsUser: 1000, runAsGroup: 1000}
  containers:
    - name: app
      command: [sleep, infinity]
      securityContext: {runAsNonRoot: true, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Pod
metadata: {name: hog, annotations: {outrigger.io/inject: disabled}}
spec:
  containers:
    - name: hog
      command: [python3, ${join(work, 'hog.py')}]
      resources: {limits: {memory: 64Mi}}
`;

/** The capability numbers of capabilities(7) this test looks for in CapBnd. */
const CAP = { NET_ADMIN: 12, NET_RAW: 13, SYS_PTRACE: 19, SYS_ADMIN: 21, NET_BIND_SERVICE: 10, CHOWN: 0 };

function capSet(status: string, field: string): bigint {
  const m = new RegExp(`^${field}:\\s+([0-9a-f]+)$`, 'm').exec(status);
  assert.ok(m !== null, status);
  return BigInt(`0x${m[1]}`);
}

const has = (set: bigint, cap: number) => ((set >> BigInt(cap)) & 1n) === 1n;

/** `ps -eo pid,ppid,user,stat,args` as rows. */
interface PsRow {
  readonly pid: number;
  readonly ppid: number;
  readonly user: string;
  readonly stat: string;
  readonly args: string;
}
const PS = ['ps', '-eo', 'pid=,ppid=,user=,stat=,args='];
function psRows(text: string): PsRow[] {
  return text
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(l))
    .filter((m) => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), user: m[3] ?? '', stat: m[4] ?? '', args: m[5] ?? '' }));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether `pid` still runs (a zombie runs nothing); what it is, for the message. */
async function running(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '' || / Z /.test(stat.slice(stat.lastIndexOf(')')))) return undefined;
  const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return `${stat.trim()} :: ${cmd.split('\0').join(' ')}`;
}

/** The holder's process record (pid and start time of its recorded process) and its pid 1 (the one child
 *  of the recorded process), as the host sees them. */
async function holderOf(stateDir: string, pod: string): Promise<{ pid: number; startTicks: number; init: number }> {
  const rec = JSON.parse(
    await readFile(join(stateDir, 'pods', 'default', pod, 'outrigger-pause.proc.json'), 'utf8'),
  ) as { pid: number; startTicks: number };
  const kids = (await readFile(`/proc/${rec.pid}/task/${rec.pid}/children`, 'utf8')).trim().split(/\s+/);
  assert.equal(kids.length, 1, `the holder's unshare has one child: ${kids.join(' ')}`);
  const init = Number(kids[0]);
  const status = await readFile(`/proc/${init}/status`, 'utf8');
  assert.match(status, /^NSpid:\s+\d+\s+1$/m, "the holder's init is pid 1 of its namespace");
  return { pid: rec.pid, startTicks: rec.startTicks, init };
}

void test('runtime isolation: a pod is the security boundary', { timeout: 600_000 }, async (t) => {
  const mesh = await meshTest(t, 'runtime-isolation', {
    what: 'the end-to-end isolation test',
    files: { 'hog.py': HOG },
  });
  if (mesh === undefined) return;
  const { stateDir, work } = mesh;
  await mesh.up(manifest(work));
  const pods = await mesh.pods();
  const pod = (name: string) => pods.find((p) => p.name === name) as PodView;
  // Per-host (the test matrix), the pods have no proxy container: the node proxy that serves them
  // stands where the sidecar does, and what only a sidecar has (a proxy in the pod) is left out.
  const perHost = mesh.dataPlane === 'per-host';
  const fails = async (argv: string[], what: string) => {
    const r = await mesh.exec('client', argv);
    assert.notEqual(r.code, 0, `${what} must fail from an app container\n${show(r)}`);
    return r;
  };

  await t.test('the mesh CA, other pods, the proxy and the control plane are out of reach', async () => {
    const identity = await readdir(join(stateDir, 'identity'));
    assert.ok(identity.length > 0, 'the CA is on the host');
    for (const f of identity) await fails(['cat', join(stateDir, 'identity', f)], `reading the CA's ${f}`);
    const webToken = join(stateDir, 'tokens', 'default', 'web', 'token');
    const ownProxyToken = join(stateDir, 'tokens', 'default', 'client', 'token');
    assert.ok(existsSync(webToken) && existsSync(ownProxyToken), 'the proxies hold tokens on the host');
    await fails(['cat', webToken], "reading another pod's token");
    await fails(['cat', ownProxyToken], "reading its own proxy's token");
    await fails(['cat', join(stateDir, 'tap-token')], "reading the mesh's tap token");
    await fails(['cat', join(stateDir, 'state.json')], 'reading the mesh state');
    await fails(
      ['curl', '-sS', '-m', '5', '--unix-socket', join(stateDir, 'control.sock'), 'http://x/status'],
      'the control socket',
    );
    for (const p of ['client', 'web']) {
      await fails(['cat', `/proc/${await mesh.proxyPid(pod(p))}/environ`], `reading the environ of ${p}'s proxy`);
    }
    // Its own PID namespace: the init, the app, and what exec runs; no proxy, no other pod.
    const ps = await mesh.run('client', ['ps', '-eo', 'pid,args']);
    assert.doesNotMatch(ps, /outrigger(\.js)? proxy/, ps);
    assert.doesNotMatch(ps, /http\.server/, ps);
    assert.match(ps, /^\s*1 /m, ps);
    // The proxy itself still reads its token: it holds a certificate from the mesh CA.
    const id = await mesh.cli(['identity', 'client']);
    assert.equal(id.code, 0, show(id));
    // Another pod's hosts file is not there to read either.
    const etc = await mesh.exec('client', ['ls', '/etc/netns']);
    assert.equal(etc.stdout.trim(), '', show(etc));
  });

  await t.test('iptables -t nat -F is refused; traffic still goes through the sidecar', async () => {
    const r = await fails(['iptables', '-t', 'nat', '-F'], 'flushing the pod rules');
    assert.match(r.stderr, /Permission denied|not permitted/i, show(r));
    const before = await mesh.metric('client', 'request_total', { direction: 'outbound' });
    const body = await mesh.run('client', ['curl', '-sS', '-m', '10', '--fail', 'http://web/hello.txt']);
    assert.equal(body, 'hello-from-writer\n', 'the emptyDir is shared by the pod containers');
    const after = await mesh.metric('client', 'request_total', { direction: 'outbound' });
    assert.equal(after - before, 1, 'the request went through the client proxy');
  });

  await t.test('the default capabilities, no_new_privs, the host read-only, a token for the API', async () => {
    const status = await mesh.run('client', ['cat', '/proc/self/status']);
    const bnd = capSet(status, 'CapBnd');
    for (const c of ['NET_ADMIN', 'NET_RAW', 'SYS_PTRACE', 'SYS_ADMIN'] as const) assert.ok(!has(bnd, CAP[c]), c);
    for (const c of ['NET_BIND_SERVICE', 'CHOWN'] as const) assert.ok(has(bnd, CAP[c]), c);
    assert.match(status, /^NoNewPrivs:\s+1$/m);
    const w = await fails(['touch', '/usr/outrigger-isolation-test'], 'writing the host filesystem');
    assert.match(w.stderr, /Read-only file system/, show(w));
    assert.ok(!existsSync('/usr/outrigger-isolation-test'));
    await mesh.run('client', ['touch', '/tmp/outrigger-isolation-test']); // scratch space stays writable
    const sa = '/var/run/secrets/kubernetes.io/serviceaccount';
    assert.equal(await mesh.run('client', ['cat', `${sa}/namespace`]), 'default');
    const jwt = await mesh.run('client', ['cat', `${sa}/token`]);
    const claims = JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { aud: unknown };
    assert.deepEqual([claims.aud].flat(), ['https://kubernetes.default.svc.cluster.local']);
    const proxyClaims = JSON.parse(
      Buffer.from(
        (await readFile(join(stateDir, 'tokens', 'default', 'client', 'token'), 'utf8')).split('.')[1] ?? '',
        'base64url',
      ).toString(),
    ) as { aud: unknown };
    assert.notDeepEqual([proxyClaims.aud].flat(), [claims.aud].flat(), 'the proxy token is for the identity service');
  });

  await t.test('securityContext: runAsUser, no capability, a read-only root, no token', async () => {
    assert.equal((await mesh.run('nonroot', ['id', '-u'])).trim(), '1000');
    assert.equal((await mesh.run('nonroot', ['id', '-g'])).trim(), '1000');
    const status = await mesh.run('nonroot', ['cat', '/proc/self/status']);
    assert.equal(capSet(status, 'CapBnd'), 0n);
    assert.equal(capSet(status, 'CapEff'), 0n);
    const w = await mesh.exec('nonroot', ['touch', '/tmp/outrigger-isolation-ro']);
    assert.notEqual(w.code, 0, show(w));
    assert.match(w.stderr, /Read-only file system/, show(w));
    const sa = await mesh.exec('nonroot', ['ls', '/var/run/secrets/kubernetes.io/serviceaccount']);
    assert.notEqual(sa.code, 0, `automountServiceAccountToken: false\n${show(sa)}`);
  });

  let podCgroup: string | undefined;
  await t.test('a pod has a cgroup with its limits; over its memory limit a container is OOMKilled', async () => {
    // The hog may be between two of its lives: read its cgroup from a live one.
    const memLine = await waitFor('the hog running', async () => {
      const s = (await mesh.pods()).find((p) => p.name === 'hog')?.containers.find((c) => c.name === 'hog')?.state;
      if (s?.state !== 'running') return undefined;
      const text = await readFile(`/proc/${s.pid}/cgroup`, 'utf8').catch(() => '');
      const line = text.split('\n').find((l) => /:memory:/.test(l));
      // A process that has ended (OOM-killed) but is not yet reaped reads as the root group ("/").
      return line !== undefined && line.split(':')[2] !== '/' ? line : undefined;
    });
    const rel = memLine.split(':')[2] ?? '';
    assert.match(rel, /\/outrigger\/[^/]+\/hog$/);
    const dir = join('/sys/fs/cgroup/memory', rel);
    assert.equal(Number((await readFile(join(dir, 'memory.limit_in_bytes'), 'utf8')).trim()), HOG_LIMIT);

    // A neighbour's requests all succeed meanwhile.
    const hogRestarts = async () =>
      (await mesh.pods()).find((x) => x.name === 'hog')?.containers.find((x) => x.name === 'hog')?.restarts ?? 0;
    const before = await hogRestarts();
    const load = mesh.loadLoop('client', 'web', 80, '/hello.txt');
    const oom = await waitFor(
      'an OOMKilled restart of the hog',
      async () => {
        const p = (await mesh.pods()).find((x) => x.name === 'hog');
        const c = p?.containers.find((x) => x.name === 'hog');
        return c !== undefined && c.restarts > before && c.lastTermination?.reason === 'OOMKilled' ? c : undefined;
      },
      120_000,
    );
    assert.equal(oom.lastTermination?.exitCode, 137);
    const sum = await load.stop();
    assert.ok(sum.ok > 0, JSON.stringify(sum));
    assert.equal(sum.fail, 0, JSON.stringify(sum));

    const table = await mesh.cli(['get', 'pods']);
    assert.equal(table.code, 0, show(table));
    assert.match(table.stdout, /^hog\s+\S+\s+\S+\s+[1-9][0-9]* \(OOMKilled [0-9]+[smh] ago\)/m, table.stdout);
    const web = (await mesh.pods()).find((x) => x.name === 'web');
    assert.ok((web?.usage?.memoryBytes ?? 0) > 0, JSON.stringify(web?.usage));
    const wide = await mesh.cli(['stat', 'pod', '-o', 'wide']);
    assert.equal(wide.code, 0, show(wide));
    assert.match(wide.stdout, /POD_CPU\s+POD_MEM/, wide.stdout);

    podCgroup = join(dir, '..');
    assert.ok(existsSync(podCgroup));
  });

  let heldBy: number[] = [];
  /** Sidecar mode: the proxy container shares the pod's PID namespace, and the app sees its process but
   *  cannot read it (another uid, no SYS_PTRACE). */
  const sidecarShared = async (sidekickPid: number, proxyPid: number | undefined): Promise<void> => {
    assert.ok(proxyPid !== undefined, "the app sees its proxy's process");
    const proxy = { pid: proxyPid };
    const sidekick = { pid: sidekickPid };
    // The proxy shares it too.
    const inProxy = await mesh.cli(['exec', 'shared', '-c', 'outrigger-proxy', '--', ...PS]);
    assert.equal(inProxy.code, 0, show(inProxy));
    const fromProxy = psRows(inProxy.stdout);
    assert.ok(
      fromProxy.some((r) => r.args === 'sleep infinity'),
      JSON.stringify(fromProxy),
    );

    // Seen, not read: the proxy runs as another uid, and the app has no SYS_PTRACE.
    assert.match(await mesh.run('shared', ['cat', `/proc/${proxy.pid}/cmdline`]), /proxy/);
    const token = join(stateDir, 'tokens', 'default', 'shared', 'token');
    assert.ok(existsSync(token), 'the proxy holds a token on the host');
    for (const argv of [
      ['cat', `/proc/${proxy.pid}/environ`],
      ['ls', `/proc/${proxy.pid}/root/`],
      ['cat', `/proc/${proxy.pid}/root${token}`],
    ]) {
      const r = await mesh.exec('shared', argv);
      assert.notEqual(r.code, 0, `${argv.join(' ')} must fail from the app\n${show(r)}`);
      assert.match(r.stderr, /Permission denied/, show(r));
    }
    // What the rule allows shows it is the rule that refuses: the same uid and capabilities read it.
    assert.match(await mesh.run('shared', ['cat', `/proc/${sidekick.pid}/environ`]), /PATH=/);
    // The proxy still reads its own token: it holds a certificate from the mesh CA.
    const id = await mesh.cli(['identity', 'shared']);
    assert.equal(id.code, 0, show(id));
  };

  await t.test('shareProcessNamespace: one PID namespace per pod, held by a holder', async () => {
    const holder = await holderOf(stateDir, 'shared');
    const ps = psRows(await mesh.run('shared', PS));
    const one = ps.find((r) => r.pid === 1);
    assert.ok(one !== undefined && /outrigger-init/.test(one.args) && one.user === 'root', JSON.stringify(ps));
    assert.ok(
      ps.some((r) => r.ppid === 1 && r.user === '65535' && r.args === 'sleep 2147483647'),
      `the holder's placeholder, as nobody: ${JSON.stringify(ps)}`,
    );
    // Its init (root) carries the same argv: the proxy is the process of uid 2102.
    const proxy = ps.find((r) => r.user === '2102' && /outrigger(\.js)? proxy/.test(r.args));
    const sidekick = ps.find((r) => r.args === 'sleep 2147483646');
    assert.ok(sidekick !== undefined, `the app sees its neighbour container: ${JSON.stringify(ps)}`);
    if (perHost) {
      // The node proxy serves the pod from the host's PID namespace: not in the pod's to see.
      assert.ok(proxy === undefined && !ps.some((r) => r.user === '2102'), JSON.stringify(ps));
    } else await sidecarShared(sidekick.pid, proxy?.pid);

    // An orphan goes to the holder (pid 1), which reaps it: no zombie is left.
    const orphan = await mesh.run('shared', [
      'sh',
      '-c',
      `(exec sleep 0.7 &); sleep 0.3; ${PS.join(' ')}; echo ---; sleep 1.5; ${PS.join(' ')}`,
    ]);
    const [during, after] = orphan.split('---\n').map(psRows);
    assert.ok(
      during?.some((r) => r.args === 'sleep 0.7' && r.ppid === 1),
      `the orphan's parent is the holder: ${orphan}`,
    );
    assert.ok(after !== undefined && !after.some((r) => r.args === 'sleep 0.7'), `reaped: ${orphan}`);
    assert.ok(!after.some((r) => r.stat.startsWith('Z')), `no zombie: ${orphan}`);

    // One container restarted (the app may signal it: same namespace, CAP_KILL): the holder and the
    // others run on.
    const before = (await mesh.pods()).find((p) => p.name === 'shared') as PodView;
    const pidOf = (p: PodView, c: string) => {
      const s = p.containers.find((x) => x.name === c)?.state;
      return s?.state === 'running' ? s.pid : undefined;
    };
    await mesh.run('shared', ['kill', String(sidekick.pid)]);
    const after2 = await waitFor('the sidekick restarted', async () => {
      const p = (await mesh.pods()).find((x) => x.name === 'shared');
      const c = p?.containers.find((x) => x.name === 'sidekick');
      return p !== undefined && c !== undefined && c.restarts >= 1 && c.state.state === 'running' ? p : undefined;
    });
    assert.equal(pidOf(after2, 'app'), pidOf(before, 'app'));
    assert.equal(pidOf(after2, 'outrigger-proxy'), pidOf(before, 'outrigger-proxy'));
    assert.deepEqual(await holderOf(stateDir, 'shared'), holder, 'the holder ran on');
    const ps2 = psRows(await mesh.run('shared', PS));
    assert.ok(
      ps2.some((r) => r.args === 'sleep 2147483646' && r.pid !== sidekick.pid),
      JSON.stringify(ps2),
    );

    // Deleted with the pod: nothing of the holder is left.
    const withoutShared = manifest(work).slice(SHARED_POD.length + '---\n'.length);
    await mesh.apply(withoutShared);
    for (const pid of [holder.pid, holder.init]) {
      const left = await running(pid);
      assert.equal(left, undefined, `the holder (pid ${pid}) went with the pod: ${left}`);
    }
    // Back, and the control process killed: the resumed mesh takes the holder over, and `down` removes it.
    await mesh.apply(manifest(work));
    const back = await holderOf(stateDir, 'shared');
    const pidsBack = (await mesh.pods()).find((p) => p.name === 'shared') as PodView;
    heldBy = [back.pid, back.init];
    const control = Number((await readFile(join(stateDir, 'control.pid'), 'utf8')).trim());
    process.kill(control, 'SIGKILL');
    await waitFor('the control process gone', () => Promise.resolve(alive(control) ? undefined : true));
    const resumed = await mesh.cli(['up'], 120_000);
    assert.equal(resumed.code, 0, show(resumed));
    const containers = [...(perHost ? [] : ['outrigger-proxy']), 'app', 'sidekick'];
    assert.match(resumed.stdout, new RegExp(`shared: adopted ${containers.join(', ')}\n`), resumed.stdout);
    assert.deepEqual(await holderOf(stateDir, 'shared'), back, 'the holder was taken over, not replaced');
    const pidsResumed = (await mesh.pods()).find((p) => p.name === 'shared') as PodView;
    for (const c of containers) assert.equal(pidOf(pidsResumed, c), pidOf(pidsBack, c), c);
  });

  await t.test("down takes the pods' cgroups and the shared pod's holder with them", async () => {
    assert.ok(podCgroup !== undefined && heldBy.length > 0, 'the subtests before ran');
    const podDir = podCgroup;
    const down = await mesh.cli(['down'], 120_000);
    assert.equal(down.code, 0, show(down));
    assert.ok(!existsSync(podDir), `${podDir} is left after down`);
    for (const pid of heldBy) assert.equal(await running(pid), undefined, `the shared pod's holder (pid ${pid})`);
  });
});
