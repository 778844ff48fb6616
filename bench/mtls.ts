// The mtls scenario: the path a real mesh takes, client → outbound proxy → mutual TLS → inbound proxy →
// upstream, through a pair of outrigger proxies and through a pair of haproxy instances doing mutual TLS
// between them (certificates from the same mesh CA, TLS 1.3, one thread each).
//
// The outrigger pair: a control-plane child that is also the CA (destination + identity services); a
// server proxy (identity bench/server) whose inbound listener is the one endpoint of a Service at
// VIP:VIP_PORT, meshed; a client proxy (identity bench/client) sent to that Service. Both are ready once
// they hold certificates from the CA.
//
// Two loads per pair, alternated per round like every scenario:
// - keep-alive (`mtls`): wrk, --connections keep-alive connections; each side pools its connections,
//   so this is the steady state of two meshed pods talking.
// - handshake (`mtls-handshake`): wrk with `Connection: close`, so every request is a new client
//   connection, and a listener of each pair that opens a new TLS connection between the two proxies for
//   every request. `Connection: close` alone does NOT do that for outrigger: the client proxy ends the
//   client's connection but gives the upstream (mesh TLS) connection back to its pool when the exchange
//   went well (src/proxy/http1/server.ts: closeAfter only ends the client socket; releaseUpstream pools
//   the upstream one). So the outrigger pair gets a second client proxy with `--max-idle-per-upstream 0`
//   (nothing is pooled, every upstream connection closes after its exchange); haproxy's client side gets
//   a second frontend whose backend has `http-reuse never` and `no-ssl-reuse` (full handshakes, as
//   outrigger's client never resumes a TLS session). Both server sides keep pooling their plaintext
//   connections to the upstream. The run counts the TLS connections the server side accepted (outrigger:
//   tcp_open_total{direction="inbound",tls="true"}; haproxy: CumSslConns) and the connections the
//   upstream accepted, so the report shows per request what really happened.
//
// startMeshPairs is the one setup of both pairs: the fixed-rate scenario (bench/fixed-rate.ts) puts its
// open-loop load on the same pairs, set up for the keep-alive load only.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { serviceContent, startControlPlaneChild, VIP, VIP_PORT, type ControlPlaneChild } from './control.js';
import { runWrk } from './http1.js';
import { MESH_PODS, spiffeOf } from './identity.js';
import { haproxyHead, READY_TIMEOUT_MS, spawnOutriggerProcess, type OutriggerProcess } from './paths.js';
import { formatMemory, readMemory, type MemoryFigures } from './memory.js';
import {
  BenchError,
  cpuSeconds,
  fetchJson,
  fetchText,
  freePorts,
  makeTempDir,
  probeHttp1,
  removeTempDir,
  spawnManaged,
  stopManaged,
  unixCommand,
  waitUntil,
  type Managed,
} from './tools.js';
import type { LoadResult, Options, Sample } from './types.js';

/** The header that makes every request of the handshake load a new client connection. */
export const CLOSE_HEADER = 'Connection: close';
/** What the handshake load does to each pair, said once for the report's config. */
export function handshakeSetup(resumption: boolean): string {
  return resumption
    ? `wrk -H '${CLOSE_HEADER}'; outrigger: a client proxy with --max-idle-per-upstream 0 (TLS sessions resumed, its default); ` +
        'haproxy: backend http-reuse never, its SSL sessions reused (TLS 1.3 resumption both)'
    : `wrk -H '${CLOSE_HEADER}'; outrigger: a client proxy with --max-idle-per-upstream 0 --mesh-tls-session-resumption false; ` +
        'haproxy: backend http-reuse never, server no-ssl-reuse (full TLS 1.3 handshakes both)';
}
/** The handshake load as the published figures measure it: full handshakes on both pairs. */
export const HANDSHAKE_SETUP = handshakeSetup(false);

