// End-to-end, as root: the real `outrigger proxy` in a pod-like network namespace with iptables
// REDIRECT (its uid exempted) forwards an app's connections to a server, using the addon's original destination.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sumMetric } from './metrics-text.js';
import { origDstAddonPath } from '../src/proxy/transport/origdst.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)); // dist/test/ → the project
const BIN = `${ROOT}bin/outrigger.js`;
const ADDON = origDstAddonPath(); // the project's build, or the one $OUTRIGGER_ORIGDST_ADDON names
const PROXY_UID = '2102';
const POD = `outr-t-${process.pid}`;
const SRV = `outr-t-${process.pid}-srv`;
const POD4 = '10.251.0.1';
const SRV4 = '10.251.0.2';
const POD6 = 'fd00:251::1';
const SRV6 = 'fd00:251::2';
const OUTBOUND = 4140;
const ADMIN = `http://127.0.0.1:4191`;

// --- processes and commands -------------------------------------------------------------------------------

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; never throws (the exit code says how it went). */
function run(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      resolve({ code: typeof err.code === 'number' ? err.code : null, stdout, stderr: stderr || err.message });
    });
  });
}

/** Runs a set-up command and throws with its stderr when it fails. */
async function must(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const inPod = (...args: string[]) => run('ip', ['netns', 'exec', POD, ...args]);
const curl = (url: string) => inPod('curl', '-sS', '-m', '5', url);

/** A long-running process in a namespace, in its own process group, killed with its parent (pdeathsig). */
interface Daemon {
  readonly child: ChildProcess;
  readonly output: () => string;
  readonly exited: Promise<number | null>;
}

const daemons = new Set<Daemon>();

function startDaemon(ns: string, setprivArgs: readonly string[], command: readonly string[]): Daemon {
  // Our environment minus OUTRIGGER_PROXY_*: the flags below are the whole configuration.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OUTRIGGER_PROXY_')));
  const child = spawn('ip', ['netns', 'exec', ns, 'setpriv', ...setprivArgs, '--pdeathsig', 'SIGKILL', ...command], {
    detached: true, // its own process group, so that cleanup can kill it and anything it started
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let out = '';
  const keep = (d: Buffer) => (out = (out + d.toString()).slice(-8000));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const d: Daemon = { child, output: () => out, exited };
  daemons.add(d);
  void exited.then(() => daemons.delete(d));
  return d;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function namespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').map((l) => l.split(' ')[0] ?? '');
}

/** Synchronous and idempotent, so that it can run from after(), a signal handler, or twice. */
function cleanup(): void {
  for (const d of daemons) killGroup(d.child, 'SIGKILL');
  for (const ns of [POD, SRV])
    if (namespaces().includes(ns)) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

function onSignal(signal: NodeJS.Signals): void {
  console.error(`netns-origdst: ${signal}: removing namespaces ${POD} and ${SRV}`);
  cleanup();
  process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
}

// --- the pieces under test ----------------------------------------------------------------------------------

// Answers HTTP on :8080 and a line protocol on :6379 (an opaque port by default), naming itself and the peer.
const SERVER = `
const http = require('node:http'), net = require('node:net');
let pending = 0;
const up = () => { if (--pending === 0) console.log('listening'); };
for (const host of process.argv.slice(1)) {
  pending += 2;
  http.createServer((req, res) => {
    res.end('server ' + req.socket.localAddress + ' port ' + req.socket.localPort + ' url ' + req.url + ' from ' + req.socket.remoteAddress + '\\n');
  }).listen(8080, host, up);
  net.createServer((s) => {
    s.setEncoding('utf8');
    s.on('data', (d) => s.write('+PONG ' + d.trim() + ' from ' + s.remoteAddress + '\\r\\n'));
  }).listen(6379, host, up);
}`;

// Opaque TCP client: sends one line, prints the first line of the answer.
const LINE_CLIENT = `
const net = require('node:net');
const [host, port, line] = process.argv.slice(1);
const s = net.connect(Number(port), host, () => s.write(line + '\\r\\n'));
let got = '';
s.setEncoding('utf8');
s.on('data', (d) => { got += d; if (got.includes('\\r\\n')) { process.stdout.write(got); s.end(); } });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
setTimeout(() => { console.error('timed out, got ' + JSON.stringify(got)); process.exit(1); }, 5000).unref();`;

function startServer(hosts: readonly string[]): Promise<Daemon> {
  const d = startDaemon(SRV, [], [process.execPath, '-e', SERVER, ...hosts]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${d.output()}`)), 10_000);
    d.child.stdout?.on('data', () => {
      if (d.output().includes('listening')) {
        clearTimeout(timer);
        resolve(d);
      }
    });
    void d.exited.then((code) => reject(new Error(`server exited (${code}): ${d.output()}`)));
  });
}

async function startProxyIn(outboundAddr: string): Promise<Daemon> {
  const d = startDaemon(
    POD,
    ['--reuid', PROXY_UID, '--regid', PROXY_UID, '--clear-groups'],
    [
      process.execPath,
      BIN,
      'proxy',
      '--outbound-addr',
      outboundAddr,
      '--admin-addr',
      '127.0.0.1',
      '--log-level',
      'warn',
      '--drain-timeout-ms',
      '2000',
    ],
  );
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (d.child.exitCode !== null) throw new Error(`proxy exited with ${d.child.exitCode}: ${d.output()}`);
    const r = await inPod('curl', '-s', '-m', '1', `${ADMIN}/ready`);
    if (r.code === 0 && r.stdout.includes('ready')) return d;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`proxy not ready after 15 s: ${d.output()}`);
}

async function stopProxy(d: Daemon): Promise<number | null> {
  killGroup(d.child, 'SIGTERM');
  const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
  const code = await Promise.race([d.exited, timeout]);
  if (code === 'timeout') {
    killGroup(d.child, 'SIGKILL');
    throw new Error(`proxy did not exit within 10 s of SIGTERM: ${d.output()}`);
  }
  return code;
}

async function killNow(d: Daemon): Promise<void> {
  killGroup(d.child, 'SIGKILL');
  await d.exited;
}

/** The sum of a metric's samples whose labels include `labels`, from the proxy's /metrics. */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const r = await inPod('curl', '-sS', '-m', '5', `${ADMIN}/metrics`);
  assert.equal(r.code, 0, `GET /metrics: ${r.stderr}`);
  return sumMetric(r.stdout, name, labels);
}

/** A direct connection to the proxy's port: refused (reset) and counted under `reason`. */
async function assertRefused(url: string, reason: 'loop' | 'no_destination', proxy: Daemon): Promise<void> {
  const before = await metric('tcp_refused_total', { direction: 'outbound', reason });
  const r = await curl(url);
  assert.notEqual(r.code, 0, `${url} should be refused, got: ${r.stdout}`);
  assert.equal(r.stdout, '');
  assert.equal(
    await metric('tcp_refused_total', { direction: 'outbound', reason }),
    before + 1,
    `${url}: tcp_refused_total{reason="${reason}"}\n${proxy.output()}`,
  );
}

// --- preconditions ------------------------------------------------------------------------------------------

function unavailable(t: TestContext, why: string): void {
  const ci = process.env.CI === 'true';
  const msg = `netns-origdst: ${why}: the end-to-end iptables REDIRECT test ${ci ? 'FAILS (CI=true)' : 'is SKIPPED'}; run it as root with iproute2, iptables, util-linux (setpriv) and curl`;
  console.error(`\n*** ${msg} ***\n`);
  if (ci) assert.fail(msg);
  t.skip(msg);
}

const missing = (cmd: string, flag: string) => spawnSync(cmd, [flag], { stdio: 'ignore' }).error !== undefined;

function preconditions(): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  const gone = (
    [
      ['ip', '-V'],
      ['iptables', '--version'],
      ['setpriv', '--version'],
      ['curl', '--version'],
    ] as const
  ).filter(([cmd, flag]) => missing(cmd, flag));
  if (gone.length) return `missing ${gone.map(([cmd]) => cmd).join(', ')}`;
  if (!existsSync(ADDON)) return `the addon is not built (${ADDON}); run npm ci`;
  // The proxy runs as uid 2102: it must be able to read the project (a checkout under /root is not).
  const read = spawnSync('setpriv', [
    '--reuid',
    PROXY_UID,
    '--regid',
    PROXY_UID,
    '--clear-groups',
    'test',
    '-r',
    BIN,
    '-a',
    '-r',
    ADDON,
    '-a',
    '-x',
    process.execPath,
  ]);
  if (read.status !== 0)
    return `uid ${PROXY_UID} cannot read ${BIN} and ${ADDON} or run ${process.execPath} (is the checkout in a private home?)`;
  return undefined;
}

// --- the test -----------------------------------------------------------------------------------------------

void test(
  'netns + iptables REDIRECT: the real proxy forwards to the original destination read by the addon',
  { timeout: 120_000 },
  async (t) => {
    const why = preconditions();
    if (why) return unavailable(t, why);

    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    t.after(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      cleanup();
    });

    // Layout: namespace POD holds the app (curl, as root: redirected) and the proxy (uid 2102: exempted);
    // namespace SRV holds the server. A veth pair joins them, so the server's address is not local to POD:
    // connections to local addresses leave through `lo`, and `-o lo -j RETURN` (as in linkerd's proxy-init)
    // leaves those alone, which is what lets the test dial the proxy directly to check loop refusal.
    //
    //   POD 10.251.0.1 fd00:251::1 v0 <==veth==> v1 10.251.0.2 fd00:251::2 SRV (HTTP :8080, line protocol :6379)
    cleanup(); // a namespace left by an earlier run that was SIGKILLed with this same pid
    const added = await run('ip', ['netns', 'add', POD]);
    if (added.code !== 0) return unavailable(t, `cannot create a network namespace (${added.stderr.trim()})`);
    await must('ip', 'netns', 'add', SRV);
    for (const ns of [POD, SRV]) await must('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    await must('ip', '-n', POD, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1', 'netns', SRV);
    await must('ip', '-n', POD, 'addr', 'add', `${POD4}/24`, 'dev', 'v0');
    await must('ip', '-n', SRV, 'addr', 'add', `${SRV4}/24`, 'dev', 'v1');

    // IPv6 as far as the machine allows; `nodad` so the addresses are usable at once.
    let noV6: string | undefined = missing('ip6tables', '--version') ? 'missing ip6tables' : undefined;
    if (!noV6) {
      const a = await run('ip', ['-n', POD, '-6', 'addr', 'add', `${POD6}/64`, 'dev', 'v0', 'nodad']);
      const b = await run('ip', ['-n', SRV, '-6', 'addr', 'add', `${SRV6}/64`, 'dev', 'v1', 'nodad']);
      if (a.code !== 0 || b.code !== 0) noV6 = `cannot add IPv6 addresses (${(a.stderr + b.stderr).trim()})`;
    }
    for (const ns of [POD, SRV]) await must('ip', '-n', ns, 'link', 'set', ns === POD ? 'v0' : 'v1', 'up');

    // proxy-init's rules: the proxy's own connections and loopback traffic go out as they are; every other
    // TCP connection the pod starts is redirected to the outbound listener (REDIRECT in OUTPUT → 127.0.0.1/::1).
    for (const ipt of noV6 ? ['iptables'] : ['iptables', 'ip6tables']) {
      await must(
        'ip',
        'netns',
        'exec',
        POD,
        ipt,
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-m',
        'owner',
        '--uid-owner',
        PROXY_UID,
        '-j',
        'RETURN',
      );
      await must('ip', 'netns', 'exec', POD, ipt, '-t', 'nat', '-A', 'OUTPUT', '-o', 'lo', '-j', 'RETURN');
      await must(
        'ip',
        'netns',
        'exec',
        POD,
        ipt,
        '-t',
        'nat',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        '-j',
        'REDIRECT',
        '--to-ports',
        String(OUTBOUND),
      );
    }
    // Connections conntrack knows nothing of: 127.0.0.2 untracked both ways; 127.0.0.3 only the client's
    // packets, so the proxy's own ACKs can create an entry the other way round (loose pickup), racing the
    // accept: its "original destination" is the client itself (see is_peer in native/origdst.c).
    const raw = (...rule: string[]) =>
      must(
        'ip',
        'netns',
        'exec',
        POD,
        'iptables',
        '-t',
        'raw',
        '-A',
        'OUTPUT',
        '-p',
        'tcp',
        ...rule,
        '-j',
        'CT',
        '--notrack',
      );
    await raw('-d', '127.0.0.2', '--dport', String(OUTBOUND));
    await raw('-s', '127.0.0.2', '--sport', String(OUTBOUND));
    await raw('-d', '127.0.0.3', '--dport', String(OUTBOUND));

    await startServer(noV6 ? [SRV4] : [SRV4, SRV6]);

    await t.test(
      'IPv4 listener (0.0.0.0): HTTP and opaque TCP reach the server; direct connections are refused',
      async (st) => {
        const proxy = await startProxyIn('0.0.0.0');
        st.after(() => killNow(proxy)); // on failure: the next listener needs the ports

        // HTTP: the app dials the server; iptables sends it to the proxy, which can only know where it was
        // going from SO_ORIGINAL_DST, and says so in target_addr.
        const r = await curl(`http://${SRV4}:8080/hello`);
        assert.equal(r.code, 0, `curl: ${r.stderr}\n${proxy.output()}`);
        assert.equal(r.stdout, `server ${SRV4} port 8080 url /hello from ${POD4}\n`);
        assert.equal(await metric('request_total', { direction: 'outbound', target_addr: `${SRV4}:8080` }), 1);
        assert.equal(await metric('response_total', { target_addr: `${SRV4}:8080`, status_code: '200' }), 1);

        // Opaque TCP on 6379 (an opaque port by default: no detection, the server's reply is immediate).
        const o = await inPod(process.execPath, '-e', LINE_CLIENT, SRV4, '6379', 'PING');
        assert.equal(o.code, 0, `line client: ${o.stderr}\n${proxy.output()}`);
        assert.equal(o.stdout, `+PONG PING from ${POD4}\r\n`);
        assert.equal(await metric('tcp_open_total', { direction: 'outbound', target_addr: `${SRV4}:6379` }), 1);

        // Not redirected (loopback, and the pod's own address, which also leaves through lo) but tracked, since
        // the nat table makes conntrack follow every connection: the kernel answers the proxy's own address.
        await assertRefused(`http://127.0.0.1:${OUTBOUND}/direct`, 'loop', proxy);
        await assertRefused(`http://${POD4}:${OUTBOUND}/direct`, 'loop', proxy);
        // Untracked: ENOENT. Half tracked: the kernel answers the client's own address, which the addon refuses.
        await assertRefused(`http://127.0.0.2:${OUTBOUND}/untracked`, 'no_destination', proxy);
        await assertRefused(`http://127.0.0.3:${OUTBOUND}/half-tracked`, 'no_destination', proxy);
        assert.equal(await metric('request_total'), 1, 'only the first request was proxied');

        assert.equal(await stopProxy(proxy), 0, `graceful shutdown on SIGTERM exits 0\n${proxy.output()}`);
      },
    );

    // Rules that also redirect the pod's calls to its own IP (as istio's do) make REDIRECT rewrite the
    // destination to 127.0.0.1, so the listener sees dst = pod IP:4143, local = 127.0.0.1:4140. That is the
    // proxy itself, but listen.ts only knows loopback and the accepting address as "itself": it proxies the
    // connection, and the loop is caught one hop later by the inbound listener (the app gets a 502).
    await t.test('a redirected connection to the pod IP on a proxy port is a loop', async (st) => {
      const rule = ['-d', POD4, '-p', 'tcp', '--dport', '4143', '-j', 'REDIRECT', '--to-ports', String(OUTBOUND)];
      // Position 2: after the proxy uid's RETURN, or the proxy's own connection would be redirected forever.
      await must('ip', 'netns', 'exec', POD, 'iptables', '-t', 'nat', '-I', 'OUTPUT', '2', ...rule);
      st.after(() => run('ip', ['netns', 'exec', POD, 'iptables', '-t', 'nat', '-D', 'OUTPUT', ...rule]));
      const proxy = await startProxyIn('0.0.0.0');
      st.after(() => killNow(proxy));
      await assertRefused(`http://${POD4}:4143/self`, 'loop', proxy);
      assert.equal(await metric('request_total'), 0, 'nothing proxied');
    });

    await t.test(
      'dual-stack listener (::): IPv6 through IP6T_SO_ORIGINAL_DST, IPv4 clients as v4-mapped',
      async (st) => {
        if (noV6) return unavailable(st, noV6);
        const proxy = await startProxyIn('::');
        st.after(() => killNow(proxy));

        const r6 = await curl(`http://[${SRV6}]:8080/hello6`);
        assert.equal(r6.code, 0, `curl: ${r6.stderr}\n${proxy.output()}`);
        assert.equal(r6.stdout, `server ${SRV6} port 8080 url /hello6 from ${POD6}\n`);
        assert.equal(await metric('request_total', { direction: 'outbound', target_addr: `[${SRV6}]:8080` }), 1);

        const o6 = await inPod(process.execPath, '-e', LINE_CLIENT, SRV6, '6379', 'PING6');
        assert.equal(o6.code, 0, `line client: ${o6.stderr}\n${proxy.output()}`);
        assert.equal(o6.stdout, `+PONG PING6 from ${POD6}\r\n`);
        assert.equal(await metric('tcp_open_total', { target_addr: `[${SRV6}]:6379` }), 1);

        const r4 = await curl(`http://${SRV4}:8080/mapped`);
        assert.equal(r4.code, 0, `curl: ${r4.stderr}\n${proxy.output()}`);
        assert.equal(r4.stdout, `server ${SRV4} port 8080 url /mapped from ${POD4}\n`);
        assert.equal(await metric('request_total', { target_addr: `${SRV4}:8080` }), 1);

        await assertRefused(`http://[::1]:${OUTBOUND}/direct6`, 'loop', proxy);
        await assertRefused(`http://[${POD6}]:${OUTBOUND}/direct6`, 'loop', proxy);
        await assertRefused(`http://127.0.0.1:${OUTBOUND}/direct-mapped`, 'loop', proxy);
        await assertRefused(`http://127.0.0.3:${OUTBOUND}/half-tracked-mapped`, 'no_destination', proxy);

        assert.equal(await stopProxy(proxy), 0, `graceful shutdown on SIGTERM exits 0\n${proxy.output()}`);
      },
    );

    await t.test('cleanup leaves no namespace and no process behind', async () => {
      const started = [...daemons];
      cleanup();
      const left = namespaces().filter((n) => n === POD || n === SRV);
      assert.deepEqual(left, [], `namespaces left: ${left.join(', ')}`);
      const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 5000).unref());
      for (const d of started) {
        assert.notEqual(await Promise.race([d.exited, timeout]), 'timeout', `pid ${d.child.pid} still running`);
        const pgid = d.child.pid ?? 0;
        assert.throws(() => process.kill(-pgid, 0), { code: 'ESRCH' }, `process group ${pgid} still has processes`);
      }
    });
  },
);
