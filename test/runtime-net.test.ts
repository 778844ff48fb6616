// End to end: the pod network with real namespaces, veths, a bridge and iptables, on a bridge and CIDR
// of its own (never the default outr0 / 10.244.0.0/16, so it cannot touch a real mesh). Needs root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, readdir, readFile, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import {
  CommandError,
  DEFAULT_PROXY_INIT,
  forwardChain,
  netnsExecArgv,
  netnsPids,
  netnsPrefix,
  parseNetRecord,
  PodNetwork,
  runCommand,
  type Runner,
  serviceHostNames,
  sweepBridge,
  teardownNetwork,
  type NetRecord,
  type PodNet,
} from '../src/runtime/net/index.js';
import { MESH_NETS, networksFor } from './mesh-harness.js';

const execFileP = promisify(execFile);
const PROXY_UID = DEFAULT_PROXY_INIT.proxyUid;

async function onPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    try {
      await access(p);
      return p;
    } catch {
      // keep looking
    }
  }
  return undefined;
}

/** The argv prefix that runs a program as the proxy's uid: setpriv if present, else runuser. */
async function asProxyUid(): Promise<string[]> {
  if (await onPath('setpriv')) return ['setpriv', `--reuid=${PROXY_UID}`, `--regid=${PROXY_UID}`, '--clear-groups'];
  if (await onPath('runuser')) return ['runuser', '-u', `#${PROXY_UID}`, '--'];
  throw new Error('neither setpriv nor runuser is installed: cannot run a process as the proxy uid');
}

async function run(file: string, args: string[]): Promise<string> {
  return (await execFileP(file, args, { env: { ...process.env, LC_ALL: 'C' } })).stdout;
}

/** A one-shot TCP client: prints what the server sent before closing, or ERR <code>, or TIMEOUT. */
function clientScript(host: string, port: number): string {
  return `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d='';s.setEncoding('utf8');
s.on('data',c=>d+=c);s.on('end',()=>{process.stdout.write(d);process.exit(0)});
s.on('error',e=>{process.stdout.write('ERR '+e.code);process.exit(0)});
setTimeout(()=>{process.stdout.write('TIMEOUT');process.exit(0)},3000).unref();`;
}

/** Servers that answer every connection with their label and close; prints READY when all listen. */
function serversScript(listeners: [host: string, port: number, label: string][]): string {
  return `const net=require('net');const L=${JSON.stringify(listeners)};let n=0;
for(const [h,p,label] of L){net.createServer(s=>{s.on('error',()=>{});s.end(label)}).listen(p,h,()=>{if(++n===L.length)console.log('READY')})}`;
}

const skipReason = 'needs root to create network namespaces, a bridge and iptables rules';
const isRoot = process.getuid?.() === 0;

