// What an idle proxy costs in memory: a pair of `outrigger proxy` processes started as the local
// runtime starts them (identity, destination and policy against a real control plane on loopback: the
// bench's control-plane child, which is also the mesh CA), a few requests through the pair (client →
// outbound proxy → mesh TLS → inbound proxy → upstream) so every part of the path has run once, then
// each proxy's memory from /proc/PID/smaps_rollup: USS (Private_Clean + Private_Dirty: what the process
// alone holds, what a pod pays), PSS and RSS; once when the pair is ready, and again after it sat idle.
//
//   node dist/bench/proxy-memory.js [--cli LABEL=PATH]... [--rounds N] [--idle-s S] [--requests N] [--json]
//
// `--cli` names a build's dist/src/cli/main.js (default: this build, labelled `this`); give it twice to
// compare two builds in the same run, e.g. a checkout of main built in another directory:
//   node dist/bench/proxy-memory.js --cli main=/tmp/outrigger-main/dist/src/cli/main.js --cli lean=dist/src/cli/main.js
// Each round starts one pair per build side by side (each its own Service on the same control plane),
// so they idle through the same minutes. Idle means long enough for V8 to shrink its heap once
// traffic stopped (its memory reducer): a proxy read 10 s after its last request may still hold
// 10 MB it gives back within the next minute or two, hence the default of 180 s; the log and the JSON
// have a reading every 10 s.
// Figures are MB of 2^20 bytes. USS does not depend on what else runs on the machine; PSS does (pages
// shared with every other node process, the control plane included, are split between them), and RSS
// counts shared pages whole.
// The CPU an idle proxy burns is read too: user + system time from /proc/PID/stat over the idle window
// (clock ticks of 10 ms), as ms of CPU per minute. A sidecar is paid per pod while its app sits idle,
// so timers, keep-alives and control-plane streams count. The reference is an haproxy mTLS pair (the
// mtls scenario's, its certificates from the same kind of control plane) idling through the same
// window, read the same way; `--no-haproxy` leaves it out, and says so.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StoreContent } from '../src/control/store/local/local.js';
import { startControlPlaneChild, VIP_PORT, type ControlPlaneChild } from './control.js';
import { pairEntry, startMeshPairs, type MeshPairs } from './mtls.js';
import { MESH_NAMESPACE, MESH_PODS, spiffeOf } from './identity.js';
import { BENCH_PROXY_NODE_OPTIONS, PROXY_NODE } from './paths.js';
import {
  BenchError,
  cpuSeconds,
  freePorts,
  installCleanupHandlers,
  makeTempDir,
  probeHttp1,
  removeTempDir,
  requireTools,
  spawnManaged,
  stopManaged,
  waitUntil,
  type Managed,
} from './tools.js';

const USAGE = `usage: node dist/bench/proxy-memory.js [--cli LABEL=PATH]... [--rounds N] [--idle-s S] [--requests N] [--no-haproxy] [--json]
  --cli LABEL=PATH  a build's dist/src/cli/main.js to measure (repeatable; default: this build as "this")
  --rounds N        pairs started per build (default 2); the table shows the median
  --idle-s S        seconds the pairs sit idle after their requests before the second reading (default 180)
  --requests N      requests sent through the pair once it is ready (default 20)
  --no-haproxy      no haproxy mTLS pair idling beside the proxies as the reference
  --json            one JSON document on stdout instead of the table
`;

interface Build {
  readonly label: string;
  readonly cli: string;
}

interface Options {
  builds: Build[];
  rounds: number;
  idleS: number;
  requests: number;
  haproxy: boolean;
  json: boolean;
}

