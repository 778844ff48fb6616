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
// The builds are measured one after the other, alternating each round, against the same control plane.
// Figures are MB of 2^20 bytes. USS does not depend on what else runs on the machine; PSS does (pages
// shared with every other node process, the control plane included, are split between them), and RSS
// counts shared pages whole. CPU and latency are not measured here.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StoreContent } from '../src/control/store/local/local.js';
import { startControlPlaneChild, VIP, VIP_PORT, type ControlPlaneChild } from './control.js';
import { MESH_NAMESPACE, MESH_PODS, spiffeOf } from './identity.js';
import { BenchError, freePorts, installCleanupHandlers, makeTempDir, probeHttp1, removeTempDir, spawnManaged, stopManaged, waitUntil, type Managed } from './tools.js';

const USAGE = `usage: node dist/bench/proxy-memory.js [--cli LABEL=PATH]... [--rounds N] [--idle-s S] [--requests N] [--json]
  --cli LABEL=PATH  a build's dist/src/cli/main.js to measure (repeatable; default: this build as "this")
  --rounds N        pairs started per build, alternating builds (default 3); the table shows the median
  --idle-s S        seconds the pair sits idle after its requests before the second reading (default 10)
  --requests N      requests sent through the pair once it is ready (default 20)
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
  json: boolean;
}

const THIS_CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function parseArgs(argv: readonly string[]): Options | 'help' {
  const o: Options = { builds: [], rounds: 3, idleS: 10, requests: 20, json: false };
  const count = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new BenchError(`${name}: expected an integer >= ${min}, got ${v ?? 'nothing'}`);
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

/** Both bench pods (meshed, each with its ServiceAccount), and the Service at VIP over the server
 *  proxy's inbound port: what the control plane answers the pair's destination and policy watches. */
function meshContent(serverInbound: number): StoreContent {
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
  const service = {
    namespace: MESH_NAMESPACE,
    name: 'server',
    clusterIP: VIP,
    ports: [{ name: 'http', port: VIP_PORT, appProtocol: 'http' }],
    endpoints: [{ pod: `${MESH_NAMESPACE}/${server.name}`, ip: '127.0.0.1', ports: { [VIP_PORT]: serverInbound }, ready: true }],
  };
  return { services: [service], pods };
}

/** Three free loopback ports for a proxy's listeners. */
async function proxyPorts(): Promise<Ports> {
  const [outbound, inbound, admin] = await freePorts(3);
  if (outbound === undefined || inbound === undefined || admin === undefined) throw new Error('freePorts(3)');
  return { outbound, inbound, admin };
}

/** `outrigger proxy` with the flags the local runtime gives a meshed pod's proxy (src/runtime/mesh.ts),
 *  on loopback ports, forwarding as if every connection went to `destination`. Ready once it holds a
 *  certificate and its pod's policy (so the store must know the pod before). */
async function startProxy(build: Build, role: Role, ports: Ports, control: ControlPlaneChild, identityDir: string, destination: string): Promise<Proxy> {
  const { outbound, inbound, admin } = ports;
  const cp = `127.0.0.1:${control.port}`;
  const pod = podOf(role);
  const args = [
    build.cli,
    'proxy',
    ...['--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(admin)],
    ...['--outbound-addr', '127.0.0.1', '--inbound-addr', '127.0.0.1', '--admin-addr', '127.0.0.1'],
    ...['--static-destination', destination],
    ...['--destination-addr', cp, '--policy-addr', cp, '--pod', `${MESH_NAMESPACE}/${pod.name}`, '--default-inbound-policy', 'all-unauthenticated'],
    ...['--pod-namespace', MESH_NAMESPACE, '--pod-name', pod.name],
    ...['--identity-addr', cp, '--identity-token-file', path.join(identityDir, `${role}.token`), '--identity', spiffeOf(role)],
    ...['--log-level', 'warn'],
  ];
  const proc = spawnManaged(`outrigger proxy (${build.label} ${role})`, process.execPath, args);
  try {
    await waitUntil(`${build.label} ${role} proxy /ready`, async () => (await probeHttp1(admin, '/ready')) === 200, 30_000, proc);
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

/** One pair of `build`: started, read when ready, used, left idle, read again, stopped. */
async function measurePair(build: Build, round: number, o: Options, control: ControlPlaneChild, identityDir: string, upstreamPort: number): Promise<Row[]> {
  const started: Proxy[] = [];
  try {
    const serverPorts = await proxyPorts();
    const clientPorts = await proxyPorts();
    await control.replace(meshContent(serverPorts.inbound));
    const server = await startProxy(build, 'server', serverPorts, control, identityDir, `127.0.0.1:${upstreamPort}`);
    started.push(server);
    const client = await startProxy(build, 'client', clientPorts, control, identityDir, `${VIP}:${VIP_PORT}`);
    started.push(client);
    const rows: Row[] = [];
    const read = (moment: Moment): void => {
      for (const [role, p] of [['client', client], ['server', server]] as const) rows.push({ build: build.label, round, role, moment, memory: readMemory(p.proc.pid) });
    };
    read('ready');
    for (let i = 0; i < o.requests; i++) {
      const status = await probeHttp1(client.outbound);
      if (status !== 200) throw new BenchError(`${build.label}: a request through the pair answered ${status}`);
    }
    await sleep(o.idleS * 1000);
    if (started.some((p) => p.proc.hasExited())) throw new BenchError(`${build.label}: a proxy exited while idle`);
    read('idle');
    return rows;
  } finally {
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
    `${'build'.padEnd(10)} ${'proxy'.padEnd(7)} ${'moment'.padEnd(7)} ${'USS'.padStart(7)} ${'PSS'.padStart(7)} ${'RSS'.padStart(7)}`,
  ];
  for (const b of o.builds) {
    for (const role of ['client', 'server'] as const) {
      for (const moment of ['ready', 'idle'] as const) {
        const sel = rows.filter((r) => r.build === b.label && r.role === role && r.moment === moment);
        const f = (k: keyof MemoryReading): string => median(sel.map((r) => r.memory[k])).toFixed(1).padStart(7);
        lines.push(`${b.label.padEnd(10)} ${role.padEnd(7)} ${moment.padEnd(7)} ${f('ussMb')} ${f('pssMb')} ${f('rssMb')}`);
      }
    }
  }
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
  const identityDir = makeTempDir('proxy-memory');
  const upstream = await startUpstream();
  const control = await startControlPlaneChild({ identityDir });
  const rows: Row[] = [];
  try {
    const upstreamPort = (upstream.address() as AddressInfo).port;
    for (let round = 1; round <= o.rounds; round++) {
      // Alternate which build goes first, so neither always follows the other.
      const order = round % 2 === 1 ? o.builds : [...o.builds].reverse();
      for (const b of order) {
        const got = await measurePair(b, round, o, control, identityDir, upstreamPort);
        rows.push(...got);
        for (const r of got) log(`[round ${round}] ${r.build} ${r.role} ${r.moment}: uss ${r.memory.ussMb.toFixed(1)} pss ${r.memory.pssMb.toFixed(1)} rss ${r.memory.rssMb.toFixed(1)}`);
      }
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
    process.stderr.write(`proxy-memory: ${err instanceof BenchError ? err.message : String((err as Error).stack ?? err)}\n`);
    process.exit(1);
  },
);