if (!isRoot && process.env.CI === 'true') {
  void test('runtime-net: pod network end to end', () => {
    assert.fail(`runtime-net.test.js ${skipReason}, and CI=true: run CI as root (this test must not be skipped there)`);
  });
} else if (!isRoot) {
  process.stderr.write(
    `\n!!! SKIPPING test/runtime-net.test.ts: it ${skipReason}; run it as root (sudo) to test the pod network !!!\n\n`,
  );
  void test('runtime-net: pod network end to end', { skip: `SKIPPED: ${skipReason}` }, () => undefined);
} else {
  void test('runtime-net: pod network end to end', { timeout: 120_000 }, async (t) => {
    const { bridge, podCidr } = MESH_NETS['runtime-net'][0];
    const started = new Set<ChildProcess>();
    let lastRecord: NetRecord | undefined;

    // Registered first, so it runs however the test ends: stop what we started (by pid), then remove
    // everything from the record; the harness then sweeps anything named for our bridge it missed.
    t.after(async () => {
      for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await Promise.all(
        [...started].map((c) =>
          c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
        ),
      );
      if (lastRecord !== undefined)
        await teardownNetwork(lastRecord).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
    });
    const recordFile = join((await networksFor(t, 'runtime-net')).work, 'network.json');

    const network = await PodNetwork.create({
      bridge,
      podCidr,
      onRecord: async (r) => {
        lastRecord = r;
        await writeFile(recordFile, JSON.stringify(r));
      },
    });
    const gateway = network.gateway;

    const a = await network.addPod({ namespace: 'default', name: 'pod-a', hostname: 'pod-a' });
    const b = await network.addPod({ namespace: 'default', name: 'pod-b', hostname: 'pod-b' });
    // A's hosts file: B under its hostname and as if it were the Service "web" (no VIPs yet).
    await network.writePodFiles(a.netns, { namespace: 'default', name: 'pod-a', hostname: 'pod-a' }, [
      { ip: b.ip, names: ['pod-b'] },
      { ip: b.ip, names: serviceHostNames('web', 'default', 'default') },
    ]);

    /** Starts a program inside a pod; resolves once it prints READY. */
    const startInPod = async (pod: PodNet, script: string): Promise<void> => {
      const argv = netnsExecArgv(pod.netns, [process.execPath, '-e', script]);
      const child = spawn(argv[0] as string, argv.slice(1), { cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
      started.add(child);
      let out = '';
      let errText = '';
      child.stderr.on('data', (c: Buffer) => (errText += c.toString()));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('READY')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`server in ${pod.netns} exited with ${code}: ${errText}`)));
        child.once('error', reject);
      });
    };

    /** Connects from inside a pod (as root like an app, or as the proxy uid); returns what came back. */
    const connectFrom = async (
      pod: PodNet,
      host: string,
      port: number,
      opts: { asProxy?: boolean } = {},
    ): Promise<string> => {
      const prefix = opts.asProxy === true ? await asProxyUid() : [];
      const argv = netnsExecArgv(pod.netns, [...prefix, process.execPath, '-e', clientScript(host, port)]);
      const { stdout } = await execFileP(argv[0] as string, argv.slice(1), { cwd: '/', timeout: 10_000 });
      return stdout;
    };

    await startInPod(
      b,
      serversScript([
        ['0.0.0.0', 7001, 'b:7001'],
        ['0.0.0.0', 7002, 'b:7002'],
      ]),
    );
    await startInPod(
      a,
      serversScript([
        ['127.0.0.1', 4140, 'a:outbound-proxy'], // where the OUTPUT redirect lands (127.0.0.1, like the proxy)
        ['0.0.0.0', 4143, 'a:inbound-proxy'],
        ['0.0.0.0', 4191, 'a:proxy-admin'],
        ['0.0.0.0', 8080, 'a:app-8080'],
        ['0.0.0.0', 8081, 'a:app-8081'],
        ['127.0.0.1', 9000, 'a:local-9000'],
      ]),
    );

    await t.test('pods are namespaces with one address and a default route via the bridge only', async () => {
      assert.ok(a.netns.startsWith(netnsPrefix(bridge)) && b.netns.startsWith(netnsPrefix(bridge)));
      assert.ok(a.veth.startsWith('vo') && a.veth.length <= 15);
      const routes = (await run('ip', ['-n', a.netns, '-4', 'route', 'show']))
        .trim()
        .split('\n')
        .map((l) => l.trim())
        .sort();
      assert.deepEqual(routes, [
        `${network.record.podCidr} dev eth0 proto kernel scope link src ${a.ip}`,
        `default via ${gateway} dev eth0`,
      ]);
      const lo = await run('ip', ['-n', a.netns, 'link', 'show', 'lo']);
      assert.match(lo, /[<,]UP[,>]/);
      // No IPv6 on the pod network: it would bypass the IPv4 proxy-init rules.
      assert.equal((await run('ip', ['-n', a.netns, '-6', 'addr', 'show', 'dev', 'eth0'])).trim(), '');
      const master = await run('ip', ['-j', 'link', 'show', a.veth]);
      assert.equal((JSON.parse(master) as { master?: string }[])[0]?.master, bridge);
    });

    await t.test('pod A reaches a server in pod B by IP, and the host by the gateway address', async () => {
      assert.equal(await connectFrom(a, b.ip, 7001), 'b:7001');
      const host = net.createServer((s) => s.end('host'));
      await new Promise<void>((r) => host.listen(0, gateway, r));
      try {
        assert.equal(await connectFrom(a, gateway, (host.address() as AddressInfo).port), 'host');
      } finally {
        host.close();
      }
    });

    await t.test('the hosts file resolves the pod hostname and service names inside the pod', async () => {
      const hosts = await run('ip', ['netns', 'exec', a.netns, 'cat', '/etc/hosts']);
      assert.match(hosts, /^# Written by outrigger for pod default\/pod-a/);
      assert.equal(await connectFrom(a, 'pod-b', 7001), 'b:7001');
      assert.equal(await connectFrom(a, 'web.default.svc.cluster.local', 7001), 'b:7001');
      assert.equal(await connectFrom(a, 'web', 7001), 'b:7001');
      const own = await run('ip', ['netns', 'exec', a.netns, 'getent', 'hosts', 'pod-a']);
      assert.equal(own.trim().split(/\s+/)[0], a.ip);
      const resolv = await run('ip', ['netns', 'exec', a.netns, 'cat', '/etc/resolv.conf']);
      assert.match(resolv, /^search default\.svc\.cluster\.local /m);
    });

    await t.test('hosts file updates reach a process already running in the pod (written in place)', async () => {
      // A long-running reader started before the update, reading /etc/hosts twice.
      const argv = netnsExecArgv(a.netns, [
        process.execPath,
        '-e',
        `const fs=require('fs');console.log('READY');process.stdin.once('data',()=>{console.log(fs.readFileSync('/etc/hosts','utf8').includes('late-svc')?'SEEN':'STALE');process.exit(0)})`,
      ]);
      const child = spawn(argv[0] as string, argv.slice(1), { cwd: '/', stdio: ['pipe', 'pipe', 'inherit'] });
      started.add(child);
      let out = '';
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('READY')) resolve();
        });
      });
      await network.writePodFiles(a.netns, { namespace: 'default', name: 'pod-a', hostname: 'pod-a' }, [
        { ip: b.ip, names: ['pod-b'] },
        { ip: b.ip, names: serviceHostNames('web', 'default', 'default') },
        { ip: b.ip, names: ['late-svc'] },
      ]);
      child.stdin.write('go\n');
      await new Promise((r) => child.once('exit', r));
      assert.match(out, /SEEN/);
    });

    await t.test('proxy-init: the app is redirected to 4140, the proxy uid and skip ports are not', async () => {
      await network.applyProxyInit(a.netns, {
        ...DEFAULT_PROXY_INIT,
        skipInboundPorts: [{ from: 8081, to: 8081 }],
        skipOutboundPorts: [{ from: 7002, to: 7002 }],
      });
      assert.equal(await connectFrom(a, b.ip, 7001), 'a:outbound-proxy', 'app traffic goes to the proxy');
      assert.equal(await connectFrom(a, 'web', 7001), 'a:outbound-proxy');
      assert.equal(await connectFrom(a, b.ip, 7001, { asProxy: true }), 'b:7001', 'the proxy uid is not redirected');
      assert.equal(await connectFrom(a, b.ip, 7002), 'b:7002', 'skip-outbound-ports');
      assert.equal(await connectFrom(a, '127.0.0.1', 9000), 'a:local-9000', 'loopback is left alone');
      // Applying again replaces the table rather than stacking rules.
      const before = await network.natRules(a.netns);
      await network.applyProxyInit(a.netns, {
        ...DEFAULT_PROXY_INIT,
        skipInboundPorts: [{ from: 8081, to: 8081 }],
        skipOutboundPorts: [{ from: 7002, to: 7002 }],
      });
      assert.deepEqual(await network.natRules(a.netns), before);
      assert.ok(before.includes(`-A OUTR-OUTBOUND -m owner --uid-owner ${PROXY_UID} -j RETURN`), before.join('\n'));
    });

    await t.test('proxy-init: inbound goes to 4143 except skip-inbound ports and the proxy admin port', async () => {
      assert.equal(await connectFrom(b, a.ip, 8080), 'a:inbound-proxy');
      assert.equal(await connectFrom(b, a.ip, 8081), 'a:app-8081', 'skip-inbound-ports');
      assert.equal(await connectFrom(b, a.ip, 4191), 'a:proxy-admin', "the proxy's own ports");
      // Any other port, even one nothing listens on, lands on the inbound proxy.
      assert.equal(await connectFrom(b, a.ip, 5555), 'a:inbound-proxy');
    });

    await t.test(
      'down from the record on disk (as after a crash) leaves nothing behind, and is idempotent',
      async () => {
        // Stop our processes first, as `down` would; then forget the PodNetwork object and work from the file.
        for (const c of started) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
        await Promise.all(
          [...started].map((c) =>
            c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
          ),
        );
        const c = await network.addPod({ namespace: 'other', name: 'pod-c', hostname: 'pod-c' });
        const record = parseNetRecord(JSON.parse(await readFile(recordFile, 'utf8')));
        assert.deepEqual(
          record.pods.map((p) => p.netns),
          [a.netns, b.netns, c.netns],
        );
        const report = await teardownNetwork(record);
        assert.deepEqual(report.warnings, []);
        assert.ok(report.removed.includes(`link ${bridge}`), report.removed.join('\n'));
        await assertNothingLeft(bridge, [a, b, c]);
        // Again, and through the object, and by sweeping: nothing to do, no error.
        assert.deepEqual((await teardownNetwork(record)).removed, []);
        assert.deepEqual((await network.teardown()).removed, []);
        assert.deepEqual((await sweepBridge(bridge)).removed, []);
        await assertNothingLeft(bridge, [a, b, c]);
      },
    );
  });
}

