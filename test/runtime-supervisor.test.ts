// End to end: pods as processes in real network namespaces, on a bridge and CIDR of their own (never
// the default outr0 / 10.244.0.0/16). A Python http.server pod probed ready, killed and restarted; two
// meshed pods whose proxies (uid 2102) start first and carry a request from one app to the other; and
// a teardown that leaves no process, namespace or link behind, even when the test fails. Needs root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from './helpers.js';
import { parseManifests, planPods, type PodPlan } from '../src/runtime/manifests/index.js';
import {
  DEFAULT_PROXY_INIT,
  listLinks,
  listNetns,
  netnsPrefix,
  PodNetwork,
  runCommand,
  teardownNetwork,
  type NetRecord,
  type PodNet,
} from '../src/runtime/net/index.js';
import { MESH_NETS, networksFor, workDirOf } from './mesh-harness.js';
import {
  killNetnsProcesses,
  killRecordedProcesses,
  PodProcesses,
  PROXY_CONTAINER,
  resolveProxyCommand,
  type ContainerStatus,
  type PodStatus,
} from '../src/runtime/supervisor/index.js';
import { sumMetric } from './metrics-text.js';

const execFileP = promisify(execFile);
const PROXY_UID = DEFAULT_PROXY_INIT.proxyUid;

const skipReason = 'needs root to create network namespaces, run processes in them and switch to the proxy uid';
const isRoot = process.getuid?.() === 0;

function runningPid(c: ContainerStatus | undefined): number {
  if (c?.state.state !== 'running')
    throw new Error(`container ${c?.name ?? '?'} is not running: ${JSON.stringify(c?.state)}`);
  return c.state.pid;
}

function container(s: PodStatus, name: string): ContainerStatus | undefined {
  return s.containers.find((c) => c.name === name);
}

/** The process a container runs: the child of the init that the recorded process (unshare) forked. */
async function containerProcess(recorded: number): Promise<number> {
  const child = async (pid: number) =>
    Number((await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/)[0]);
  return child(await child(recorded));
}

async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/** Sum of a metric's samples whose labels include `match`, from a proxy's admin port at the pod's IP. */
async function metric(ip: string, name: string, match: Record<string, string>): Promise<number> {
  return sumMetric(await (await fetch(`http://${ip}:4191/metrics`)).text(), name, match);
}

function podsFrom(yaml: string): PodPlan[] {
  return planPods(parseManifests([{ file: 'runtime-supervisor.test.yaml', text: yaml }]));
}

