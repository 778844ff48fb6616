// The one harness of the root end-to-end tests: a scenario file says only its scenario. Each file's
// bridges, pod and service CIDRs and control ports come from one table, so files the runner starts side
// by side never share a network; a mesh a killed earlier run of the same file left behind is removed
// first; and the mesh is always taken down: after the test (passed or failed) and when the runner stops
// the file with a signal (past --test-timeout, or Ctrl-C), when t.after never runs.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { sweepBridge } from '../src/runtime/net/index.js';
import type { PodView } from '../src/runtime/mesh.js';
import { BIN, cli, MESH_TOOLS, meshPreconditions, show, unavailable, type Run } from './root-helpers.js';
import { sumMetric } from './metrics-text.js';
import { LOAD_LOOP, REQUEST_COUNT } from './pod-programs.js';

export type { DeploymentView, MeshStatus, PodView, ServiceView } from '../src/runtime/mesh.js';

/** One network a test file may bring a mesh up on. */
export interface MeshNet {
  /** The bridge, and so the prefix of every namespace, chain and hosts directory of the mesh. */
  readonly bridge: string;
  readonly podCidr: string;
  readonly serviceCidr: string;
  /** The control plane's gRPC port on the bridge address. */
  readonly controlPort: number;
}

/** Network N of the table: pod CIDR 10.200.N.0/24, service CIDR 10.201.N.0/24, control port 27100 + N. */
function net(bridge: string, n: number): MeshNet {
  return { bridge, podCidr: `10.200.${n}.0/24`, serviceCidr: `10.201.${n}.0/24`, controlPort: 27100 + n };
}

/**
 * Every network the root tests use, one row per file (a file with more than one mesh, or that builds
 * pod networks itself, has several). N is unique across the table (checked below): a new file takes
 * the next one. Bridge names start with `ote`, which nothing else creates, so a sweep by name only
 * ever removes a test's leftovers.
 */
export const MESH_NETS = {
  'runtime-cli': [net('otecli', 1), net('otecli2', 2), net('oteclibad', 3), net('oteclifail', 4)],
  'runtime-mesh': [net('otemesh', 5)],
  'runtime-services': [net('otesvc', 6)],
  'runtime-identity': [net('oteid', 7)],
  'runtime-routes': [net('oteroutes', 8)],
  'runtime-policy': [net('otepolicy', 9)],
  'runtime-observe': [net('oteobserve', 10)],
  'runtime-demo': [net('otedemo', 11)],
  'runtime-resume': [net('oteresume', 12)],
  'runtime-failures': [net('otefail', 13)],
  'runtime-interop': [net('oteinterop', 14)],
  'runtime-net': [net('otenet1', 15), net('otenet2', 16), net('otenet3', 17)],
  'runtime-supervisor': [net('otesup', 18)],
  'runtime-apply': [net('oteapply', 19)],
  'runtime-isolation': [net('oteiso', 20)],
  'runtime-capture': [net('otecap', 21)],
  'runtime-trust': [net('otetrust', 22)],
  'runtime-compromised': [net('otecomp', 23)],
  'runtime-dataplane': [net('otedp', 24)],
  // The per-host twins of the matrix (runtime-*-per-host.test.ts) run beside their sidecar files.
  'runtime-mesh-per-host': [net('otemeshph', 25)],
  'runtime-policy-per-host': [net('otepolph', 26)],
  'runtime-lab': [net('otelab', 27)],
} as const satisfies Record<string, readonly MeshNet[]>;

{
  const all = Object.values(MESH_NETS).flat();
  for (const key of ['bridge', 'podCidr'] as const) {
    const seen = all.map((n) => n[key]);
    const twice = seen.filter((v, i) => seen.indexOf(v) !== i);
    if (twice.length > 0) throw new Error(`MESH_NETS: ${key} used twice: ${twice.join(', ')}`);
  }
}

export type MeshFile = keyof typeof MESH_NETS;

/** The first three octets of a /24 CIDR, e.g. 10.200.1 of 10.200.1.0/24. */
export function prefixOf(cidr: string): string {
  return cidr.split('.').slice(0, 3).join('.');
}

/** Host `n` of a /24 pod CIDR: 1 is the bridge (the gateway), pods get 2 and up. */
export function hostOf(cidr: string, n: number): string {
  return `${prefixOf(cidr)}.${n}`;
}