if (isRoot) {
  void test(
    'runtime-net: a pod that fails half-way is removed, the rest of the network stays',
    { timeout: 60_000 },
    async (t) => {
      const { bridge, podCidr } = MESH_NETS['runtime-net'][1];
      let failNext = true;
      // The real runner, except that attaching the first veth to the bridge fails.
      const runner: Runner = (file, args, opts) => {
        if (failNext && args.includes('master')) {
          failNext = false;
          return Promise.reject(new CommandError([file, ...args], 2, 'injected failure'));
        }
        return runCommand(file, args, opts);
      };
      let lastRecord: NetRecord | undefined;
      t.after(async () => {
        if (lastRecord !== undefined)
          await teardownNetwork(lastRecord).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
      });
      await networksFor(t, 'runtime-net');
      const network = await PodNetwork.create({ bridge, podCidr, runner, onRecord: (r) => void (lastRecord = r) });
      await assert.rejects(
        network.addPod({ namespace: 'default', name: 'broken', hostname: 'broken' }),
        /injected failure/,
      );
      assert.deepEqual(network.record.pods, []);
      const namespaces = await run('ip', ['netns', 'list']);
      assert.ok(!namespaces.includes(`${netnsPrefix(bridge)}default.broken`), namespaces);
      // The next pod works (taking the next address: a released one is reused last, see ipam.ts).
      const ok = await network.addPod({ namespace: 'default', name: 'fine', hostname: 'fine' });
      assert.ok(ok.ip.endsWith('.3'), ok.ip);
      assert.equal(await connectTo(ok, network.gateway), 'reachable');
      await network.teardown();
      await assertNothingLeft(bridge, [ok]);
    },
  );

  void test('runtime-net: down after kill -9 of the process that built the network', { timeout: 60_000 }, async (t) => {
    const { bridge, podCidr } = MESH_NETS['runtime-net'][2];
    const moduleUrl = new URL('../src/runtime/net/index.js', import.meta.url).href;
    const started: { builder?: ChildProcess } = {};
    const orphans: number[] = [];
    t.after(async () => {
      const b = started.builder;
      if (b !== undefined && b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
      for (const pid of orphans) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    });
    const recordFile = join((await networksFor(t, 'runtime-net')).work, 'network.json');
    // A stand-in for the control process: builds a network with two pods, starts a long-running
    // program in one (as the runtime will), says READY, and waits to be killed.
    const script = `
import { PodNetwork, DEFAULT_PROXY_INIT, netnsExecArgv } from ${JSON.stringify(moduleUrl)};
import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
const net = await PodNetwork.create({ bridge: ${JSON.stringify(bridge)}, podCidr: '${podCidr}',
  onRecord: (r) => writeFileSync(${JSON.stringify(recordFile)}, JSON.stringify(r)) });
const a = await net.addPod({ namespace: 'default', name: 'a', hostname: 'a' });
await net.addPod({ namespace: 'default', name: 'b', hostname: 'b' });
await net.applyProxyInit(a.netns, DEFAULT_PROXY_INIT);
const argv = netnsExecArgv(a.netns, ['sleep', '600']);
spawn(argv[0], argv.slice(1), { stdio: 'ignore', detached: true }).unref();
console.log('READY');
setInterval(() => {}, 1000);
`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    started.builder = child;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout?.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('READY')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`builder exited with ${code}`)));
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const record = parseNetRecord(JSON.parse(await readFile(recordFile, 'utf8')));
    assert.equal(record.pods.length, 2);
    const podA = record.pods[0];
    assert.ok(podA);
    // The program the builder started survives it; `down` must stop it, so we look it up (it is ours).
    orphans.push(...(await netnsPids(runCommand, podA.netns)));
    assert.equal(orphans.length, 1, 'the sleep started in pod a');

    // Without stopping it first, teardown still removes the network and says what kept running.
    const report = await teardownNetwork(record);
    assert.equal(report.warnings.length, 1, report.warnings.join('\n'));
    assert.match(report.warnings[0] ?? '', new RegExp(`processes still in ${podA.netns}: ${orphans[0]}`));
    await assertNothingLeft(
      bridge,
      record.pods.map((p) => ({
        netns: p.netns,
        veth: p.veth,
        interface: 'eth0',
        ip: p.ip,
        prefix: 24,
        gateway: record.gateway,
        etcDir: p.etcDir,
      })),
    );
  });
}

