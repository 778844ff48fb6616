// The three paths the load takes to the upstream: direct, through `outrigger proxy`, and through haproxy
// (http mode, one thread, same forwarding). Starts each, waits until a request passes, and stops it.
// The balance scenario's paths go to three replicas instead: outrigger asks the control plane about a
// Service VIP (--static-destination VIP --destination-addr CP) and balances over its endpoints;
// haproxy has the same three servers with `balance roundrobin`.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BenchError,
  freePorts,
  makeTempDir,
  probeH2,
  probeHttp1,
  removeTempDir,
  spawnManaged,
  stopManaged,
  waitUntil,
  type Managed,
} from './tools.js';
import type { LoadScenario, PathName } from './types.js';
import { PROXY_NODE_OPTIONS } from '../src/proxy/node-options.js';

type Scenario = Exclude<LoadScenario, 'balance'>;

export interface RunningPath {
  readonly path: PathName;
  /** Where the load generator connects. */
  readonly port: number;
  /** The proxy process whose RSS is reported; null for direct. */
  readonly pid: number | null;
  /** Set when the proxy exited on its own (crashed) during the run. */
  exitedEarly(): boolean;
  stop(): Promise<void>;
}

export const READY_TIMEOUT_MS = 15_000;

/**
 * The CLI run as `outrigger proxy`: dist/src/cli/main.js next to this compiled dist/bench/, unless
 * OUTRIGGER_BENCH_CLI names another build (e.g. a baseline checkout, to compare two versions).
 */
export const OUTRIGGER_CLI =
  process.env['OUTRIGGER_BENCH_CLI'] ?? fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/**
 * The Node that runs the outrigger proxies under test: this one, unless OUTRIGGER_BENCH_NODE names another
 * binary (e.g. Node 24: OUTRIGGER_BENCH_NODE="$(scripts/node24.sh node)", to compare Node versions on the
 * same build). Everything else (the driver, the upstream, the control plane) stays on this Node.
 */
export const PROXY_NODE = process.env['OUTRIGGER_BENCH_NODE'] || process.execPath;

/**
 * The node flags the outrigger proxies under test get: the ones the runtime and the injector give a
 * proxy (src/proxy/node-options.ts), unless OUTRIGGER_BENCH_PROXY_NODE_OPTIONS says others (space-separated;
 * empty: none, V8's defaults), to compare V8 settings on one build.
 */
export const BENCH_PROXY_NODE_OPTIONS: readonly string[] = (() => {
  const v = process.env['OUTRIGGER_BENCH_PROXY_NODE_OPTIONS'];
  return v === undefined ? PROXY_NODE_OPTIONS : v.split(/\s+/).filter((f) => f !== '');
})();

/** haproxy: the binary main resolved (with the missing-package check); needed only for that path. */
export function assertOutriggerBuilt(): void {
  if (!existsSync(OUTRIGGER_CLI)) {
    throw new BenchError(
      `outrigger CLI not built (${OUTRIGGER_CLI} missing): run \`npx tsc -p .\`, or measure the other paths ` +
        'with --paths direct,haproxy',
    );
  }
}

/** "v24.22.3, OpenSSL 3.5.9 (/path/to/node)": what runs the proxies, for the log. Throws a BenchError
 *  when OUTRIGGER_BENCH_NODE names something that does not run. */