/** A RegExp source that matches `text` literally. */
export function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The fixed work directory of a file: state, manifests, pod programs; found again by the next run. */
export function workDirOf(file: MeshFile): string {
  return join(tmpdir(), 'outrigger-e2e', file);
}

/** The state directory of the file's `i`th network (the first is the mesh `up` brings up). */
function stateDirOf(file: MeshFile, i: number): string {
  return join(workDirOf(file), i === 0 ? 'state' : `state-${MESH_NETS[file][i]?.bridge ?? i}`);
}

// --- teardown, also on a signal ------------------------------------------------------------------------

/** Files whose networks this process has set up and not yet cleaned. */
const active = new Set<MeshFile>();
let signalHandlers = false;

/** `down` for every state directory of the file, then a sweep of every bridge for what a failed (or a
 *  never run) down left: namespaces, links, chains, hosts files. */
async function clean(file: MeshFile): Promise<void> {
  for (const [i, net] of MESH_NETS[file].entries()) {
    const stateDir = stateDirOf(file, i);
    if (existsSync(stateDir)) await cli(['down', '--state-dir', stateDir], 60_000).catch(() => undefined);
    await sweepBridge(net.bridge).catch((e: unknown) => console.error(`sweep ${net.bridge}: ${String(e)}`));
  }
}

/** Meshes of this process not yet torn down: on a signal each gets its full teardown (loads and
 *  deferred steps too, e.g. a Prometheus the test started), not only `down`. */
const meshes = new Set<Mesh>();

/**
 * The runner sends SIGTERM to a file that ran past --test-timeout (Ctrl-C sends SIGINT): t.after never
 * runs then, and a mesh's control process (a daemon, not our child) would keep its pods, namespaces and
 * rules, and the load it makes would slow every test after it.
 */
function cleanOnSignal(file: MeshFile): void {
  active.add(file);
  if (signalHandlers) return;
  signalHandlers = true;
  const onSignal = (signal: NodeJS.Signals) => {
    void (async () => {
      console.error(`\n*** ${signal}: taking down the meshes of ${[...active].join(', ')} ***`);
      for (const m of meshes) await m.teardown().catch((e: unknown) => console.error(`teardown: ${String(e)}`));
      for (const f of active) await releaseNetworks(f).catch((e: unknown) => console.error(`teardown: ${String(e)}`));
      process.exit(signal === 'SIGINT' ? 130 : 143);
    })();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

/** Whether `pid` is a live run of the file (not a process that got the pid of a dead one later). */
const runningFile = (pid: number, file: MeshFile): boolean => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${file}.test`);
  } catch {
    return false;
  }
};

/**
 * Makes the file's networks and work directory clean and its own: whatever a killed earlier run left
 * (its `owner` file names a process that is gone) is taken down and swept. A live owner is another run
 * of the same file: that is refused rather than torn down under it.
 */
export async function claimNetworks(file: MeshFile): Promise<string> {
  const work = workDirOf(file);
  const owner = Number((await readFile(join(work, 'owner'), 'utf8').catch(() => '')).trim());
  if (owner > 0 && owner !== process.pid && runningFile(owner, file)) {
    assert.fail(`${file}: another run of it (pid ${owner}) owns ${work}`);
  }
  if (owner !== process.pid) {
    if (existsSync(work)) console.error(`# ${file}: removing what an earlier run left in ${work}`);
    await clean(file);
    await rm(work, { recursive: true, force: true });
  }
  // Searchable by others (0711): the proxies run as their own uid and read their token files below it.
  await mkdir(work, { recursive: true });
  await chmod(join(work, '..'), 0o711);
  await chmod(work, 0o711);
  await writeFile(join(work, 'owner'), `${process.pid}\n`);
  cleanOnSignal(file);
  return work;
}

/** Takes the file's meshes down, sweeps its bridges and removes its work directory. */
export async function releaseNetworks(file: MeshFile): Promise<void> {
  await clean(file);
  await rm(workDirOf(file), { recursive: true, force: true });
  active.delete(file);
}

/**
 * For a test that builds pod networks itself (not through `outrigger up`): claims the file's networks
 * and work directory, and releases them after the test. Hooks run in the order they were registered:
 * call this after registering the test's own cleanup (which may need the networks), not before.
 */
export async function networksFor(
  t: TestContext,
  file: MeshFile,
): Promise<{ readonly work: string; readonly nets: readonly MeshNet[] }> {
  const work = await claimNetworks(file);
  t.after(() => releaseNetworks(file));
  return { work, nets: MESH_NETS[file] };
}