/** Connects from a pod to a TCP server the test runs on the host at `host` (the gateway address). */
async function connectTo(pod: PodNet, host: string): Promise<string> {
  const server = net.createServer((s) => s.end('reachable'));
  await new Promise<void>((r) => server.listen(0, host, r));
  try {
    const argv = netnsExecArgv(pod.netns, [
      process.execPath,
      '-e',
      clientScript(host, (server.address() as AddressInfo).port),
    ]);
    return (await execFileP(argv[0] as string, argv.slice(1), { cwd: '/', timeout: 10_000 })).stdout;
  } finally {
    server.close();
  }
}

/** No namespace, link, /etc/netns directory or host rule of this bridge remains. */
async function assertNothingLeft(bridge: string, pods: readonly PodNet[]): Promise<void> {
  const namespaces = await run('ip', ['netns', 'list']);
  assert.ok(!namespaces.includes(netnsPrefix(bridge)), `namespaces left: ${namespaces}`);
  const links = await run('ip', ['-o', 'link', 'show']);
  assert.ok(!links.includes(bridge), `bridge left: ${links}`);
  for (const p of pods) assert.ok(!links.includes(p.veth), `veth ${p.veth} left`);
  const etc = await readdir('/etc/netns').catch(() => []);
  assert.deepEqual(
    etc.filter((e) => e.startsWith(netnsPrefix(bridge))),
    [],
  );
  const forward = await run('iptables', ['-w', '-S', 'FORWARD']);
  assert.ok(!forward.includes(forwardChain(bridge)), `FORWARD rules left: ${forward}`);
  await assert.rejects(run('iptables', ['-w', '-S', forwardChain(bridge)]), 'chain left');
}