const THIS_CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function parseArgs(argv: readonly string[]): Options | 'help' {
  const o: Options = { builds: [], rounds: 2, idleS: 180, requests: 20, haproxy: true, json: false };
  const count = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new BenchError(`${name}: expected an integer >= ${min}, got ${v ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--help':
      case '-h':
        return 'help';
      case '--cli': {
        const v = argv[++i] ?? '';
        const eq = v.indexOf('=');
        if (eq <= 0) throw new BenchError(`--cli: expected LABEL=PATH, got "${v}"`);
        o.builds.push({ label: v.slice(0, eq), cli: path.resolve(v.slice(eq + 1)) });
        break;
      }
      case '--rounds':
        o.rounds = count(a, argv[++i], 1);
        break;
      case '--idle-s':
        o.idleS = count(a, argv[++i], 0);
        break;
      case '--requests':
        o.requests = count(a, argv[++i], 1);
        break;
      case '--no-haproxy':
        o.haproxy = false;
        break;
      case '--json':
        o.json = true;
        break;
      default:
        throw new BenchError(`unknown argument "${a}"\n${USAGE}`);
    }
  }
  if (o.builds.length === 0) o.builds.push({ label: 'this', cli: THIS_CLI });
  return o;
}

/** One reading of /proc/PID/smaps_rollup, in MB. */
interface MemoryReading {
  readonly ussMb: number;
  readonly pssMb: number;
  readonly rssMb: number;
}

/** USS, PSS and RSS from the text of /proc/PID/smaps_rollup (values in kB). */
function parseSmapsRollup(text: string): MemoryReading {
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (m?.[1] === undefined) throw new BenchError(`smaps_rollup: no ${field} line`);
    return Number(m[1]);
  };
  const mb = (n: number): number => n / 1024;
  return { ussMb: mb(kb('Private_Clean') + kb('Private_Dirty')), pssMb: mb(kb('Pss')), rssMb: mb(kb('Rss')) };
}

function readMemory(pid: number): MemoryReading {
  return parseSmapsRollup(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
}

type Role = 'client' | 'server';
type Moment = 'ready' | 'idle';

interface Row {
  readonly build: string;
  readonly round: number;
  readonly role: Role;
  readonly moment: Moment;
  readonly memory: MemoryReading;
  /** idle rows: USS every 10 s from the last request on (MB). */
  readonly ussSeries?: readonly number[];
  /** idle rows: CPU (user + system) used over the idle window, in ms per minute. */
  readonly idleCpuMsPerMin?: number;
  /** idle rows: CPU used in each 10 s of the idle window (ms). */
  readonly cpuSeries?: readonly number[];
}

interface Ports {
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
}

interface Proxy extends Ports {
  readonly proc: Managed;
}

const podOf = (role: Role) => {
  const p = MESH_PODS.find((x) => x.serviceAccount === role);
  if (p === undefined) throw new Error(`unreachable: no ${role} pod`);
  return p;
};

/** Both bench pods (meshed, each with its ServiceAccount), and one Service per pair over its server
 *  proxy's inbound port: what the control plane answers the pairs' destination and policy watches. */
function meshContent(pairs: readonly { vip: string; serverInbound: number }[]): StoreContent {
  const pods = MESH_PODS.map((p) => ({
    namespace: MESH_NAMESPACE,
    name: p.name,
    ip: '127.0.0.1',
    ready: true,
    meshed: true,
    serviceAccount: p.serviceAccount,
    opaquePorts: [],
    labels: { app: p.serviceAccount },
  }));
  const server = podOf('server');
  const services = pairs.map((p, i) => ({
    namespace: MESH_NAMESPACE,
    name: `server-${i}`,
    clusterIP: p.vip,
    ports: [{ name: 'http', port: VIP_PORT, appProtocol: 'http' }],
    endpoints: [
      { pod: `${MESH_NAMESPACE}/${server.name}`, ip: '127.0.0.1', ports: { [VIP_PORT]: p.serverInbound }, ready: true },
    ],
  }));
  return { services, pods };
}

/** The Service address of the i-th pair: unused loopback addresses, nothing listens there. */
const vipOf = (i: number): string => `127.0.0.${77 + i}`;

/** Three free loopback ports for a proxy's listeners. */
async function proxyPorts(): Promise<Ports> {
  const [outbound, inbound, admin] = await freePorts(3);
  if (outbound === undefined || inbound === undefined || admin === undefined) throw new Error('freePorts(3)');
  return { outbound, inbound, admin };
}

/** `outrigger proxy` with the flags the local runtime gives a meshed pod's proxy (src/runtime/mesh.ts),
 *  on loopback ports, forwarding as if every connection went to `destination`. Ready once it holds a
 *  certificate and its pod's policy (so the store must know the pod before). */
async function startProxy(
  build: Build,
  role: Role,
  ports: Ports,
  control: ControlPlaneChild,
  identityDir: string,
  destination: string,
): Promise<Proxy> {
  const { outbound, inbound, admin } = ports;
  const cp = `127.0.0.1:${control.port}`;
  const pod = podOf(role);
  const args = [
    ...BENCH_PROXY_NODE_OPTIONS,
    build.cli,
    'proxy',
    ...['--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(admin)],
    ...['--outbound-addr', '127.0.0.1', '--inbound-addr', '127.0.0.1', '--admin-addr', '127.0.0.1'],
    ...['--static-destination', destination],
    ...[
      '--destination-addr',
      cp,
      '--policy-addr',
      cp,
      '--pod',
      `${MESH_NAMESPACE}/${pod.name}`,
      '--default-inbound-policy',
      'all-unauthenticated',
    ],
    ...['--pod-namespace', MESH_NAMESPACE, '--pod-name', pod.name],
    ...[
      '--identity-addr',
      cp,
      '--identity-token-file',
      path.join(identityDir, `${role}.token`),
      '--identity',
      spiffeOf(role),
      ...control.tlsArgs,
    ],
    ...['--log-level', 'warn'],
  ];
  const proc = spawnManaged(`outrigger proxy (${build.label} ${role})`, PROXY_NODE, args);
  try {
    await waitUntil(
      `${build.label} ${role} proxy /ready`,
      async () => (await probeHttp1(admin, '/ready')) === 200,
      30_000,
      proc,
    );
  } catch (err) {
    await stopManaged(proc);
    throw err;
  }
  return { proc, outbound, inbound, admin };
}

async function startUpstream(): Promise<http.Server> {
  const body = Buffer.alloc(1024, 'x');
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Pair {
  readonly build: Build;
  readonly client: Proxy;
  readonly server: Proxy;
}

/** The label of the reference pair's rows. */
const HAPROXY = 'haproxy';

/** A process of a pair, as the round reads it. */
interface Measured {
  readonly build: string;
  readonly role: Role;
  readonly pid: number;
  exited(): boolean;
}

/** CPU used by `pid` so far in ms (user + system), or a BenchError if it cannot be read. */
function cpuMs(pid: number): number {
  const s = cpuSeconds(pid);
  if (s === null) throw new BenchError(`cannot read /proc/${pid}/stat`);
  return s * 1000;
}

/** One round: a pair per build, started side by side, read when ready, used, left idle (read every
 *  10 s), read again, stopped. */
async function measureRound(
  round: number,
  o: Options,
  control: ControlPlaneChild,
  identityDir: string,
  upstreamPort: number,
  haproxy: string | undefined,
  log: (line: string) => void,
): Promise<Row[]> {
  // Alternate which build starts first, so neither always follows the other.
  const builds = round % 2 === 1 ? o.builds : [...o.builds].reverse();
  const ports = await Promise.all(builds.map(async () => ({ server: await proxyPorts(), client: await proxyPorts() })));
  await control.replace(meshContent(ports.map((p, i) => ({ vip: vipOf(i), serverInbound: p.server.inbound }))));
  const started: Proxy[] = [];
  const pairs: Pair[] = [];
  let reference: MeshPairs | undefined;
  try {
    for (const [i, build] of builds.entries()) {
      const p = ports[i];
      if (p === undefined) throw new Error('unreachable: ports');
      const server = await startProxy(build, 'server', p.server, control, identityDir, `127.0.0.1:${upstreamPort}`);
      started.push(server);
      const client = await startProxy(build, 'client', p.client, control, identityDir, `${vipOf(i)}:${VIP_PORT}`);
      started.push(client);
      pairs.push({ build, client, server });
    }
    // The reference: an haproxy mTLS pair, used and left idle like the proxies.
    const entries: { build: string; port: number }[] = pairs.map((p) => ({
      build: p.build.label,
      port: p.client.outbound,
    }));
    const measured: Measured[] = pairs.flatMap((p) =>
      (['client', 'server'] as const).map((role) => {
        const proc = role === 'client' ? p.client.proc : p.server.proc;
        return { build: p.build.label, role, pid: proc.pid, exited: () => proc.hasExited() };
      }),
    );
    if (haproxy !== undefined) {
      const ref = await startMeshPairs({
        pairs: ['haproxy'],
        loads: ['keepalive'],
        haproxy,
        upstreamPort,
        log,
        label: `proxy-memory round ${round}`,
      });
      reference = ref;
      const pair = ref.pairs[0];
      if (pair === undefined) throw new Error('unreachable: no haproxy pair');
      const { port, pids } = pairEntry(pair, 'keepalive');
      entries.push({ build: HAPROXY, port });
      for (const role of ['client', 'server'] as const)
        measured.push({ build: HAPROXY, role, pid: pids[role], exited: () => pair.exitedEarly() });
    }
    const rows: Row[] = [];
    for (const x of measured)
      rows.push({ build: x.build, round, role: x.role, moment: 'ready', memory: readMemory(x.pid) });
    for (const e of entries) {
      for (let i = 0; i < o.requests; i++) {
        const status = await probeHttp1(e.port);
        if (status !== 200) throw new BenchError(`${e.build}: a request through the pair answered ${status}`);
      }
    }
    const series = new Map<Measured, number[]>(measured.map((x) => [x, []]));
    const cpuSeries = new Map<Measured, number[]>(measured.map((x) => [x, []]));
    const cpuAtStart = new Map<Measured, number>(measured.map((x) => [x, cpuMs(x.pid)]));
    const cpuLast = new Map(cpuAtStart);
    const idleStart = performance.now();
    for (let waited = 0; waited < o.idleS; waited += 10) {
      for (const [x, s] of series) s.push(Number(readMemory(x.pid).ussMb.toFixed(1)));
      await sleep(Math.min(10, o.idleS - waited) * 1000);
      if (measured.some((x) => x.exited())) throw new BenchError('a proxy exited while idle');
      for (const [x, s] of cpuSeries) {
        const now = cpuMs(x.pid);
        s.push(Math.round(now - (cpuLast.get(x) ?? now)));
        cpuLast.set(x, now);
      }
    }
    const idleMin = (performance.now() - idleStart) / 60_000;
    for (const x of measured) {
      const used = cpuMs(x.pid) - (cpuAtStart.get(x) ?? 0);
      rows.push({
        build: x.build,
        round,
        role: x.role,
        moment: 'idle',
        memory: readMemory(x.pid),
        ussSeries: series.get(x) ?? [],
        cpuSeries: cpuSeries.get(x) ?? [],
        ...(idleMin > 0 ? { idleCpuMsPerMin: Number((used / idleMin).toFixed(1)) } : {}),
      });
    }
    return rows;
  } finally {
    await reference?.stop();
    for (const p of started.reverse()) await stopManaged(p.proc);
  }
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

function table(rows: readonly Row[], o: Options): string {
  const lines = [
    `proxy memory (MB, median of ${o.rounds} round(s); idle = after ${o.requests} requests and ${o.idleS} s without traffic)`,
    `and CPU while idle (ms per minute over those ${o.idleS} s; 600 would be 1% of a core)`,
    `${'build'.padEnd(10)} ${'proxy'.padEnd(7)} ${'moment'.padEnd(7)} ${'USS'.padStart(7)} ${'PSS'.padStart(7)} ${'RSS'.padStart(7)} ${'CPU ms/min'.padStart(11)}`,
  ];
  const labels = [...o.builds.map((b) => b.label), ...(o.haproxy ? [HAPROXY] : [])];
  for (const label of labels) {
    for (const role of ['client', 'server'] as const) {
      for (const moment of ['ready', 'idle'] as const) {
        const sel = rows.filter((r) => r.build === label && r.role === role && r.moment === moment);
        const f = (k: keyof MemoryReading): string =>
          median(sel.map((r) => r.memory[k]))
            .toFixed(1)
            .padStart(7);
        const cpu = sel.flatMap((r) => (r.idleCpuMsPerMin === undefined ? [] : [r.idleCpuMsPerMin]));
        const c = (cpu.length > 0 ? median(cpu).toFixed(1) : '').padStart(11);
        lines.push(
          `${label.padEnd(10)} ${role.padEnd(7)} ${moment.padEnd(7)} ${f('ussMb')} ${f('pssMb')} ${f('rssMb')} ${c}`.trimEnd(),
        );
      }
    }
  }
  if (!o.haproxy) lines.push('no reference: --no-haproxy left the haproxy pair out');
  return lines.join('\n') + '\n';
}

async function main(): Promise<number> {
  installCleanupHandlers();
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const o = parsed;
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const haproxy = o.haproxy ? requireTools(['haproxy']).haproxy : undefined;
  const identityDir = makeTempDir('proxy-memory');
  const upstream = await startUpstream();
  const control = await startControlPlaneChild({ identityDir });
  const rows: Row[] = [];
  try {
    const upstreamPort = (upstream.address() as AddressInfo).port;
    for (let round = 1; round <= o.rounds; round++) {
      const got = await measureRound(round, o, control, identityDir, upstreamPort, haproxy, log);
      rows.push(...got);
      for (const r of got)
        log(
          `[round ${round}] ${r.build} ${r.role} ${r.moment}: uss ${r.memory.ussMb.toFixed(1)} pss ${r.memory.pssMb.toFixed(1)} rss ${r.memory.rssMb.toFixed(1)}` +
            `${r.idleCpuMsPerMin !== undefined ? ` cpu ${r.idleCpuMsPerMin} ms/min` : ''}${r.ussSeries ? ` (uss every 10 s: ${r.ussSeries.join(' ')})` : ''}` +
            `${r.cpuSeries ? ` (cpu ms per 10 s: ${r.cpuSeries.join(' ')})` : ''}`,
        );
    }
  } finally {
    await control.stop();
    await new Promise((r) => upstream.close(r));
    removeTempDir(identityDir);
  }
  process.stdout.write(o.json ? JSON.stringify({ options: o, rows }, null, 2) + '\n' : table(rows, o));
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(
      `proxy-memory: ${err instanceof BenchError ? err.message : String((err as Error).stack ?? err)}\n`,
    );
    process.exit(1);
  },
);