// --- the mesh ------------------------------------------------------------------------------------------

/** The data planes a scenario can run with: the test matrix (see README, Development). */
export type DataPlaneMode = 'sidecar' | 'per-host';

/** The data plane of this run: OUTRIGGER_TEST_DATA_PLANE=per-host runs every mesh scenario with the
 *  per-host data plane (OUTRIGGER_TEST_NODES nodes, default 2); unset, sidecars. */
export function dataPlaneOf(env: NodeJS.ProcessEnv = process.env): DataPlaneMode {
  const v = env['OUTRIGGER_TEST_DATA_PLANE'];
  if (v === undefined || v === '' || v === 'sidecar') return 'sidecar';
  if (v === 'per-host') return 'per-host';
  throw new Error(`OUTRIGGER_TEST_DATA_PLANE must be sidecar or per-host, got "${v}"`);
}

/** `up`'s flags for a data plane. */
export function dataPlaneFlags(mode: DataPlaneMode, env: NodeJS.ProcessEnv = process.env): string[] {
  if (mode === 'sidecar') return [];
  const nodes = env['OUTRIGGER_TEST_NODES'];
  return ['--data-plane', 'per-host', ...(nodes !== undefined && nodes !== '' ? ['--nodes', nodes] : [])];
}

export interface MeshTestOptions {
  /** What the file tests, for the "cannot run here" message, e.g. 'the end-to-end routes test'. */
  readonly what: string;
  /** What the machine needs besides root (default: the MESH_TOOLS packages). */
  readonly needs?: string;
  /** Commands besides MESH_TOOLS, with a flag that makes each print its version. */
  readonly tools?: readonly (readonly [string, string])[];
  /** A further precondition: why the test cannot run here, or undefined. */
  readonly check?: () => string | undefined;
  /** Files written into the work directory before `up`: pod programs, web roots (`www/hello.txt`). */
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
}

export interface LoadSummary {
  readonly ok: number;
  readonly fail: number;
  /** Answers by body. */
  readonly seen: Record<string, number>;
  readonly errors: readonly string[];
}

/** A command left running in the background, e.g. a load from a pod; stopped in teardown if need be. */
export interface Background {
  readonly child: ChildProcess;
  readonly done: Promise<Run>;
}

export interface ExecOptions {
  /** The pod's namespace (default: default). */
  readonly ns?: string;
  readonly timeoutMs?: number;
}

/** The pod programs of loadLoop and countRequests, in the work directory (names of their own, so that a
 *  test's own load.py is another file). */
const LOAD_PROGRAM = 'harness-load.py';
const COUNT_PROGRAM = 'harness-count.py';

export const DEFAULT_NEEDS = 'iproute2, iptables, util-linux (setpriv), curl and python3';

/**
 * Checks that this machine can run a root mesh test (skipping loudly, or failing under CI=true), claims
 * the file's networks and registers their teardown. Undefined when the test cannot run here: the test
 * then returns at once.
 */
export async function meshTest(t: TestContext, file: MeshFile, opts: MeshTestOptions): Promise<Mesh | undefined> {
  const why = meshPreconditions([...MESH_TOOLS, ...(opts.tools ?? [])]) ?? opts.check?.();
  if (why !== undefined) {
    unavailable(t, file, opts.what, why, opts.needs ?? DEFAULT_NEEDS);
    return undefined;
  }
  // A per-host run of a file with a twin in the matrix takes the twin's networks, so that the two
  // can run at once (npm test runs two files at a time).
  const twin = `${file}-per-host`;
  if (dataPlaneOf() === 'per-host' && twin in MESH_NETS) file = twin as MeshFile;
  const mesh = new Mesh(file, await claimNetworks(file));
  meshes.add(mesh);
  t.after(() => mesh.teardown());
  await mesh.write(LOAD_PROGRAM, LOAD_LOOP);
  await mesh.write(COUNT_PROGRAM, REQUEST_COUNT);
  for (const [name, content] of Object.entries(opts.files ?? {})) await mesh.write(name, content);
  return mesh;
}