export type PairName = 'outrigger' | 'haproxy';
/** keepalive: pooled TLS connections between the proxies; handshake: a new one for every request. */
export type MeshLoad = 'keepalive' | 'handshake';
type Load = MeshLoad;

/** One side's process pair and how to read the counters that say what a load did. */
export interface MeshPair {
  readonly path: PairName;
  /** Where each load it was set up for connects. */
  readonly ports: Partial<Record<Load, number>>;
  /** The client side and server side processes whose memory and CPU each load reports. */
  readonly pids: Partial<Record<Load, { client: number; server: number }>>;
  /** TLS connections the server side has accepted so far. */
  tlsAccepted(): Promise<number>;
  exitedEarly(): boolean;
  stop(): Promise<void>;
}

interface MtlsContext {
  readonly opts: Options;
  readonly wrk: string;
  readonly haproxy: string | undefined;
  readonly upstreamPort: number;
  /** The upstream's stats port (`GET /connections`). */
  readonly statsPort: number;
  readonly log: (line: string) => void;
}

// ---- counters ----

/** Sum of the samples of counter `name` whose labels include every pair in `labels` (Prometheus text). */
export function promCounterSum(text: string, name: string, labels: Readonly<Record<string, string>>): number {
  let sum = 0;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const close = line.lastIndexOf('}');
    const labelText = close >= 0 ? line.slice(name.length + 1, close) : '';
    // Label values here are identities and addresses: no quotes or commas inside them.
    const have = new Set(labelText.split(','));
    if (!want.every((w) => have.has(w))) continue;
    const value = Number(
      line
        .slice(close >= 0 ? close + 1 : name.length)
        .trim()
        .split(' ')[0],
    );
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}

/** One numeric field of haproxy's `show info` answer ("Name: value" lines). */
export function haproxyInfoField(info: string, field: string): number {
  const match = new RegExp(`^${field}: (\\d+)$`, 'm').exec(info);
  if (match?.[1] === undefined) throw new BenchError(`haproxy show info: no ${field} field in:\n${info.slice(0, 500)}`);
  return Number(match[1]);
}

async function upstreamConnections(statsPort: number): Promise<number> {
  const n = await fetchJson(statsPort, '/connections');
  if (typeof n !== 'number') throw new BenchError(`upstream: unexpected /connections answer ${JSON.stringify(n)}`);
  return n;
}

// ---- the outrigger pair ----

function identityArgs(control: ControlPlaneChild, dir: string, serviceAccount: string): string[] {
  return [
    ...['--identity-addr', `127.0.0.1:${control.port}`],
    ...['--identity-token-file', path.join(dir, `${serviceAccount}.token`)],
    ...['--identity', spiffeOf(serviceAccount), ...control.tlsArgs],
  ];
}

/** Where the server proxy's TLS connections show in its metrics. */
const INBOUND_TLS = { direction: 'inbound', tls: 'true' } as const;

/** Whether a request through the pair entered at `port` succeeded (default: an HTTP/1.1 GET answered 200). */
export type PairProbe = (port: number) => Promise<boolean>;
const http1Probe: PairProbe = async (port) => (await probeHttp1(port)) === 200;