export function proxyNodeVersion(): string {
  try {
    const v = execFileSync(PROXY_NODE, ['-p', 'process.version + ", OpenSSL " + process.versions.openssl'], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    return `${v.trim()} (${PROXY_NODE})`;
  } catch (err) {
    throw new BenchError(
      `the proxies' Node ${PROXY_NODE} (OUTRIGGER_BENCH_NODE) does not run: ${(err as Error).message.split('\n')[0]}`,
    );
  }
}

export function startPath(
  which: PathName,
  scenario: Scenario,
  upstreamPort: number,
  haproxy: string | undefined,
): Promise<RunningPath> {
  switch (which) {
    case 'direct':
      return Promise.resolve(startDirect(upstreamPort));
    case 'outrigger':
      return startOutrigger(scenario, upstreamPort);
    case 'haproxy':
      if (haproxy === undefined) throw new Error('haproxy binary not resolved');
      return startHaproxy(haproxy, scenario, upstreamPort);
  }
}

function startDirect(upstreamPort: number): RunningPath {
  return { path: 'direct', port: upstreamPort, pid: null, exitedEarly: () => false, stop: () => Promise.resolve() };
}

/** A request through the path must succeed before load starts (not just an open port). */
async function passesRequest(scenario: Scenario, port: number): Promise<boolean> {
  const status = scenario === 'h2' ? await probeH2(port) : await probeHttp1(port);
  return status === 200;
}

function proxyPath(which: PathName, port: number, proc: Managed, cleanup: () => void): RunningPath {
  return {
    path: which,
    port,
    pid: proc.pid,
    exitedEarly: () => proc.hasExited(),
    stop: async () => {
      await stopManaged(proc);
      cleanup();
    },
  };
}

function startOutrigger(scenario: Scenario, upstreamPort: number): Promise<RunningPath> {
  return spawnOutrigger(scenario, scenario, ['--static-destination', `127.0.0.1:${upstreamPort}`]);
}

/** A started `outrigger proxy`: its process and its three loopback ports. */
export interface OutriggerProcess {
  readonly proc: Managed;
  readonly outbound: number;
  readonly inbound: number;
  readonly admin: number;
}

/** Starts `outrigger proxy` on free loopback ports with `extraArgs` and waits for its /ready (with
 *  identity flags: until it holds a certificate). `nodeArgs` go to node itself, before the CLI (default:
 *  BENCH_PROXY_NODE_OPTIONS). The
 *  caller stops it (stopManaged). */
export async function spawnOutriggerProcess(
  label: string,
  extraArgs: readonly string[],
  nodeArgs: readonly string[] = BENCH_PROXY_NODE_OPTIONS,
): Promise<OutriggerProcess> {
  assertOutriggerBuilt();
  const [outbound, inbound, admin] = await freePorts(3);
  if (outbound === undefined || inbound === undefined || admin === undefined) throw new Error('freePorts(3)');
  const args = [
    ...nodeArgs,
    OUTRIGGER_CLI,
    'proxy',
    ...['--outbound-port', String(outbound), '--inbound-port', String(inbound), '--admin-port', String(admin)],
    ...['--outbound-addr', '127.0.0.1', '--inbound-addr', '127.0.0.1', '--admin-addr', '127.0.0.1'],
    ...extraArgs,
    ...['--log-level', 'warn'],
  ];
  const proc = spawnManaged(`outrigger proxy (${label})`, PROXY_NODE, args);
  try {
    await waitUntil(
      `outrigger ${label} /ready`,
      async () => (await probeHttp1(admin, '/ready')) === 200,
      READY_TIMEOUT_MS,
      proc,
    );
  } catch (err) {
    await stopManaged(proc);
    throw err;
  }
  return { proc, outbound, inbound, admin };
}

/** `outrigger proxy` forwarding every connection as if it were going to `destinationArgs`' address. */
async function spawnOutrigger(
  label: string,
  scenario: Scenario,
  destinationArgs: readonly string[],
): Promise<RunningPath> {
  const { proc, outbound } = await spawnOutriggerProcess(label, destinationArgs);
  try {
    await waitUntil(`outrigger ${label} forwarding`, () => passesRequest(scenario, outbound), READY_TIMEOUT_MS, proc);
  } catch (err) {
    await stopManaged(proc);
    throw err;
  }
  return proxyPath('outrigger', outbound, proc, () => undefined);
}

/** Same forwarding as outrigger: one frontend, one backend server, pooled keep-alive connections. */
export function haproxyConfig(scenario: Scenario, listenPort: number, upstreamPort: number): string {
  const proto = scenario === 'h2' ? ' proto h2' : '';
  return haproxyText(listenPort, proto, [`server upstream 127.0.0.1:${upstreamPort}${proto}`]);
}

/** The balance scenario: the same forwarding over several HTTP/1.1 servers, taken in turn. */
export function haproxyBalanceConfig(listenPort: number, replicaPorts: readonly number[]): string {
  return haproxyText(listenPort, '', [
    'balance roundrobin',
    ...replicaPorts.map((p, i) => `server replica${i} 127.0.0.1:${p}`),
  ]);
}

/** The global and defaults sections every bench haproxy shares (one thread, keep-alive both sides);
 *  `globals` are added to the global section. */
export function haproxyHead(writtenBy: string, globals: readonly string[] = []): string {
  return `# written by outrigger ${writtenBy}
global
    nbthread 1
    maxconn 4096
${globals.map((l) => `    ${l}\n`).join('')}
defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
`;
}

function haproxyText(listenPort: number, proto: string, backendLines: readonly string[]): string {
  return `${haproxyHead('bench/paths.ts')}
frontend bench_in
    bind 127.0.0.1:${listenPort}${proto}
    default_backend bench_upstream

backend bench_upstream
    http-reuse always
${backendLines.map((l) => `    ${l}`).join('\n')}
`;
}

function startHaproxy(haproxy: string, scenario: Scenario, upstreamPort: number): Promise<RunningPath> {
  return spawnHaproxy(haproxy, scenario, scenario, (port) => haproxyConfig(scenario, port, upstreamPort));
}

async function spawnHaproxy(
  haproxy: string,
  label: string,
  scenario: Scenario,
  config: (port: number) => string,
): Promise<RunningPath> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('freePorts(1)');
  const dir = makeTempDir('haproxy');
  const cfg = path.join(dir, 'haproxy.cfg');
  writeFileSync(cfg, config(port));
  // -db: stay in the foreground, no master process, so the pid we hold is the one doing the work.
  const proc = spawnManaged(`haproxy (${label})`, haproxy, ['-f', cfg, '-db']);
  const cleanup = (): void => removeTempDir(dir);
  try {
    await waitUntil(`haproxy ${label} forwarding`, () => passesRequest(scenario, port), READY_TIMEOUT_MS, proc);
  } catch (err) {
    await stopManaged(proc);
    cleanup();
    throw err;
  }
  return proxyPath('haproxy', port, proc, cleanup);
}

/** A path of the balance scenario: outrigger balancing over the Service at `vip` (endpoints from the
 *  control plane at 127.0.0.1:controlPort), or haproxy round-robin over the same replicas. */
export function startBalancePath(
  which: Exclude<PathName, 'direct'>,
  vip: string,
  control: { readonly port: number; readonly tlsArgs: readonly string[] },
  replicaPorts: readonly number[],
  haproxy: string | undefined,
): Promise<RunningPath> {
  if (which === 'outrigger') {
    return spawnOutrigger('balance', 'http1', [
      '--static-destination',
      vip,
      '--destination-addr',
      `127.0.0.1:${control.port}`,
      ...control.tlsArgs,
    ]);
  }
  if (haproxy === undefined) throw new Error('haproxy binary not resolved');
  return spawnHaproxy(haproxy, 'balance', 'http1', (port) => haproxyBalanceConfig(port, replicaPorts));
}