export class Mesh {
  /** The network of the mesh `up` brings up. */
  readonly net: MeshNet;
  readonly stateDir: string;
  /** The manifest `up` and `apply` read (rewritten by each). */
  readonly file: string;
  private readonly background: Background[] = [];
  private readonly deferred: (() => Promise<void> | void)[] = [];
  /** The data plane `up` brings up: OUTRIGGER_TEST_DATA_PLANE, or the test's own (meshTest's option). */
  dataPlane: DataPlaneMode = dataPlaneOf();

  constructor(
    readonly name: MeshFile,
    /** The work directory: pod programs, manifests and the state directory are below it. */
    readonly work: string,
  ) {
    this.net = MESH_NETS[name][0];
    this.stateDir = stateDirOf(name, 0);
    this.file = join(work, 'mesh.yaml');
  }

  /** The file's `i`th network and a state directory of its own, for a test that needs more meshes. */
  spare(i: number): MeshNet & { readonly stateDir: string } {
    const net = MESH_NETS[this.name][i];
    assert.ok(net !== undefined && i > 0, `${this.name} has no network ${i} in MESH_NETS`);
    return { ...net, stateDir: stateDirOf(this.name, i) };
  }

  /** `--bridge ... --pod-cidr ... --service-cidr ... --control-port ...` of a network of this file. */
  netFlags(net: MeshNet = this.net): string[] {
    return [
      ...['--bridge', net.bridge, '--pod-cidr', net.podCidr],
      ...['--service-cidr', net.serviceCidr, '--control-port', String(net.controlPort)],
    ];
  }

  /** A path below the work directory. */
  path(...names: string[]): string {
    return join(this.work, ...names);
  }

  async write(name: string, content: string | Uint8Array): Promise<string> {
    const p = this.path(name);
    await mkdir(join(p, '..'), { recursive: true });
    await writeFile(p, content);
    return p;
  }

  /** `outrigger ARGS --state-dir STATE` (before a `--`, so that it stays the CLI's own flag). */
  cli(args: readonly string[], timeoutMs?: number): Promise<Run> {
    const i = args.indexOf('--');
    const at = i < 0 ? args.length : i;
    return cli([...args.slice(0, at), '--state-dir', this.stateDir, ...args.slice(at)], timeoutMs);
  }

  /** `outrigger up` on this file's network with `manifest` (and any further flags); asserts it worked.
   *  The data plane is the test matrix's (dataPlaneOf), unless the flags name one. */
  async up(manifest: string, flags: readonly string[] = [], timeoutMs = 90_000): Promise<Run> {
    await writeFile(this.file, manifest);
    const dp = flags.includes('--data-plane') ? [] : dataPlaneFlags(this.dataPlane);
    const r = await this.cli(['up', '-f', this.file, ...this.netFlags(), ...dp, ...flags], timeoutMs);
    assert.equal(r.code, 0, show(r));
    return r;
  }

  /** `outrigger apply` of `manifest`; asserts the exit code (0 unless said otherwise). */
  async apply(manifest: string, opts: { readonly code?: number; readonly timeoutMs?: number } = {}): Promise<Run> {
    await writeFile(this.file, manifest);
    const r = await this.cli(['apply', '-f', this.file], opts.timeoutMs ?? 90_000);
    assert.equal(r.code, opts.code ?? 0, show(r));
    return r;
  }

  /** `outrigger exec POD -- ARGV`, whatever its exit code. */
  exec(pod: string, argv: readonly string[], opts: ExecOptions = {}): Promise<Run> {
    return this.cli(['exec', ...(opts.ns !== undefined ? ['-n', opts.ns] : []), pod, '--', ...argv], opts.timeoutMs);
  }

  /** `outrigger exec POD -- ARGV`; asserts it exited 0 and returns its stdout. */
  async run(pod: string, argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
    const r = await this.exec(pod, argv, opts);
    assert.equal(r.code, 0, `${argv.join(' ')}\n${show(r)}`);
    return r.stdout;
  }

  /** `outrigger get KIND -o json`, its items. */
  async get<T>(kind: string): Promise<T[]> {
    const r = await this.cli(['get', kind, '-o', 'json']);
    assert.equal(r.code, 0, show(r));
    return (JSON.parse(r.stdout) as { items: T[] }).items;
  }

  pods(): Promise<PodView[]> {
    return this.get<PodView>('pods');
  }

  /** Per-host: the node proxies as `get dataplane` shows them (node, pid). */
  async nodeProxies(): Promise<{ node?: string; pid?: number }[]> {
    return this.get<{ node?: string; pid?: number }>('dataplane');
  }

