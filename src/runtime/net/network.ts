// The pod network on one machine: a bridge with the pod CIDR's gateway address, and per pod a network
// namespace on a veth pair into it, with its /etc/netns files and optionally the proxy-init rules.
//
// A pod gets loopback, one address and a default route via the gateway, nothing else: no NAT, and
// nothing forwarded off the machine. Every change is recorded before it is made (see record.ts).
import { mkdir, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { cidrsOverlap, formatCidr, formatIPv4, gatewayOf, NetConfigError, parseCidr, type Cidr } from './cidr.js';
import { CommandError, runCommand, type Runner } from './exec.js';
import { listLinks, listRoutes } from './host.js';
import { renderHosts, renderResolvConf, type HostEntry } from './hosts.js';
import { IpPool } from './ipam.js';
import { checkBridgeName, DEFAULT_BRIDGE, forwardChain, netnsName, POD_INTERFACE, vethName } from './names.js';
import { restoreCommand, type ProxyInitConfig } from './proxy-init.js';
import { renderPodRules, type ServiceRule } from './pod-rules.js';
import type { NetRecord, PodNetRecord } from './record.js';
import { removePodNetwork, teardownNetwork, type TeardownReport } from './teardown.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';

export const DEFAULT_POD_CIDR = '10.244.0.0/16';
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/16';
export const DEFAULT_ETC_NETNS_DIR = '/etc/netns';
/** Where `ip netns add` mounts named network namespaces. */
const NETNS_RUN_DIR = '/run/netns';

export interface NetworkOptions {
  /** Bridge name (default `outr0`); every other name derives from it (names.ts). */
  readonly bridge?: string;
  /** IPv4 pod CIDR (default 10.244.0.0/16); the bridge takes the first address. */
  readonly podCidr?: string;
  /** IPv4 CIDR of Service virtual IPs (default 10.96.0.0/16); only pods' own rules give it meaning. */
  readonly serviceCidr?: string;
  /** iptables command for the host and the pods, e.g. `iptables-legacy` (default `iptables`). */
  readonly iptables?: string;
  /** Where `ip netns exec` looks for per-namespace /etc files (default /etc/netns; tests only). */
  readonly etcNetnsDir?: string;
  readonly runner?: Runner;
  /** Called with the updated record before each change is made; persist it so `down` can undo
   *  everything even after a crash. A rejection aborts the change. */
  readonly onRecord?: (record: NetRecord) => void | Promise<void>;
}

/** What a pod's network looks like once created. */
export interface PodNet {
  readonly netns: string;
  readonly veth: string;
  /** The pod's interface inside its namespace. */
  readonly interface: string;
  readonly ip: string;
  readonly prefix: number;
  readonly gateway: string;
  readonly etcDir: string;
}

export interface PodIdentity {
  readonly namespace: string;
  readonly name: string;
  /** Mapped to the pod's IP in its hosts file. */
  readonly hostname: string;
}

export class PodNetwork {
  private readonly rec: NetRecord;
  private readonly run: Runner;
  private readonly pool: IpPool;
  private readonly onRecord: NonNullable<NetworkOptions['onRecord']>;
  /** Per pod (by netns): its proxy-init settings, and the queue its rule files are applied through. */
  private readonly proxyInit = new Map<string, ProxyInitConfig>();
  private readonly ruleQueue = new Map<string, Promise<void>>();
  private services: readonly ServiceRule[] = [];
  /** Pods whose namespace exists (the record lists a pod before it is made). */
  private readonly made = new Set<string>();
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    rec: NetRecord,
    private readonly cidr: Cidr,
    readonly serviceCidr: Cidr,
    opts: NetworkOptions,
  ) {
    this.rec = rec;
    this.run = opts.runner ?? runCommand;
    this.pool = new IpPool(
      cidr,
      rec.pods.map((p) => p.ip),
    );
    this.onRecord = opts.onRecord ?? (() => undefined);
  }

  /** Creates the bridge and the host rules that keep pod traffic on it. Fails, leaving nothing
   *  behind, if the bridge exists already (another mesh, or one not torn down: run `down`) or the pod
   *  CIDR overlaps a route the host has. */
  static async create(opts: NetworkOptions = {}): Promise<PodNetwork> {
    const bridge = opts.bridge ?? DEFAULT_BRIDGE;
    checkBridgeName(bridge);
    const cidr = parseCidr(opts.podCidr ?? DEFAULT_POD_CIDR, 'pod CIDR');
    if (cidr.prefix > 30)
      throw new NetConfigError(`pod CIDR ${formatCidr(cidr)} is too small: it needs a /30 or larger`);
    const serviceCidr = parseCidr(opts.serviceCidr ?? DEFAULT_SERVICE_CIDR, 'service CIDR');
    if (serviceCidr.prefix > 30)
      throw new NetConfigError(`service CIDR ${formatCidr(serviceCidr)} is too small: it needs a /30 or larger`);
    if (cidrsOverlap(cidr, serviceCidr))
      throw new NetConfigError(`service CIDR ${formatCidr(serviceCidr)} overlaps the pod CIDR ${formatCidr(cidr)}`);
    const run = opts.runner ?? runCommand;

    if ((await listLinks(run)).some((l) => l.ifname === bridge)) {
      throw new NetConfigError(
        `bridge ${bridge} already exists: another mesh uses it, or one was not torn down (run outrigger down)`,
      );
    }
    for (const r of await listRoutes(run)) {
      if (r.dst === 'default') continue;
      let dst: Cidr;
      try {
        dst = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      } catch {
        continue; // a route form we do not model (e.g. a multicast or broadcast entry)
      }
      for (const [what, c] of [
        ['pod', cidr],
        ['service', serviceCidr],
      ] as const) {
        if (cidrsOverlap(dst, c)) {
          throw new NetConfigError(
            `${what} CIDR ${formatCidr(c)} overlaps the host's route to ${r.dst}${r.dev !== undefined ? ` on ${r.dev}` : ''}; choose another ${what} CIDR`,
          );
        }
      }
    }

    const rec: NetRecord = {
      version: 1,
      bridge,
      podCidr: formatCidr(cidr),
      gateway: formatIPv4(gatewayOf(cidr)),
      iptables: opts.iptables ?? 'iptables',
      etcNetnsDir: opts.etcNetnsDir ?? DEFAULT_ETC_NETNS_DIR,
      forwardChain: forwardChain(bridge),
      pods: [],
    };
    const net = new PodNetwork(rec, cidr, serviceCidr, opts);
    await net.save();
    try {
      await net.createBridge();
    } catch (err) {
      await teardownNetwork(rec, { runner: run }).catch(() => undefined);
      throw err;
    }
    return net;
  }

  /**
   * Takes over the network an earlier runtime made (its record), when that runtime was killed and a
   * new one carries on: nothing is created or changed here. Fails if the bridge is gone (the network
   * cannot be resumed: run `down`). Pods whose namespace is gone stay in the record, not made, for the
   * caller to remove with removePod.
   */
  static async adopt(
    rec: NetRecord,
    opts: Omit<NetworkOptions, 'bridge' | 'podCidr' | 'iptables' | 'etcNetnsDir'> = {},
  ): Promise<PodNetwork> {
    const cidr = parseCidr(rec.podCidr, 'pod CIDR');
    const serviceCidr = parseCidr(opts.serviceCidr ?? DEFAULT_SERVICE_CIDR, 'service CIDR');
    const run = opts.runner ?? runCommand;
    if (!(await listLinks(run)).some((l) => l.ifname === rec.bridge)) {
      throw new NetConfigError(
        `bridge ${rec.bridge} is gone: the mesh's network cannot be resumed (run outrigger down)`,
      );
    }
    const net = new PodNetwork(structuredClone(rec), cidr, serviceCidr, opts);
    for (const p of rec.pods) {
      try {
        await stat(join(NETNS_RUN_DIR, p.netns));
        net.made.add(p.netns);
      } catch {
        // gone: see the doc comment
      }
    }
    return net;
  }

  /** Whether a pod's namespace exists (was made by this network, or found by adopt). */
  has(netns: string): boolean {
    return this.made.has(netns);
  }

  /** The network of a pod in the record, by namespace name. */
  podByNetns(netns: string): PodNet | undefined {
    const p = this.rec.pods.find((x) => x.netns === netns);
    return p === undefined ? undefined : this.podNet(p);
  }

  /** A copy of the record as it stands. */
  get record(): NetRecord {
    return structuredClone(this.rec);
  }

  get bridge(): string {
    return this.rec.bridge;
  }

  get gateway(): string {
    return this.rec.gateway;
  }

  /** Persists the record. Saves run one at a time, each writing the record as it is when it runs, so
   *  concurrent changes (pods made in parallel) can never leave an older record on disk. */
  private save(): Promise<void> {
    const next = this.saving.catch(() => undefined).then(() => this.onRecord(this.record));
    this.saving = next;
    return next;
  }

  private async createBridge(): Promise<void> {
    const { bridge, gateway, iptables, forwardChain: chain } = this.rec;
    await this.run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await this.noIPv6LinkLocal(['ip', 'link', 'set', bridge, 'addrgenmode', 'none']);
    await this.run('ip', ['addr', 'add', `${gateway}/${this.cidr.prefix}`, 'dev', bridge]);
    await this.run('ip', ['link', 'set', bridge, 'up']);
    // With br_netfilter loaded, frames between two ports of a bridge traverse the host's FORWARD chain:
    // a host with a DROP policy there (Docker sets one) would cut pods off from each other. And a host
    // with ip_forward=1 would route pod traffic off the machine. One chain, jumped to first, allows
    // bridge-to-bridge and drops anything forwarded into or out of the pod network.
    await this.run(iptables, ['-w', '-N', chain]);
    await this.run(iptables, ['-w', '-A', chain, '-i', bridge, '-o', bridge, '-j', 'ACCEPT']);
    await this.run(iptables, ['-w', '-A', chain, '-j', 'DROP']);
    for (const dir of ['-i', '-o']) {
      await this.run(iptables, [
        '-w',
        '-I',
        'FORWARD',
        '1',
        dir,
        bridge,
        '-m',
        'comment',
        '--comment',
        `outrigger pods on ${bridge}`,
        '-j',
        chain,
      ]);
    }
  }

  /** Turns off IPv6 address generation on an interface: pods are IPv4 only, and an IPv6 link-local
   *  path between pods would bypass the proxy-init rules (which are IPv4). Best effort: a kernel
   *  booted without IPv6 has nothing to turn off and refuses the setting. */
  private async noIPv6LinkLocal(argv: readonly string[]): Promise<void> {
    try {
      await this.run(argv[0] ?? 'ip', argv.slice(1));
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
    }
  }

  /** Creates a pod's namespace, veth pair, address, route and /etc files; on failure removes what it
   *  made and rethrows. `hosts` are extra hosts-file entries (Services). */
  async addPod(pod: PodIdentity, hosts: readonly HostEntry[] = []): Promise<PodNet> {
    const netns = netnsName(this.rec.bridge, pod.namespace, pod.name);
    if (this.rec.pods.some((p) => p.netns === netns)) {
      const why = `pod ${pod.namespace}/${pod.name} already has a network (${netns})`;
      throw new RuntimeError(RuntimeCodes.POD_NETWORK, why);
    }
    const entry: PodNetRecord = {
      pod: `${pod.namespace}/${pod.name}`,
      netns,
      veth: vethName(netns),
      ip: this.pool.allocate(),
      etcDir: join(this.rec.etcNetnsDir, netns),
    };
    this.rec.pods.push(entry);
    try {
      await this.save();
      await this.createPod(entry);
      this.made.add(netns);
      await this.writePodFiles(entry.netns, pod, hosts);
      await this.applyRules(entry.netns);
    } catch (err) {
      await this.removePod(netns).catch(() => undefined);
      throw err;
    }
    return this.podNet(entry);
  }

  private async createPod(p: PodNetRecord): Promise<void> {
    const { netns, veth, ip } = p;
    const inNs = (...args: string[]) => this.run('ip', ['-n', netns, ...args]);
    await this.run('ip', ['netns', 'add', netns]);
    // The peer is created directly inside the namespace, so its name (eth0) never meets the host's.
    await this.run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', POD_INTERFACE, 'netns', netns]);
    await this.noIPv6LinkLocal(['ip', 'link', 'set', veth, 'addrgenmode', 'none']);
    await this.noIPv6LinkLocal(['ip', '-n', netns, 'link', 'set', POD_INTERFACE, 'addrgenmode', 'none']);
    await this.run('ip', ['link', 'set', veth, 'master', this.rec.bridge]);
    await this.run('ip', ['link', 'set', veth, 'up']);
    await inNs('link', 'set', 'lo', 'up');
    await inNs('addr', 'add', `${ip}/${this.cidr.prefix}`, 'dev', POD_INTERFACE);
    await inNs('link', 'set', POD_INTERFACE, 'up');
    await inNs('route', 'add', 'default', 'via', this.rec.gateway, 'dev', POD_INTERFACE);
  }

  /** (Re)writes a pod's hosts and resolv.conf. In place, not by rename: `ip netns exec` bind-mounts
   *  these files over /etc, and a bind mount pins the inode, so processes already running would keep
   *  reading a renamed-over file's old content forever. */
  async writePodFiles(netns: string, pod: PodIdentity, hosts: readonly HostEntry[]): Promise<void> {
    const p = this.findPod(netns);
    await mkdir(p.etcDir, { recursive: true, mode: 0o755 });
    await writeInPlace(join(p.etcDir, 'hosts'), renderHosts({ ...pod, ip: p.ip }, hosts));
    await writeInPlace(join(p.etcDir, 'resolv.conf'), renderResolvConf(pod.namespace));
  }

  /** Installs (or replaces) the proxy-init rules in a pod's namespace, with the Service rules. */
  async applyProxyInit(netns: string, cfg: ProxyInitConfig): Promise<void> {
    this.findPod(netns);
    this.proxyInit.set(netns, cfg);
    await this.applyRules(netns);
  }

  /** Replaces the Service rules in every pod (each pod's tables atomically). Rejects with every
   *  pod that failed, after trying them all. */
  async setServices(services: readonly ServiceRule[]): Promise<void> {
    this.services = services;
    const results = await Promise.allSettled([...this.made].map((netns) => this.applyRules(netns)));
    const failed = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).message] : []));
    if (failed.length > 0) throw new RuntimeError(RuntimeCodes.SERVICE_RULES, `service rules: ${failed.join('; ')}`);
  }

  /** Writes a pod's rules file: one at a time per pod, each with the settings current when it runs,
   *  so that the last change always wins. */
  private applyRules(netns: string): Promise<void> {
    const prev = this.ruleQueue.get(netns) ?? Promise.resolve();
    const next = prev
      .catch(() => undefined)
      .then(async () => {
        const p = this.rec.pods.find((x) => x.netns === netns);
        if (p === undefined || !this.made.has(netns)) return; // removed meanwhile
        const cfg = this.proxyInit.get(netns);
        const text = renderPodRules({
          pod: p.pod,
          ...(cfg !== undefined ? { proxyInit: cfg } : {}),
          services: this.services,
          serviceCidr: this.serviceCidr,
        });
        const { file, args } = restoreCommand(this.rec.iptables, netns);
        await this.run(file, args, { input: text });
      });
    this.ruleQueue.set(netns, next);
    void next
      .finally(() => {
        if (this.ruleQueue.get(netns) === next) this.ruleQueue.delete(netns);
      })
      .catch(() => undefined);
    return next;
  }

  /** The nat rules in a pod's namespace, as `iptables -S` prints them (for checks and debugging). */
  async natRules(netns: string): Promise<string[]> {
    const { stdout } = await this.run('ip', ['netns', 'exec', netns, this.rec.iptables, '-w', '-t', 'nat', '-S']);
    return stdout.split('\n').filter((l) => l !== '');
  }

  /** Removes one pod's network (idempotent) and frees its address. */
  async removePod(netns: string): Promise<TeardownReport> {
    this.made.delete(netns); // no rules written into a namespace on its way out
    const idx = this.rec.pods.findIndex((p) => p.netns === netns);
    if (idx === -1) return { removed: [], warnings: [] };
    const p = this.rec.pods[idx] as PodNetRecord;
    const report = await removePodNetwork(p, this.rec, this.run);
    // Found again: pods removed in parallel may have moved it in the list meanwhile.
    const now = this.rec.pods.indexOf(p);
    if (now !== -1) this.rec.pods.splice(now, 1);
    this.proxyInit.delete(netns);
    this.pool.release(p.ip);
    await this.save();
    return report;
  }

  /** Removes everything this network created (see teardown.ts). */
  async teardown(): Promise<TeardownReport> {
    const report = await teardownNetwork(this.rec, { runner: this.run });
    for (const p of this.rec.pods) this.pool.release(p.ip);
    this.rec.pods.length = 0;
    this.made.clear();
    await this.save();
    return report;
  }

  pods(): PodNet[] {
    return this.rec.pods.map((p) => this.podNet(p));
  }

  private findPod(netns: string): PodNetRecord {
    const p = this.rec.pods.find((x) => x.netns === netns);
    if (p === undefined) {
      throw new RuntimeError(RuntimeCodes.POD_NETWORK, `no pod network ${netns} on bridge ${this.rec.bridge}`);
    }
    return p;
  }

  private podNet(p: PodNetRecord): PodNet {
    return {
      netns: p.netns,
      veth: p.veth,
      interface: POD_INTERFACE,
      ip: p.ip,
      prefix: this.cidr.prefix,
      gateway: this.rec.gateway,
      etcDir: p.etcDir,
    };
  }
}

/** The argv that runs a command inside a pod's namespace, with its /etc/netns files over /etc. */
export function netnsExecArgv(netns: string, argv: readonly string[]): string[] {
  return ['ip', 'netns', 'exec', netns, ...argv];
}

/** Overwrites a file's content keeping its inode: write from offset 0, then cut the rest, so a reader
 *  sees either old bytes or new ones but never an empty file. */
async function writeInPlace(path: string, content: string): Promise<void> {
  const data = Buffer.from(content);
  let fh;
  try {
    fh = await open(path, 'r+');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    fh = await open(path, 'w', 0o644);
  }
  try {
    await fh.write(data, 0, data.length, 0);
    await fh.truncate(data.length);
  } finally {
    await fh.close();
  }
}