if (!isRoot && process.env.CI === 'true') {
  void test('runtime-supervisor: pods as processes end to end', () => {
    assert.fail(
      `runtime-supervisor.test.js ${skipReason}, and CI=true: run CI as root (this test must not be skipped there)`,
    );
  });
} else if (!isRoot) {
  process.stderr.write(
    `\n!!! SKIPPING test/runtime-supervisor.test.ts: it ${skipReason}; run it as root (sudo) !!!\n\n`,
  );
  void test('runtime-supervisor: pods as processes end to end', { skip: `SKIPPED: ${skipReason}` }, () => undefined);
} else {
  void test('runtime-supervisor: pods as processes end to end', { timeout: 180_000 }, async (t) => {
    const { bridge, podCidr } = MESH_NETS['runtime-supervisor'][0];
    const stateDir = join(workDirOf('runtime-supervisor'), 'state');
    const pods: PodProcesses[] = [];
    const seenPids = new Set<number>();
    let lastRecord: NetRecord | undefined;

    // Registered first, so it runs however the test ends: stop the pods, kill whatever their records
    // or namespaces still hold, remove the network from its record; the harness then sweeps the bridge
    // by name and removes the state.
    t.after(async () => {
      const warn = (e: unknown) => console.error(`cleanup: ${String(e)}`);
      await Promise.all(pods.map((p) => p.stop().catch(warn)));
      await killRecordedProcesses(stateDir).catch(warn);
      for (const ns of await listNetns(runCommand).catch(() => [])) {
        if (ns.startsWith(netnsPrefix(bridge))) await killNetnsProcesses(ns).catch(warn);
      }
      if (lastRecord !== undefined) await teardownNetwork(lastRecord).catch(warn);
    });
    await networksFor(t, 'runtime-supervisor');
    await mkdir(stateDir, { mode: 0o755 }); // the proxy's uid may need to reach a staged copy in here
    await chmod(stateDir, 0o755);

    const net = await PodNetwork.create({
      bridge,
      podCidr,
      onRecord: async (r) => {
        lastRecord = r;
        await writeFile(join(stateDir, 'network.json'), JSON.stringify(r));
      },
    });
    // Beside the state directory, not in it: no container sees the state directory.
    const www = join(workDirOf('runtime-supervisor'), 'www');
    await mkdir(www);
    await writeFile(join(www, 'hello.txt'), 'hello from the pod\n');

    const addPod = async (p: PodPlan): Promise<PodNet> =>
      net.addPod({ namespace: p.namespace, name: p.name, hostname: p.hostname });

    await t.test('an http.server pod: probed ready from inside its namespace, restarted after a kill', async () => {
      const [pod] = podsFrom(`
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations: { outrigger.io/inject: disabled }
spec:
  containers:
    - name: http
      command: [python3, -u, -m, http.server]
      args: ["8080", "--bind", "$(POD_IP)"]
      workingDir: ${www}
      env:
        - name: POD_IP
          valueFrom: { fieldRef: { fieldPath: status.podIP } }
      ports: [{ name: http, containerPort: 8080 }]
      readinessProbe:
        httpGet: { path: /hello.txt, port: http }
        periodSeconds: 1
        failureThreshold: 1
`);
      assert.ok(pod !== undefined);
      const podNet = await addPod(pod);
      const pp = new PodProcesses({ pod, net: podNet, stateDir });
      pods.push(pp);
      await pp.start();
      await pp.whenReady(20_000);
      const first = runningPid(container(pp.status(), 'http'));
      seenPids.add(first);
      assert.equal(
        (await execFileP('ip', ['netns', 'identify', String(first)])).stdout.trim(),
        podNet.netns,
        'the app runs in the pod namespace',
      );
      assert.equal(await (await fetch(`http://${podNet.ip}:8080/hello.txt`)).text(), 'hello from the pod\n');

      const readiness: string[] = [];
      pp.on('ready', () => readiness.push('ready'));
      pp.on('unready', () => readiness.push('unready'));
      process.kill(first, 'SIGKILL');
      await waitFor('the restart', () => pp.status().restarts === 1 && pp.ready);
      const second = runningPid(container(pp.status(), 'http'));
      seenPids.add(second);
      assert.notEqual(second, first);
      assert.deepEqual(readiness, ['unready', 'ready']);
      const c = container(pp.status(), 'http');
      assert.equal(c?.restarts, 1);
      assert.equal(c?.lastTermination?.signal, 'SIGKILL');

      const log = await readFile(join(stateDir, 'pods', 'default', 'web', 'http.log'), 'utf8');
      assert.match(
        log,
        new RegExp(
          `start of container http: pid ${first}: python3 -u -m http.server 8080 --bind ${podNet.ip.replace(/\./g, '\\.')}`,
        ),
      );
      assert.match(
        log,
        new RegExp(`container http \\(pid ${first}\\) was killed by SIGKILL after [0-9.]+ s; restarting in 1\\.0 s`),
      );
      assert.match(log, new RegExp(`start \\(restart 1\\) of container http: pid ${second}`));
      assert.equal(log.match(/Serving HTTP on /g)?.length, 2, `both starts served:\n${log}`);
      assert.match(log, /"GET \/hello.txt HTTP\/1.1" 200/, 'the probes reached the app');
    });

    await t.test('meshed pods: the proxy starts first as uid 2102; a request crosses both proxies', async () => {
      const proxyCommand = await resolveProxyCommand({ user: { uid: PROXY_UID, gid: PROXY_UID }, stateDir });
      const [server, client] = podsFrom(`
apiVersion: v1
kind: Pod
metadata: { name: server }
spec:
  containers:
    - name: http
      command: [python3, -u, -m, http.server, "8081"]
      workingDir: ${www}
      readinessProbe:
        tcpSocket: { port: 8081 }
        periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: { name: client }
spec:
  containers:
    - name: idle
      command: [sleep, "300"]
`);
      assert.ok(server !== undefined && client !== undefined);
      const nets = new Map<string, PodNet>();
      for (const p of [server, client]) {
        const n = await addPod(p);
        await net.applyProxyInit(n.netns, DEFAULT_PROXY_INIT);
        nets.set(p.name, n);
      }
      const serverNet = nets.get('server') as PodNet;
      const clientNet = nets.get('client') as PodNet;

      const started: PodProcesses[] = [];
      for (const p of [server, client]) {
        const pp = new PodProcesses({
          pod: p,
          net: nets.get(p.name) as PodNet,
          stateDir,
          proxy: { command: proxyCommand, terminationGraceMs: 3000 },
        });
        pods.push(pp);
        started.push(pp);
        // The moment an app container first shows up, the proxy must already be ready.
        pp.on('change', () => {
          const s = pp.status();
          const app = s.containers.find((c) => c.name !== PROXY_CONTAINER);
          if (app !== undefined && !proxyWasReadyFirst.has(p.name))
            proxyWasReadyFirst.set(p.name, container(s, PROXY_CONTAINER)?.ready === true);
        });
      }
      const proxyWasReadyFirst = new Map<string, boolean>();
      await Promise.all(started.map((pp) => pp.start()));
      await Promise.all(started.map((pp) => pp.whenReady(30_000)));

      for (const pp of started) {
        const s = pp.status();
        assert.equal(s.meshed, true);
        assert.equal(s.phase, 'Running');
        assert.deepEqual(
          s.containers.map((c) => c.name),
          [PROXY_CONTAINER, s.containers[1]?.name],
        );
        assert.equal(proxyWasReadyFirst.get(s.name), true, `${s.name}: the proxy was ready before the app started`);
        const proxyPid = runningPid(container(s, PROXY_CONTAINER));
        const appPid = runningPid(s.containers[1]);
        seenPids.add(proxyPid);
        seenPids.add(appPid);
        const proxyC = container(s, PROXY_CONTAINER);
        const appC = s.containers[1];
        assert.ok(
          proxyC?.state.state === 'running' &&
            appC?.state.state === 'running' &&
            proxyC.state.startedAt <= appC.state.startedAt,
        );
        // The recorded pid enters the pod's namespaces and holds the container's init, which runs
        // the container's own process (isolation.ts): that one has the container's uid.
        assert.equal(
          (await execFileP('ps', ['-o', 'uid=', '-p', String(await containerProcess(proxyPid))])).stdout.trim(),
          String(PROXY_UID),
          'the proxy runs as uid 2102',
        );
        assert.equal(
          (await execFileP('ps', ['-o', 'uid=', '-p', String(await containerProcess(appPid))])).stdout.trim(),
          '0',
          'the app runs as root',
        );
        assert.equal((await execFileP('ip', ['netns', 'identify', String(proxyPid)])).stdout.trim(), s.netns);
      }

      // A's app → A's proxy (outbound, orig dst B:8081) → B's proxy (inbound) → B's app.
      const { stdout } = await execFileP('ip', [
        'netns',
        'exec',
        clientNet.netns,
        'curl',
        '-sS',
        '-m',
        '10',
        `http://${serverNet.ip}:8081/hello.txt`,
      ]);
      assert.equal(stdout, 'hello from the pod\n');
      assert.ok(
        (await metric(clientNet.ip, 'request_total', { direction: 'outbound' })) >= 1,
        'the client proxy carried the request out',
      );
      assert.ok(
        (await metric(serverNet.ip, 'request_total', { direction: 'inbound' })) >= 1,
        'the server proxy carried it in',
      );
      assert.equal(await metric(serverNet.ip, 'request_total', { direction: 'outbound' }), 0);

      const proxyLog = await readFile(join(stateDir, 'pods', 'default', 'server', `${PROXY_CONTAINER}.log`), 'utf8');
      assert.match(
        proxyLog,
        /start of container outrigger-proxy: pid \d+: .*outrigger\.js proxy .*--inbound-port 4143/,
      );
    });

    await t.test(
      'a proxy that never gets ready fails the pod start with its log, and nothing of the pod is left running',
      async () => {
        const [pod] = podsFrom(`
apiVersion: v1
kind: Pod
metadata: { name: broken }
spec:
  containers:
    - name: app
      command: [sleep, "300"]
`);
        assert.ok(pod !== undefined);
        const podNet = await addPod(pod);
        const broken = {
          argv: ['/bin/sh', '-c', 'echo "proxy: cannot bind: EADDRINUSE" >&2; exit 1', 'fake-proxy'],
          root: '/',
          staged: false,
          env: {},
        };
        const pp = new PodProcesses({
          pod,
          net: podNet,
          stateDir,
          proxy: { command: broken, readyTimeoutMs: 2500 },
          backoff: { initialMs: 200 },
        });
        pods.push(pp);
        await assert.rejects(pp.start(), (err: Error) => {
          assert.match(
            err.message,
            /pod default\/broken: the proxy was not ready within 2.5 s \(.*restarts [1-9]\d*\)/,
          );
          assert.match(err.message, /proxy: cannot bind: EADDRINUSE/, 'the end of the proxy log is in the message');
          return true;
        });
        const s = pp.status();
        assert.equal(s.phase, 'Failed');
        assert.deepEqual(
          s.containers.map((c) => c.name),
          [PROXY_CONTAINER],
          'the app was never started',
        );
        assert.equal(container(s, PROXY_CONTAINER)?.finished, true);
        assert.deepEqual(
          (await execFileP('ip', ['netns', 'pids', podNet.netns])).stdout.trim(),
          '',
          'nothing runs in the pod',
        );
      },
    );

    await t.test('stop and teardown leave nothing behind', async () => {
      const statuses = pods.map((p) => p.status());
      for (const s of statuses)
        for (const c of s.containers) if (c.state.state === 'running') seenPids.add(c.state.pid);
      const began = Date.now();
      await Promise.all(pods.map((p) => p.stop()));
      assert.ok(Date.now() - began < 10_000, `stopping took ${Date.now() - began} ms`);
      for (const pid of seenPids) assert.equal(await alive(pid), false, `process ${pid} is gone`);
      for (const s of statuses)
        if (s.netns !== undefined)
          assert.deepEqual(await killNetnsProcesses(s.netns), [], `nothing was left in ${s.netns}`);
      const records = (await readdir(join(stateDir, 'pods'), { recursive: true })).filter((f) =>
        String(f).endsWith('.proc.json'),
      );
      assert.deepEqual(records, [], 'no process record is left');

      await net.teardown();
      assert.deepEqual(
        (await listNetns(runCommand)).filter((n) => n.startsWith(netnsPrefix(bridge))),
        [],
        'no namespace',
      );
      const links = await listLinks(runCommand);
      assert.deepEqual(
        links.filter((l) => l.ifname === bridge || l.master === bridge),
        [],
        'no bridge, no veth',
      );
      const { stdout: ps } = await execFileP('ps', ['-eo', 'pid=,args=']);
      assert.doesNotMatch(ps, new RegExp(`${stateDir}|http\\.server 808[01]`), 'no process of this test');
    });
  });
}