  /** The pid of the data-plane process serving `pod`: its sidecar's, or (per-host) its node proxy's. */
  async proxyPid(pod: PodView): Promise<number> {
    if (this.dataPlane === 'per-host') {
      const nodes = await this.nodeProxies();
      const n = nodes.find((i) => i.node === pod.node);
      assert.ok(n?.pid !== undefined, `no node proxy serves ${pod.name}: ${JSON.stringify(nodes)}`);
      return n.pid;
    }
    const s = pod.containers.find((c) => c.name === 'outrigger-proxy')?.state;
    assert.ok(s?.state === 'running', `${pod.name}'s proxy: ${JSON.stringify(pod.containers)}`);
    return s.pid;
  }

  /** A pod's proxy's Prometheus text, from its admin port inside the pod. */
  metrics(pod: string, ns?: string): Promise<string> {
    return this.run(pod, ['curl', '-sS', '-m', '5', 'http://127.0.0.1:4191/metrics'], ns !== undefined ? { ns } : {});
  }

  /** The sum of a metric's samples (labels including `match`) in a pod's proxy. */
  async metric(pod: string, name: string, match: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.metrics(pod), name, match);
  }

  /** `outrigger exec POD -- ARGV` left running; killed in teardown if it has not ended by then. */
  spawnExec(pod: string, argv: readonly string[]): Background {
    return this.spawnCli(['exec', pod, '--state-dir', this.stateDir, '--', ...argv]);
  }

  /** Any `outrigger ARGS` left running (no --state-dir added); stopped in teardown like spawnExec. */
  spawnCli(args: readonly string[]): Background {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const done = new Promise<Run>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
    const b = { child, done };
    this.background.push(b);
    return b;
  }

  /** The stop file of loadLoop: its loads end when it exists. */
  get stopFile(): string {
    return this.path('stop');
  }

  /**
   * GETs http://HOST:PORT/PATH from POD in a loop (a new connection each, or one kept alive) until
   * `stop` is called, which returns the counts ({ok, fail, seen: answers by body, errors}).
   */
  loadLoop(
    pod: string,
    host: string,
    port: number,
    path: string,
    opts: { readonly keepAlive?: boolean } = {},
  ): { stop(): Promise<LoadSummary> } {
    const keepAlive = opts.keepAlive === true ? ['--keep-alive'] : [];
    const argv = ['python3', this.path(LOAD_PROGRAM), host, String(port), path, this.stopFile, ...keepAlive];
    const { done } = this.spawnExec(pod, argv);
    return {
      stop: async () => {
        await writeFile(this.stopFile, '');
        const r = await done;
        assert.equal(r.code, 0, show(r));
        return JSON.parse(r.stdout) as LoadSummary;
      },
    };
  }

  /** N GETs of http://HOST:PORT/PATH from POD on one keep-alive connection (with a header `name:value`
   *  if given); how many answers each body's first word (or `status-N` for a non-200) got. */
  async countRequests(
    pod: string,
    target: { readonly host: string; readonly port: number; readonly path: string; readonly header?: string },
    n: number,
    timeoutMs = 120_000,
  ): Promise<Record<string, number>> {
    const header = target.header !== undefined ? [target.header] : [];
    const { host, port, path } = target;
    const argv = ['python3', this.path(COUNT_PROGRAM), host, String(port), String(n), path, ...header];
    return JSON.parse(await this.run(pod, argv, { timeoutMs })) as Record<string, number>;
  }

  /** Runs `fn` in teardown, before the mesh goes down (in the reverse order of registration). */
  defer(fn: () => Promise<void> | void): void {
    this.deferred.push(fn);
  }

  /** Stops the loads (the stop file, 15 s, then SIGKILL), runs what was deferred, takes every network
   *  of the file down and removes the work directory. */
  async teardown(): Promise<void> {
    if (!meshes.delete(this)) return; // done already (after a signal, or twice)
    await writeFile(this.stopFile, '').catch(() => undefined);
    for (const b of this.background) {
      const timer = setTimeout(() => b.child.kill('SIGKILL'), 15_000);
      await b.done.catch(() => undefined);
      clearTimeout(timer);
    }
    for (const fn of this.deferred.reverse()) {
      await (async () => fn())().catch((e: unknown) => console.error(`teardown: ${String(e)}`));
    }
    await releaseNetworks(this.name);
  }
}