async function startOutriggerPair(
  control: ControlPlaneChild,
  dir: string,
  upstreamPort: number,
  loads: readonly Load[],
  resumption: boolean,
  probe: PairProbe,
): Promise<MeshPair> {
  const controlAddr = `127.0.0.1:${control.port}`;
  const started: OutriggerProcess[] = [];
  const stopAll = async (): Promise<void> => {
    for (const p of started.reverse()) await stopManaged(p.proc);
  };
  try {
    const server = await spawnOutriggerProcess('mtls server', [
      ...['--static-destination', `127.0.0.1:${upstreamPort}`],
      ...identityArgs(control, dir, 'server'),
    ]);
    started.push(server);
    const serverPod = MESH_PODS.find((p) => p.serviceAccount === 'server');
    if (serverPod === undefined) throw new Error('unreachable: no server pod');
    await control.replace(
      serviceContent(
        [{ pod: serverPod.name, ip: '127.0.0.1', port: server.inbound, meshed: true, serviceAccount: 'server' }],
        'server',
      ),
    );
    const clientArgs = [
      ...['--static-destination', `${VIP}:${VIP_PORT}`, '--destination-addr', controlAddr],
      ...identityArgs(control, dir, 'client'),
    ];
    const client = await spawnOutriggerProcess('mtls client', clientArgs);
    started.push(client);
    const clients: [string, OutriggerProcess][] = [['mtls client', client]];
    // The handshake load's client: nothing pooled, so every request opens a new mesh TLS connection.
    let fresh: OutriggerProcess | undefined;
    if (loads.includes('handshake')) {
      fresh = await spawnOutriggerProcess('mtls client, no upstream pooling', [
        ...clientArgs,
        ...['--max-idle-per-upstream', '0', '--mesh-tls-session-resumption', String(resumption)],
      ]);
      started.push(fresh);
      clients.push(['mtls client, no upstream pooling', fresh]);
    }
    const metrics = (): Promise<string> => fetchText(server.admin, '/metrics');
    for (const [label, p] of clients) {
      await waitUntil(`outrigger ${label} forwarding over mesh tls`, () => probe(p.outbound), READY_TIMEOUT_MS, p.proc);
    }
    // The requests above must have crossed as mesh TLS (not plaintext to an unmeshed endpoint).
    if (promCounterSum(await metrics(), 'tcp_open_total', INBOUND_TLS) < clients.length) {
      throw new BenchError(
        `outrigger mtls pair: the server proxy counted no mesh tls connection; the pair is not doing mTLS:\n${await metrics()}`,
      );
    }
    return {
      path: 'outrigger',
      ports: { keepalive: client.outbound, ...(fresh ? { handshake: fresh.outbound } : {}) },
      pids: {
        keepalive: { client: client.proc.pid, server: server.proc.pid },
        ...(fresh ? { handshake: { client: fresh.proc.pid, server: server.proc.pid } } : {}),
      },
      tlsAccepted: async () => promCounterSum(await metrics(), 'tcp_open_total', INBOUND_TLS),
      exitedEarly: () => started.some((p) => p.proc.hasExited()),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

// ---- the haproxy pair ----

export interface HaproxyMtlsFiles {
  /** Leaf + issuer + key of each side (from the mesh CA), and the trust anchor. */
  readonly clientPem: string;
  readonly serverPem: string;
  readonly caPem: string;
}

const TLS13 = 'ssl-min-ver TLSv1.3 ssl-max-ver TLSv1.3';

/** The server side: terminates mutual TLS (a client certificate from the mesh CA required), forwards
 *  in plaintext to the upstream over pooled connections, like the outrigger server proxy. */
export function haproxyMtlsServerConfig(
  listenPort: number,
  upstreamPort: number,
  files: HaproxyMtlsFiles,
  statsSocket: string,
  h2 = false,
): string {
  return `${haproxyHead('bench/mtls.ts', [`stats socket ${statsSocket} mode 600 level user`])}
frontend mesh_in
    bind 127.0.0.1:${listenPort} ssl crt ${files.serverPem} ca-file ${files.caPem} verify required ${TLS13}${h2 ? ' alpn h2' : ''}
    default_backend app

backend app
    http-reuse always
    server upstream 127.0.0.1:${upstreamPort}${h2 ? ' proto h2' : ''}
`;
}

/** The client side: two plaintext frontends, each originating mutual TLS to the server side. bench_in
 *  pools its TLS connections (http-reuse always, like the existing haproxy path); bench_handshake opens
 *  a new one for every client connection (http-reuse never) with a full handshake (no-ssl-reuse).
 *  `h2`: h2c from the client, HTTP/2 inside the TLS (ALPN h2), and from the server side to the upstream. */
export function haproxyMtlsClientConfig(
  ports: Record<Load, number>,
  serverPort: number,
  files: HaproxyMtlsFiles,
  resumption = false,
  h2 = false,
): string {
  const server = `server mesh 127.0.0.1:${serverPort} ssl crt ${files.clientPem} ca-file ${files.caPem} verify required ${TLS13}${h2 ? ' alpn h2' : ''}`;
  const proto = h2 ? ' proto h2' : '';
  return `${haproxyHead('bench/mtls.ts')}
frontend bench_in
    bind 127.0.0.1:${ports.keepalive}${proto}
    default_backend mesh_pooled

frontend bench_handshake
    bind 127.0.0.1:${ports.handshake}${proto}
    default_backend mesh_fresh

backend mesh_pooled
    http-reuse always
    ${server}

backend mesh_fresh
    http-reuse never
    ${server}${resumption ? '' : ' no-ssl-reuse'}
`;
}

async function startHaproxyPair(
  haproxy: string,
  dir: string,
  upstreamPort: number,
  resumption: boolean,
  h2: boolean,
  probe: PairProbe,
): Promise<MeshPair> {
  const [keepalive, handshake, serverPort] = await freePorts(3);
  if (keepalive === undefined || handshake === undefined || serverPort === undefined) throw new Error('freePorts(3)');
  const files: HaproxyMtlsFiles = {
    clientPem: path.join(dir, 'haproxy-client.pem'),
    serverPem: path.join(dir, 'haproxy-server.pem'),
    caPem: path.join(dir, 'ca.pem'),
  };
  const statsSocket = path.join(dir, 'haproxy-server.sock');
  const serverCfg = path.join(dir, 'haproxy-server.cfg');
  const clientCfg = path.join(dir, 'haproxy-client.cfg');
  writeFileSync(serverCfg, haproxyMtlsServerConfig(serverPort, upstreamPort, files, statsSocket, h2));
  writeFileSync(clientCfg, haproxyMtlsClientConfig({ keepalive, handshake }, serverPort, files, resumption, h2));
  const procs: Managed[] = [];
  const stopAll = async (): Promise<void> => {
    for (const p of procs.reverse()) await stopManaged(p);
  };
  try {
    // -db: foreground, no master process, so the pid we hold is the one doing the work.
    const server = spawnManaged('haproxy (mtls server)', haproxy, ['-f', serverCfg, '-db']);
    procs.push(server);
    const client = spawnManaged('haproxy (mtls client)', haproxy, ['-f', clientCfg, '-db']);
    procs.push(client);
    for (const port of [keepalive, handshake]) {
      await waitUntil('haproxy mtls pair forwarding', () => probe(port), READY_TIMEOUT_MS, client);
    }
    if (server.hasExited()) throw new BenchError(`haproxy (mtls server) exited:\n${server.tail()}`);
    const tlsAccepted = async (): Promise<number> =>
      haproxyInfoField(await unixCommand(statsSocket, 'show info'), 'CumSslConns');
    if ((await tlsAccepted()) < 2) throw new BenchError('haproxy mtls pair: the server side counted no TLS connection');
    return {
      path: 'haproxy',
      ports: { keepalive, handshake },
      pids: {
        keepalive: { client: client.pid, server: server.pid },
        handshake: { client: client.pid, server: server.pid },
      },
      tlsAccepted,
      exitedEarly: () => procs.some((p) => p.hasExited()),
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}

// ---- both pairs, as the mtls and fixed-rate scenarios set them up ----

export interface MeshPairs {
  /** In the order asked. */
  readonly pairs: readonly MeshPair[];
  /** The control plane and CA both pairs' certificates come from. */
  readonly control: ControlPlaneChild;
  /** Stops the pairs and the control plane, and removes the keys and tokens. */
  stop(): Promise<void>;
}

/** Starts the control plane (mesh CA, destination) and the pairs asked for, each ready for `loads`:
 *  the one setup of the outrigger and haproxy mTLS pairs (bench/mtls.ts's header says how). */
export async function startMeshPairs(o: {
  pairs: readonly PairName[];
  loads: readonly Load[];
  /** mtls-handshake: TLS sessions resumed between the proxies (default false: full handshakes). */
  resumption?: boolean;
  haproxy: string | undefined;
  upstreamPort: number;
  log: (line: string) => void;
  /** The scenario, for progress lines. */
  label: string;
  /** HTTP/2 end to end (the grpc scenario): haproxy's frontends take h2c, its TLS says ALPN h2, its
   *  server side speaks h2 to the upstream (outrigger detects HTTP/2 by itself). Default HTTP/1.1. */
  h2?: boolean;
  /** How a pair is known to forward (default: an HTTP/1.1 GET answered 200). */
  probe?: PairProbe;
}): Promise<MeshPairs> {
  const dir = makeTempDir('mtls');
  const pairs: MeshPair[] = [];
  let control: ControlPlaneChild | undefined;
  const stop = async (): Promise<void> => {
    for (const p of pairs) await p.stop();
    await control?.stop();
    removeTempDir(dir);
  };
  try {
    // The haproxy pair's certificates come from the control plane child (the mesh CA) too.
    control = await startControlPlaneChild({ identityDir: dir });
    o.log(`[${o.label}] control plane + CA on 127.0.0.1:${control.port} (pid ${control.proc.pid})`);
    for (const which of o.pairs) {
      o.log(`[${o.label}] starting the ${which} pair`);
      if (which === 'outrigger')
        pairs.push(
          await startOutriggerPair(control, dir, o.upstreamPort, o.loads, o.resumption ?? false, o.probe ?? http1Probe),
        );
      else {
        if (o.haproxy === undefined) throw new Error('haproxy binary not resolved');
        pairs.push(
          await startHaproxyPair(
            o.haproxy,
            dir,
            o.upstreamPort,
            o.resumption ?? false,
            o.h2 ?? false,
            o.probe ?? http1Probe,
          ),
        );
      }
    }
    return { pairs, control, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- the scenario ----

/** Where `load` enters `pair`, and the processes it goes through (the pair was set up for it). */
export function pairEntry(pair: MeshPair, load: Load): { port: number; pids: { client: number; server: number } } {
  const port = pair.ports[load];
  const pids = pair.pids[load];
  if (port === undefined || pids === undefined)
    throw new Error(`the ${pair.path} pair was not set up for the ${load} load`);
  return { port, pids };
}

function runLoad(ctx: MtlsContext, pair: MeshPair, load: Load, durationS: number): Promise<LoadResult> {
  return runWrk({
    wrk: ctx.wrk,
    port: pairEntry(pair, load).port,
    durationS,
    connections: ctx.opts.connections,
    ...(load === 'handshake' ? { headers: [CLOSE_HEADER] } : {}),
  });
}

async function measure(ctx: MtlsContext, pair: MeshPair, load: Load, round: number): Promise<Sample> {
  const { pids } = pairEntry(pair, load);
  const tlsBefore = await pair.tlsAccepted();
  const upBefore = await upstreamConnections(ctx.statsPort);
  const cpuBefore = { client: cpuSeconds(pids.client), server: cpuSeconds(pids.server) };
  const result = await runLoad(ctx, pair, load, ctx.opts.duration);
  const cpuAfter = { client: cpuSeconds(pids.client), server: cpuSeconds(pids.server) };
  const client = readMemory(pids.client);
  const server = readMemory(pids.server);
  const cpuUs = (side: 'client' | 'server'): number | null => {
    const [a, b] = [cpuBefore[side], cpuAfter[side]];
    return a === null || b === null || result.requests === 0 ? null : ((b - a) * 1e6) / result.requests;
  };
  if (pair.exitedEarly())
    throw new BenchError(`[mtls] a process of the ${pair.path} pair exited during its ${load} run`);
  const tlsConnections = (await pair.tlsAccepted()) - tlsBefore;
  const upstreamConns = (await upstreamConnections(ctx.statsPort)) - upBefore;
  return {
    ...result,
    scenario: load === 'keepalive' ? 'mtls' : 'mtls-handshake',
    path: pair.path,
    round,
    memory: client !== null && server !== null ? sumMemory(client, server) : null,
    pairMemory: { client, server },
    pairCpuUsPerRequest: { client: cpuUs('client'), server: cpuUs('server') },
    tlsConnections,
    upstreamConnections: upstreamConns,
  };
}

/** A pair's memory: each figure summed over its two proxies. */
function sumMemory(a: MemoryFigures, b: MemoryFigures): MemoryFigures {
  const sum = (k: keyof MemoryFigures): number => Number((a[k] + b[k]).toFixed(2));
  return {
    rss_mb: sum('rss_mb'),
    pss_mb: sum('pss_mb'),
    uss_mb: sum('uss_mb'),
    private_dirty_mb: sum('private_dirty_mb'),
  };
}

function describe(s: Sample): string {
  const perReq = (n: number | undefined): string =>
    n === undefined || s.requests === 0 ? '?' : (n / s.requests).toFixed(3);
  return (
    `${s.path.padEnd(9)} ${s.rps.toFixed(0)} req/s, p50 ${s.p50Ms.toFixed(2)} ms, p99 ${s.p99Ms.toFixed(2)} ms` +
    (s.pairMemory ? `, client ${formatMemory(s.pairMemory.client)}, server ${formatMemory(s.pairMemory.server)}` : '') +
    (s.pairCpuUsPerRequest
      ? `, cpu/req ${s.pairCpuUsPerRequest.client?.toFixed(0) ?? '?'}+${s.pairCpuUsPerRequest.server?.toFixed(0) ?? '?'} us`
      : '') +
    `, tls conns/req ${perReq(s.tlsConnections)}, upstream conns/req ${perReq(s.upstreamConnections)}` +
    (s.errors > 0 ? `, WARNING ${s.errors} errors of ${s.requests} requests` : '')
  );
}

/** Starts both pairs, warms each up with both loads, then runs the alternating rounds. */
export async function runMtlsScenario(ctx: MtlsContext): Promise<Sample[]> {
  const { opts, log } = ctx;
  const wanted = opts.paths.filter((p): p is PairName => p !== 'direct');
  if (wanted.length === 0) {
    log('[mtls] skipped: it measures outrigger and haproxy pairs, and --paths has neither');
    return [];
  }
  const mesh = await startMeshPairs({
    pairs: wanted,
    loads: ['keepalive', 'handshake'],
    resumption: opts.resumption,
    haproxy: ctx.haproxy,
    upstreamPort: ctx.upstreamPort,
    log,
    label: 'mtls',
  });
  const { pairs } = mesh;
  const samples: Sample[] = [];
  try {
    if (opts.warmup > 0) {
      for (const p of pairs) {
        for (const load of ['keepalive', 'handshake'] as const) {
          log(`[mtls] warm-up ${p.path} ${load} ${opts.warmup}s`);
          await runLoad(ctx, p, load, opts.warmup);
        }
      }
    }
    for (let round = 1; round <= opts.rounds; round++) {
      const shift = (round - 1) % pairs.length;
      const order = [...pairs.slice(shift), ...pairs.slice(0, shift)];
      for (const load of ['keepalive', 'handshake'] as const) {
        for (const p of order) {
          const s = await measure(ctx, p, load, round);
          samples.push(s);
          log(`[${s.scenario} round ${round}/${opts.rounds}] ${describe(s)}`);
        }
      }
    }
  } finally {
    await mesh.stop();
  }
  return samples;
}
