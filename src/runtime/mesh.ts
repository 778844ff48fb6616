// One local mesh, as the control process runs it: the pod network, the Services' virtual IPs, each
// pod's network and processes (Deployments expanded), and `apply`, which moves the running mesh to
// what the manifests now say (pods added, removed, or replaced one at a time). It publishes what the
// control plane serves (a snapshot of Services, endpoints and pods) and keeps every pod's hosts file
// and Service rules current. Progress lines as it goes; the status `get` shows.
import { randomBytes, randomUUID } from 'node:crypto';
import { chown, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DefaultInboundPolicy, EndpointEntry, PodEntry, ServiceEntry, StoreSnapshot } from '../control/store/store.js';
import {
  ANNOTATION,
  formatPortList,
  ManifestError,
  parseManifests,
  planPods,
  portListHas,
  serviceTargets,
  templateHash,
  type ManifestProblem,
  type ManifestSet,
  type ManifestSource,
  type PodPlan,
  type ServiceObject,
} from './manifests/index.js';
import {
  DEFAULT_PROXY_INIT,
  IpPool,
  NetConfigError,
  parseNetRecord,
  PodNetwork,
  serviceHostNames,
  type HostEntry,
  type NetRecord,
  type PodNet,
  type ServiceRule,
} from './net/index.js';
import { killNetnsProcesses, PodProcesses, resolveProxyCommand, type PodStatus, type ProxyCommand } from './supervisor/index.js';
import { readJson, removeStateFiles, statePaths, writeJsonAtomic, type StatePaths } from './state.js';
import * as z from 'zod';
import { routeEntries } from '../control/store/manifests/routes.js';
import { policyEntries } from '../control/store/manifests/policy.js';
import { takeOver } from './manifests/takeover.js';
import type { RouteView } from '../manifests/types.js';

/** Whether a pod with this name and uid runs now (a recreated pod has a new uid). */
export type PodExists = (namespace: string, pod: { readonly name: string; readonly uid: string }) => boolean;

/** Who a ServiceAccount token is for. */
export interface TokenSubject {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: { readonly name: string; readonly uid: string };
}

/** The control plane the mesh hosts for its proxies, started once the bridge (and so its address)
 *  exists; the proxies reach it at `addr`. */
export interface ControlPlaneHost {
  start(gateway: string, podExists: PodExists): Promise<{ readonly addr: string; close(): Promise<void> }>;
  /** The port it listens on (on the gateway's address): a mesh that is resumed must know the address
   *  before the control plane serves, to publish what its pods are first (see Mesh.resume). */
  readonly port: number;
  /** Called with every new snapshot of Services, endpoints and pods. */
  publish(snapshot: Omit<StoreSnapshot, 'version'>): void;
  /** With identity: the trust domain, and a signed ServiceAccount token bound to a pod, which the
   *  runtime hands to that pod's proxy (as the kubelet projects one into a pod). */
  readonly identity?: {
    readonly trustDomain: string;
    issueToken(subject: TokenSubject): Promise<string>;
  };
}

/** How long a pod's token is good for, and how often it is replaced (half of that). */
const TOKEN_LIFETIME_S = 3600;

export interface MeshOptions {
  readonly stateDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  /** How long each pod may take to become ready (ms, default 60 s). */
  readonly readyTimeoutMs?: number;
  /** How long a pod being removed stays out of every endpoint list before it is stopped, so that
   *  proxies and Service rules stop sending it new work first (ms, default 1500). */
  readonly endpointGraceMs?: number;
  readonly controlPlane?: ControlPlaneHost;
  /** The mesh-wide default inbound policy (`up --default-inbound-policy`); a pod's or its namespace's
   *  config.outrigger.io/default-inbound-policy wins. Default all-unauthenticated. */
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
  /** Called with each progress line (also kept in the status). */
  readonly onProgress?: (line: string) => void;
  /** An OTLP/HTTP collector every proxy sends spans to (a pod's annotation overrides it). */
  readonly traceCollector?: string;
}

export type MeshPhase = 'Starting' | 'Ready' | 'Failed' | 'Stopping' | 'Stopped';

export interface PodView extends PodStatus {
  readonly labels: Readonly<Record<string, string>>;
  /** The Deployment that owns the pod. */
  readonly deployment?: string;
  /** App container names, in order (the proxy is `outrigger-proxy`). */
  readonly appContainers: readonly string[];
  /** Being removed (by apply or a rollout). */
  readonly terminating?: boolean;
}

export interface ServiceView {
  readonly namespace: string;
  readonly name: string;
  readonly clusterIP: string;
  readonly selector: Readonly<Record<string, string>>;
  readonly ports: readonly { readonly name?: string; readonly port: number; readonly targetPort: number | string; readonly protocol: string }[];
  /** Ready endpoints: `ip:port` per Service port, in port order. */
  readonly endpoints: readonly string[];
}

export interface DeploymentView {
  readonly namespace: string;
  readonly name: string;
  readonly replicas: number;
  readonly ready: number;
  readonly pods: readonly string[];
}

export interface MeshStatus {
  readonly phase: MeshPhase;
  readonly message?: string;
  /** Progress lines so far; `up` and `apply` print the ones they have not printed yet. */
  readonly progress: readonly string[];
  readonly pods: readonly PodView[];
  readonly services: readonly ServiceView[];
  readonly deployments: readonly DeploymentView[];
  /** HTTPRoutes and GRPCRoutes: what `routes` and the dashboard show beside each route's figures. */
  readonly routes?: readonly RouteView[];
}

export type { RouteView };

/** A manifest file as `up` or `apply` sends it: `path` (absolute) identifies it across applies, `name`
 *  is how the user wrote it (for messages). */
export interface ManifestFile {
  readonly path: string;
  readonly name: string;
  readonly text: string;
}

export interface ApplyResult {
  readonly created: readonly string[];
  readonly replaced: readonly string[];
  readonly deleted: readonly string[];
  readonly unchanged: number;
}

interface RunningPod {
  readonly plan: PodPlan;
  /** metadata.uid: tokens are bound to it. */
  readonly uid: string;
  /** What makes two plans of one pod name equivalent (spec, labels, mesh settings). */
  readonly fingerprint: string;
  readonly net: PodNet;
  readonly pp: PodProcesses;
  terminating: boolean;
}

/** What a new control process needs to take over this mesh (StatePaths.resume). It holds the
 *  manifests' text (with their env values): 0600, like state.json. */
const resumeRecord = z.object({
  version: z.literal(1),
  serviceCidr: z.string().optional(),
  sources: z.array(z.object({ path: z.string(), file: z.string(), text: z.string() })),
  vips: z.record(z.string(), z.string()),
  pods: z.array(
    z.object({
      key: z.string(),
      uid: z.string(),
      fingerprint: z.string(),
      netns: z.string(),
      /** Per container name: whether it was ready. */
      ready: z.record(z.string(), z.boolean()),
    }),
  ),
});
type ResumeRecord = z.output<typeof resumeRecord>;

const EMPTY_SET: ManifestSet = { objects: [], namespaces: [], pods: [], deployments: [], services: [], serviceAccounts: [], httpRoutes: [], grpcRoutes: [] };

export class Mesh {
  private readonly paths: StatePaths;
  private net: PodNetwork | undefined;
  private proxyCommand: ProxyCommand | undefined;
  private controlAddr: string | undefined;
  private closeControl: (() => Promise<void>) | undefined;
  /** Every file applied so far, by absolute path: the mesh is what they say together. */
  private sources = new Map<string, ManifestSource>();
  private set: ManifestSet = EMPTY_SET;
  private readonly running = new Map<string, RunningPod>();
  /** Service `namespace/name` → its virtual IP. */
  private readonly vips = new Map<string, string>();
  private vipPool: IpPool | undefined;
  private phase: MeshPhase = 'Starting';
  private message: string | undefined;
  private readonly progress: string[] = [];
  private stopping: Promise<void> | undefined;
  private applyQueue: Promise<unknown> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | undefined;
  private lastRules = '';
  private saveQueued = false;
  private tokenTimer: NodeJS.Timeout | undefined;
  /** The resume record last written (JSON), so an unchanged one is not written again. */
  private lastResume = '';
  /** The service CIDR a resumed mesh was started with (kept in its resume record). */
  private resumedServiceCidr: string | undefined;
  /** Pods being set up (network, rules, token) and not yet in `running`. */
  private readonly settingUp = new Set<Promise<void>>();
  /** Checked once: the proxy's uid must be able to walk down to the token files. */
  private tokensReachable: Promise<void> | undefined;
  /** The proxies' copy of the mesh's tap token (readable by the proxy uid only). */
  private tapTokenFile: string | undefined;

  constructor(private readonly o: MeshOptions) {
    this.paths = statePaths(o.stateDir);
  }

  private say(line: string): void {
    this.progress.push(line);
    this.o.onProgress?.(line);
  }

  /** Creates the network and the control plane, then applies the files and waits until every pod is
   *  ready. On failure the phase is Failed and the error is rethrown; the caller stops the mesh (which
   *  removes what was made). */
  start(files: readonly ManifestFile[]): Promise<void> {
    return this.becomeReady(async () => {
      // Logs of an earlier mesh in this state directory (down keeps them) would mix with ours.
      await rm(this.paths.pods, { recursive: true, force: true });
      this.net = await PodNetwork.create({
        ...(this.o.bridge !== undefined ? { bridge: this.o.bridge } : {}),
        ...(this.o.podCidr !== undefined ? { podCidr: this.o.podCidr } : {}),
        ...(this.o.serviceCidr !== undefined ? { serviceCidr: this.o.serviceCidr } : {}),
        onRecord: (r: NetRecord) => writeJsonAtomic(this.paths.net, r),
      });
      this.vipPool = new IpPool(this.net.serviceCidr, [], 'service');
      await this.writeTapToken();
      this.say(`network: bridge ${this.net.bridge}, gateway ${this.net.gateway}, services ${this.o.serviceCidr ?? '10.96.0.0/16'}`);
      if (this.o.controlPlane !== undefined) {
        const cp = await this.o.controlPlane.start(this.net.gateway, (ns, pod) => this.running.get(`${ns}/${pod.name}`)?.uid === pod.uid);
        this.controlAddr = cp.addr;
        this.closeControl = () => cp.close();
        this.say(`control plane: ${cp.addr}${this.o.controlPlane.identity !== undefined ? `, identity for trust domain ${this.o.controlPlane.identity.trustDomain}` : ''}`);
        if (this.o.controlPlane.identity !== undefined) this.refreshTokensPeriodically();
      }
      await this.applyNow(files);
    });
  }

  /** Runs `steps`, after which the mesh is Ready. On failure the phase is Failed with the error's
   *  message, and the error is rethrown. */
  private async becomeReady(steps: () => Promise<void>): Promise<void> {
    try {
      await steps();
      this.phase = 'Ready';
      this.say(`ready: ${this.running.size} pod${this.running.size === 1 ? '' : 's'}`);
      await this.save();
    } catch (err) {
      this.phase = 'Failed';
      this.message = (err as Error).message;
      await this.save().catch(() => undefined);
      throw err;
    }
  }

  /** Tokens are replaced at half their lifetime, as the kubelet does with projected tokens. */
  private refreshTokensPeriodically(): void {
    this.tokenTimer = setInterval(() => void this.refreshTokens(), (TOKEN_LIFETIME_S / 2) * 1000);
    this.tokenTimer.unref();
  }

  /**
   * Takes over a mesh whose control process was killed, from the records it left (network, processes,
   * resume.json): the pods' processes keep running untouched and are adopted (ready ones stay ready,
   * so no endpoint blinks); their state is published before the control plane serves again, so a
   * proxy that reconnects gets what it had. Then it reconciles, as an apply would: pods whose
   * processes died meanwhile are started again, and pods in the middle of an interrupted change are
   * replaced. On failure the phase is Failed and the error is rethrown, as with start().
   */
  resume(): Promise<void> {
    return this.becomeReady(async () => {
      const raw = await readJson(this.paths.resume);
      if (raw === undefined) throw new Error(`${this.paths.resume} is missing: the mesh cannot be resumed (run outrigger down)`);
      const parsed = resumeRecord.safeParse(raw);
      if (!parsed.success) throw new Error(`${this.paths.resume} is damaged: ${parsed.error.issues[0]?.path.join('.') ?? ''}: ${parsed.error.issues[0]?.message ?? ''}`);
      const rec = parsed.data;
      this.resumedServiceCidr = rec.serviceCidr;
      const netRaw = await readJson(this.paths.net);
      if (netRaw === undefined) throw new Error(`${this.paths.net} is missing: the mesh cannot be resumed (run outrigger down)`);
      this.net = await PodNetwork.adopt(parseNetRecord(netRaw), {
        ...(rec.serviceCidr !== undefined ? { serviceCidr: rec.serviceCidr } : {}),
        onRecord: (r: NetRecord) => writeJsonAtomic(this.paths.net, r),
      });
      this.vipPool = new IpPool(this.net.serviceCidr, [], 'service');
      for (const [k, ip] of Object.entries(rec.vips)) {
        this.vipPool.reserve(ip);
        this.vips.set(k, ip);
      }
      await this.writeTapToken(); // the one the running proxies hold (kept in the state directory)
      this.sources = new Map(rec.sources.map((x) => [x.path, { file: x.file, text: x.text }]));
      this.set = parseManifests([...this.sources.values()]);
      const plans = new Map(planPods(this.set).map((p) => [key(p), p]));
      this.say(`resuming the mesh: network ${this.net.bridge}, ${rec.pods.length} pod${rec.pods.length === 1 ? '' : 's'} on record`);
      const cp = this.o.controlPlane;
      if (cp !== undefined) this.controlAddr = `${this.net.gateway}:${cp.port}`;
      if ([...plans.values()].some((p) => p.mesh.inject)) {
        this.proxyCommand = await resolveProxyCommand({ user: { uid: DEFAULT_PROXY_INIT.proxyUid, gid: DEFAULT_PROXY_INIT.proxyUid }, stateDir: this.o.stateDir });
      }

      // Adopt what still runs as it was; anything else goes, and the reconcile below makes it anew.
      const leftovers: string[] = [];
      await Promise.all(
        rec.pods.map(async (p) => {
          const plan = plans.get(p.key);
          const podNet = this.net?.has(p.netns) === true ? this.net.podByNetns(p.netns) : undefined;
          if (plan === undefined || podNet === undefined || fingerprint(plan) !== p.fingerprint) {
            leftovers.push(p.netns);
            return;
          }
          const r = this.runningPod(plan, p.uid, podNet);
          this.running.set(p.key, r);
          if (plan.mesh.inject) {
            await this.net?.applyProxyInit(podNet.netns, { ...DEFAULT_PROXY_INIT, skipInboundPorts: plan.mesh.skipInboundPorts, skipOutboundPorts: plan.mesh.skipOutboundPorts });
          }
          try {
            const { adopted, started } = await r.pp.adopt(p.ready);
            this.say(`pod ${p.key}: adopted ${adopted.join(', ') || 'nothing'}${started.length > 0 ? `; started again: ${started.join(', ')}` : ''}`);
          } catch (err) {
            this.say(`pod ${p.key}: ${(err as Error).message}`);
            this.running.delete(p.key);
            leftovers.push(p.netns);
          }
        }),
      );
      // Pods in the network record but not (or no longer) adoptable: their processes and network go.
      for (const p of this.net.pods()) {
        const adopted = [...this.running.values()].some((r) => r.net.netns === p.netns);
        if (!adopted && !leftovers.includes(p.netns)) leftovers.push(p.netns);
      }
      for (const netns of leftovers) {
        await killNetnsProcesses(netns).catch(() => undefined);
        await this.net.removePod(netns);
      }
      this.sync(); // the adopted state, published before any proxy can ask
      await this.rewriteHosts();

      if (cp !== undefined) {
        const started = await cp.start(this.net.gateway, (ns, pod) => this.running.get(`${ns}/${pod.name}`)?.uid === pod.uid);
        this.closeControl = () => started.close();
        this.say(`control plane: ${started.addr}`);
        if (cp.identity !== undefined) {
          await this.refreshTokens();
          this.refreshTokensPeriodically();
        }
      }
      await this.reconcilePods([...plans.values()]);
      this.sync();
    });
  }

  /** Moves the running mesh to what the files say, together with every file applied before (an
   *  object that was in one of these files and is no longer is removed). Refused as a whole, changing
   *  nothing, if the manifests are invalid. One apply at a time. */
  apply(files: readonly ManifestFile[]): Promise<ApplyResult> {
    if (this.phase !== 'Ready') return Promise.reject(new Error(`the mesh is ${this.phase.toLowerCase()}, not ready: apply refused`));
    const run = this.applyQueue.catch(() => undefined).then(() => this.applyNow(files));
    this.applyQueue = run;
    return run;
  }

  private async applyNow(files: readonly ManifestFile[]): Promise<ApplyResult> {
    const { sources, moved } = takeOver(this.sources, new Map(files.map((f) => [f.path, { file: f.name, text: f.text }])));
    // Everything is checked before anything changes: manifests, pod names, Service addresses.
    const set = parseManifests([...sources.values()]);
    const plans = planPods(set);
    const vips = this.planServiceIps(set.services);
    const needProxy = plans.some((p) => p.mesh.inject) && this.proxyCommand === undefined;
    if (needProxy) {
      this.say(`preparing the proxy command (uid ${DEFAULT_PROXY_INIT.proxyUid})`);
      this.proxyCommand = await resolveProxyCommand({ user: { uid: DEFAULT_PROXY_INIT.proxyUid, gid: DEFAULT_PROXY_INIT.proxyUid }, stateDir: this.o.stateDir });
    }

    this.sources = sources;
    this.set = set;
    for (const m of moved) this.say(`taken over: ${m}`);
    const servicesChanged = this.commitServiceIps(vips);
    if (servicesChanged) await this.rewriteHosts();
    const result = await this.reconcilePods(plans);
    this.sync();
    await this.save();
    return result;
  }

  /** The virtual IP of every Service: the one it has, the one its manifest asks for, or a new one. */
  private planServiceIps(services: readonly ServiceObject[]): Map<string, string> {
    const pool = this.vipPool;
    if (pool === undefined) throw new Error('bug: no service address pool');
    const out = new Map<string, string>();
    const taken = new Map<string, string>();
    const problems: ManifestProblem[] = [];
    for (const s of services) {
      const k = key(s.metadata);
      const have = this.vips.get(k);
      const asked = s.spec.clusterIP;
      const problem = (message: string) => problems.push({ file: s.source.file, document: s.source.document, kind: 'Service', name: k, path: 'spec.clusterIP', message });
      if (asked !== undefined && asked !== '' && have !== undefined && asked !== have) {
        problem(`is immutable: the Service has ${have}, the manifest asks for ${asked} (remove the Service first)`);
        continue;
      }
      if (asked !== undefined && asked !== '' && have === undefined) {
        const owner = [...this.vips.entries()].find(([, ip]) => ip === asked)?.[0] ?? taken.get(asked);
        if (owner !== undefined && owner !== k) {
          problem(`${asked} is already the address of Service "${owner}"`);
          continue;
        }
        try {
          new IpPool(pool.cidr, [], 'service').reserve(asked);
        } catch (err) {
          problem((err as NetConfigError).message);
          continue;
        }
        taken.set(asked, k);
        out.set(k, asked);
      } else if (have !== undefined) {
        out.set(k, have);
      }
    }
    if (problems.length > 0) throw new ManifestError(problems);
    return out;
  }

  /** Keeps the planned addresses, gives new Services one, frees the removed ones' (all in memory, so it
   *  cannot fail half-way). Returns whether the set of Services or their addresses changed. */
  private commitServiceIps(planned: Map<string, string>): boolean {
    const pool = this.vipPool as IpPool;
    let changed = false;
    for (const [k, ip] of this.vips) {
      if (planned.get(k) !== ip) {
        pool.release(ip);
        this.vips.delete(k);
        changed = true;
      }
    }
    for (const s of this.set.services) {
      const k = key(s.metadata);
      if (this.vips.has(k)) continue;
      const ip = planned.get(k);
      if (ip !== undefined) pool.reserve(ip);
      const vip = ip ?? pool.allocate();
      this.vips.set(k, vip);
      this.say(`service ${k}: ${vip}`);
      changed = true;
    }
    return changed;
  }

  private hostEntries(podNamespace: string): HostEntry[] {
    return this.set.services.flatMap((s) => {
      const ip = this.vips.get(key(s.metadata));
      return ip === undefined ? [] : [{ ip, names: serviceHostNames(s.metadata.name, s.metadata.namespace, podNamespace) }];
    });
  }

  private async rewriteHosts(): Promise<void> {
    const net = this.net as PodNetwork;
    await Promise.all(
      [...this.running.values()].map((r) =>
        net.writePodFiles(r.net.netns, { namespace: r.plan.namespace, name: r.plan.name, hostname: r.plan.hostname }, this.hostEntries(r.plan.namespace)),
      ),
    );
  }

  /** Creates, replaces and removes pods until the running ones are the plans. A Deployment whose
   *  template changed is rolled one pod at a time: a new pod is started and ready before an old one is
   *  removed. Rejects (after finishing what it can) if a new pod does not become ready. */
  private async reconcilePods(plans: readonly PodPlan[]): Promise<ApplyResult> {
    const desired = new Map(plans.map((p) => [key(p), p]));
    const creates: PodPlan[] = [];
    const replaces: PodPlan[] = [];
    const deletes: RunningPod[] = [];
    let unchanged = 0;
    for (const p of plans) {
      const r = this.running.get(key(p));
      if (r === undefined) creates.push(p);
      else if (r.fingerprint !== fingerprint(p)) replaces.push(p);
      else unchanged++;
    }
    for (const [k, r] of this.running) if (!desired.has(k) && !r.terminating) deletes.push(r);

    // A Deployment's new pods pair with its old-template pods: each new one ready, then one old one goes.
    const rollouts = new Map<string, { news: PodPlan[]; olds: RunningPod[] }>();
    const rolloutOf = (ns: string, name: string) => {
      const k = `${ns}/${name}`;
      let r = rollouts.get(k);
      if (r === undefined) rollouts.set(k, (r = { news: [], olds: [] }));
      return r;
    };
    const plainCreates: PodPlan[] = [];
    for (const p of creates) {
      if (p.owner !== undefined && [...this.running.values()].some((r) => r.plan.owner?.name === p.owner?.name && r.plan.namespace === p.namespace && r.plan.owner?.templateHash !== p.owner?.templateHash)) {
        rolloutOf(p.namespace, p.owner.name).news.push(p);
      } else {
        plainCreates.push(p);
      }
    }
    const plainDeletes: RunningPod[] = [];
    for (const r of deletes) {
      const o = r.plan.owner;
      const ro = o !== undefined ? rollouts.get(`${r.plan.namespace}/${o.name}`) : undefined;
      const d = o !== undefined ? this.set.deployments.find((x) => x.metadata.namespace === r.plan.namespace && x.metadata.name === o.name) : undefined;
      if (ro !== undefined && d !== undefined && o !== undefined && o.templateHash !== templateHash(d.spec.template)) ro.olds.push(r);
      else plainDeletes.push(r);
    }

    const timeout = this.o.readyTimeoutMs ?? 60_000;
    const failures: string[] = [];
    const created: string[] = [];
    const deleted: string[] = [];
    const replaced: string[] = [];
    const attempt = async (what: Promise<void>) => {
      try {
        await what;
      } catch (err) {
        failures.push((err as Error).message);
      }
    };

    // Scale-downs and removals first: they free names and addresses and never wait for readiness.
    await Promise.all(plainDeletes.map((r) => attempt(this.removePod(r).then(() => void deleted.push(key(r.plan))))));
    await Promise.all([
      ...plainCreates.map((p) => attempt(this.createPod(p, timeout).then(() => void created.push(key(p))))),
      // A bare Pod's spec changed: it keeps its name, so the old one must go first.
      ...replaces.map((p) =>
        attempt(
          (async () => {
            const old = this.running.get(key(p));
            if (old !== undefined) await this.removePod(old);
            await this.createPod(p, timeout);
            replaced.push(key(p));
          })(),
        ),
      ),
      ...[...rollouts.entries()].map(([d, ro]) =>
        attempt(
          (async () => {
            this.say(`deployment ${d}: rolling out ${ro.news.length} new pod${ro.news.length === 1 ? '' : 's'}, replacing ${ro.olds.length}, one at a time`);
            ro.olds.sort((a, b) => (b.plan.owner?.index ?? 0) - (a.plan.owner?.index ?? 0));
            for (const p of ro.news) {
              await this.createPod(p, timeout);
              created.push(key(p));
              const old = ro.olds.shift();
              if (old !== undefined) {
                await this.removePod(old);
                deleted.push(key(old.plan));
              }
            }
            for (const old of ro.olds) {
              await this.removePod(old);
              deleted.push(key(old.plan));
            }
          })(),
        ),
      ),
    ]);
    if (failures.length > 0) throw new Error(failures.join('; '));
    return { created, replaced, deleted, unchanged };
  }

  private async createPod(plan: PodPlan, timeoutMs: number): Promise<void> {
    if (this.stopping !== undefined) throw new Error('stopped while starting');
    // Until the pod is in `running`, stop() cannot see it: it waits for this setup instead, which,
    // finding the mesh stopping, removes the pod's network itself (a Ctrl-C during `up` or `demo`
    // left namespaces behind otherwise).
    const setup = this.setUpPod(plan);
    this.settingUp.add(setup);
    try {
      await setup;
    } finally {
      this.settingUp.delete(setup);
    }
    const k = key(plan);
    const r = this.running.get(k) as RunningPod;
    const { pp } = r;
    this.say(
      `pod ${k}: ${r.net.ip}${plan.mesh.inject ? ', meshed' : ', not meshed'}${plan.mesh.inject && plan.mesh.skipOutboundPorts.length > 0 ? ` (skip outbound ${formatPortList(plan.mesh.skipOutboundPorts)})` : ''}`,
    );
    await this.save();
    if (this.stopping !== undefined) throw new Error('stopped while starting');
    await pp.start();
    this.say(`pod ${k}: started`);
    await pp.whenReady(timeoutMs);
    this.say(`pod ${k}: ready`);
  }

  /** A pod's network, proxy-init rules and token, then its entry in `running` (not started yet). */
  private async setUpPod(plan: PodPlan): Promise<void> {
    const net = this.net as PodNetwork;
    const k = key(plan);
    const podNet = await net.addPod({ namespace: plan.namespace, name: plan.name, hostname: plan.hostname }, this.hostEntries(plan.namespace));
    if (plan.mesh.inject) {
      await net.applyProxyInit(podNet.netns, { ...DEFAULT_PROXY_INIT, skipInboundPorts: plan.mesh.skipInboundPorts, skipOutboundPorts: plan.mesh.skipOutboundPorts });
    }
    const uid = randomUUID();
    if (plan.mesh.inject && this.o.controlPlane?.identity !== undefined && this.controlAddr !== undefined) {
      await this.writeToken({ namespace: plan.namespace, serviceAccount: plan.spec.serviceAccountName, pod: { name: plan.name, uid } });
    }
    const r = this.runningPod(plan, uid, podNet);
    if (this.stopping !== undefined) {
      await net.removePod(podNet.netns).catch(() => undefined);
      throw new Error('stopped while starting');
    }
    this.running.set(k, r);
  }

  /** The processes of a pod (not started) with its proxy's settings; the caller enters it in `running`. */
  private runningPod(plan: PodPlan, uid: string, podNet: PodNet): RunningPod {
    const extraArgs =
      this.controlAddr !== undefined
        ? [
            '--destination-addr',
            this.controlAddr,
            '--policy-addr',
            this.controlAddr,
            '--pod',
            `${plan.namespace}/${plan.name}`,
            '--default-inbound-policy',
            plan.mesh.defaultInboundPolicy ?? this.o.defaultInboundPolicy ?? 'all-unauthenticated',
          ]
        : [];
    // Who the proxy serves (its metrics' dst_* labels inbound, its spans' resource), tap, tracing.
    extraArgs.push('--pod-namespace', plan.namespace, '--pod-name', plan.name);
    if (plan.owner !== undefined) extraArgs.push('--pod-workload', plan.owner.name);
    if (this.tapTokenFile !== undefined) extraArgs.push('--tap-token-file', this.tapTokenFile);
    const collector = plan.annotations[ANNOTATION.traceCollector] ?? this.o.traceCollector;
    if (collector !== undefined && collector !== '') extraArgs.push('--trace-collector', collector);
    const accessLog = plan.annotations[ANNOTATION.accessLog];
    if (accessLog === 'stdout') extraArgs.push('--access-log', 'stdout');
    const identity = this.o.controlPlane?.identity;
    if (plan.mesh.inject && identity !== undefined && this.controlAddr !== undefined) {
      const sa = plan.spec.serviceAccountName;
      extraArgs.push('--identity-addr', this.controlAddr, '--identity-token-file', this.tokenFile(plan.namespace, plan.name), '--identity', `spiffe://${identity.trustDomain}/ns/${plan.namespace}/sa/${sa}`);
    }
    const pp = new PodProcesses({
      pod: plan,
      net: { netns: podNet.netns, ip: podNet.ip, gateway: podNet.gateway },
      stateDir: this.o.stateDir,
      podUid: uid,
      ...(plan.mesh.inject && this.proxyCommand !== undefined ? { proxy: { command: this.proxyCommand, extraArgs } } : {}),
    });
    const r: RunningPod = { plan, uid, fingerprint: fingerprint(plan), net: podNet, pp, terminating: false };
    pp.on('change', () => {
      this.queueSync();
      this.queueSave();
    });
    return r;
  }

  private tokenFile(namespace: string, pod: string): string {
    return join(this.paths.root, 'tokens', namespace, pod, 'token');
  }

  /** Makes the mesh's tap token: `<state>/tap-token` (0600, root: for `outrigger tap` and the
   *  dashboard) and the proxies' copy in tokens/ (0400, the proxy uid), given to each by file, never
   *  in argv or logs. Made when the mesh starts (down removes it). */
  private async writeTapToken(): Promise<void> {
    const root = this.paths.tapToken;
    let token: string;
    try {
      token = (await readFile(root, 'utf8')).trim();
      if (token === '') throw new Error('empty');
    } catch {
      token = randomBytes(32).toString('base64url');
      await writeFile(`${root}.tmp`, `${token}\n`, { mode: 0o600 });
      await rename(`${root}.tmp`, root);
    }
    const dir = join(this.paths.root, 'tokens');
    await mkdir(dir, { recursive: true, mode: 0o711 });
    const file = join(dir, 'tap-token');
    await writeFile(`${file}.tmp`, `${token}\n`, { mode: 0o400 });
    await chown(`${file}.tmp`, DEFAULT_PROXY_INIT.proxyUid, DEFAULT_PROXY_INIT.proxyUid);
    await rename(`${file}.tmp`, file);
    this.tapTokenFile = file;
  }

  /** Writes a pod's ServiceAccount token where only its proxy's uid can read it (0400, owned by that
   *  uid, in a root-owned directory of its own) and returns the path. Replaced atomically, so the
   *  proxy reads either the old token or the new one. */
  private async writeToken(subject: TokenSubject): Promise<string> {
    const identity = this.o.controlPlane?.identity;
    if (identity === undefined) throw new Error('bug: no identity to issue tokens');
    const file = this.tokenFile(subject.namespace, subject.pod.name);
    const dir = dirname(file);
    await mkdir(dir, { recursive: true, mode: 0o711 });
    this.tokensReachable ??= searchableByOthers(dir);
    await this.tokensReachable;
    const tmp = `${file}.tmp`;
    await writeFile(tmp, await identity.issueToken(subject), { mode: 0o400 });
    await chown(tmp, DEFAULT_PROXY_INIT.proxyUid, DEFAULT_PROXY_INIT.proxyUid);
    await rename(tmp, file);
    return file;
  }

  private async refreshTokens(): Promise<void> {
    for (const r of this.running.values()) {
      if (!r.plan.mesh.inject || r.terminating || this.stopping !== undefined) continue;
      await this.writeToken({ namespace: r.plan.namespace, serviceAccount: r.plan.spec.serviceAccountName, pod: { name: r.plan.name, uid: r.uid } }).catch((err: unknown) =>
        this.say(`pod ${key(r.plan)}: token: ${(err as Error).message}`),
      );
    }
  }

  /** Takes a pod out of every endpoint list, gives proxies and Service rules a moment to stop sending
   *  it new work, then stops its processes and removes its network. */
  private async removePod(r: RunningPod): Promise<void> {
    const k = key(r.plan);
    r.terminating = true;
    this.say(`pod ${k}: removing`);
    const wasReady = r.pp.status().ready;
    this.sync();
    if (wasReady && this.stopping === undefined) await sleep(this.o.endpointGraceMs ?? 1500);
    await r.pp.stop();
    await (this.net as PodNetwork).removePod(r.net.netns);
    await rm(join(this.paths.root, 'tokens', r.plan.namespace, r.plan.name), { recursive: true, force: true });
    this.running.delete(k);
    this.sync();
    this.say(`pod ${k}: removed`);
  }

  private queueSync(): void {
    if (this.syncTimer !== undefined || this.stopping !== undefined) return;
    // Readiness changes come in bursts (every container of a pod); one update covers them.
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.sync();
    }, 20);
  }

  /** Publishes the current Services, endpoints and pods to the control plane and the pods' Service
   *  rules (only when those changed). */
  private sync(): void {
    if (this.stopping !== undefined || this.net === undefined) return;
    const snap = this.snapshot();
    this.o.controlPlane?.publish(snap);
    const rules: ServiceRule[] = snap.services.flatMap((s) =>
      s.ports.map((p) => ({
        label: `${s.namespace}/${s.name}:${p.port}`,
        ip: s.clusterIP,
        port: p.port,
        endpoints: s.endpoints.flatMap((e) => {
          const port = e.ports[p.port];
          return e.ready && port !== undefined ? [{ ip: e.ip, port }] : [];
        }),
      })),
    );
    const text = JSON.stringify(rules);
    if (text === this.lastRules) return;
    this.lastRules = text;
    this.net.setServices(rules).catch((err: unknown) => this.say(`service rules: ${(err as Error).message}`));
  }

  private snapshot(): Omit<StoreSnapshot, 'version'> {
    const live = [...this.running.values()];
    const plans = live.map((r) => r.plan);
    const byKey = new Map(live.map((r) => [key(r.plan), r]));
    const readyNow = (r: RunningPod | undefined) => r !== undefined && !r.terminating && r.pp.status().ready;
    const services: ServiceEntry[] = this.set.services.flatMap((s) => {
      const clusterIP = this.vips.get(key(s.metadata));
      if (clusterIP === undefined) return [];
      const eps = new Map<string, { pod: string; ip: string; ports: Record<number, number>; ready: boolean }>();
      for (const { port, targets } of serviceTargets(s, plans)) {
        for (const t of targets) {
          const r = byKey.get(key(t.pod));
          if (r === undefined) continue;
          let e = eps.get(key(t.pod));
          if (e === undefined) eps.set(key(t.pod), (e = { pod: key(t.pod), ip: r.net.ip, ports: {}, ready: readyNow(r) }));
          e.ports[port.port] = t.port;
        }
      }
      return [{
        namespace: s.metadata.namespace,
        name: s.metadata.name,
        clusterIP,
        ports: s.spec.ports.map((p) => ({
          ...(p.name !== undefined ? { name: p.name } : {}),
          port: p.port,
          ...(p.appProtocol !== undefined ? { appProtocol: p.appProtocol } : {}),
          ...(portListHas(s.opaquePorts, p.port) ? { opaque: true } : {}),
        })),
        endpoints: [...eps.values()] as EndpointEntry[],
      }];
    });
    const pods: PodEntry[] = live.map((r) => ({
      namespace: r.plan.namespace,
      name: r.plan.name,
      ip: r.net.ip,
      ready: readyNow(r),
      meshed: r.plan.mesh.inject,
      serviceAccount: r.plan.spec.serviceAccountName,
      opaquePorts: r.plan.mesh.opaquePorts,
      labels: r.plan.labels,
      ports: r.plan.spec.containers.flatMap((c) => c.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), containerPort: p.containerPort }))),
      ...(r.plan.mesh.defaultInboundPolicy !== undefined ? { defaultInboundPolicy: r.plan.mesh.defaultInboundPolicy } : {}),
      ...(r.plan.owner !== undefined ? { workload: r.plan.owner.name } : {}),
    }));
    return { services, pods, routes: routeEntries(this.set), policy: policyEntries(this.set) };
  }

  /** Stops every pod (apps, then proxies, then anything left in their namespaces), the control plane,
   *  removes the network and the state files (logs stay). Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.phase !== 'Failed') this.phase = 'Stopping';
      this.say('stopping');
      if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
      if (this.tokenTimer !== undefined) clearInterval(this.tokenTimer);
      const errors: string[] = [];
      await Promise.allSettled([...this.settingUp]);
      const results = await Promise.allSettled([...this.running.values()].map((r) => r.pp.stop()));
      for (const r of results) if (r.status === 'rejected') errors.push((r.reason as Error).message);
      await this.closeControl?.().catch((err: unknown) => errors.push(`control plane: ${(err as Error).message}`));
      if (this.net !== undefined) {
        try {
          await this.net.teardown();
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      if (errors.length > 0) throw new Error(`stop: ${errors.join('; ')}`);
      // A failed mesh stays Failed (with its message) so that `up` can still tell why.
      if (this.phase !== 'Failed') this.phase = 'Stopped';
      await removeStateFiles(this.o.stateDir, { control: false });
    })();
    return this.stopping;
  }

  private queueSave(): void {
    if (this.saveQueued || this.stopping !== undefined) return;
    this.saveQueued = true;
    setTimeout(() => {
      this.saveQueued = false;
      if (this.stopping === undefined) void this.save().catch(() => undefined);
    }, 200).unref();
  }

  private async save(): Promise<void> {
    await writeJsonAtomic(this.paths.state, this.status());
    if (this.net === undefined || this.phase === 'Failed') return;
    const rec: ResumeRecord = {
      version: 1,
      ...(this.o.serviceCidr !== undefined ? { serviceCidr: this.o.serviceCidr } : this.resumedServiceCidr !== undefined ? { serviceCidr: this.resumedServiceCidr } : {}),
      sources: [...this.sources].map(([path, x]) => ({ path, file: x.file, text: x.text })),
      vips: Object.fromEntries(this.vips),
      pods: [...this.running.values()].map((r) => ({
        key: key(r.plan),
        uid: r.uid,
        fingerprint: r.fingerprint,
        netns: r.net.netns,
        ready: Object.fromEntries(r.pp.status().containers.map((c) => [c.name, c.ready])),
      })),
    };
    // A save follows every change of a pod's status (probes, restarts); the record changes less often.
    const text = JSON.stringify(rec);
    if (text === this.lastResume) return;
    await writeJsonAtomic(this.paths.resume, rec);
    this.lastResume = text;
  }

  status(): MeshStatus {
    const pods: PodView[] = [...this.running.values()].map((r) => ({
      ...r.pp.status(),
      labels: r.plan.labels,
      ...(r.plan.owner !== undefined ? { deployment: r.plan.owner.name } : {}),
      appContainers: r.plan.spec.containers.map((c) => c.name),
      ...(r.terminating ? { terminating: true } : {}),
    }));
    const snap = this.net !== undefined ? this.snapshot() : { services: [], pods: [] };
    const services: ServiceView[] = this.set.services.map((s) => {
      const entry = snap.services.find((e) => e.namespace === s.metadata.namespace && e.name === s.metadata.name);
      const endpoints: string[] = [];
      for (const p of s.spec.ports) {
        for (const e of entry?.endpoints ?? []) {
          const port = e.ports[p.port];
          if (e.ready && port !== undefined) endpoints.push(`${e.ip}:${port}`);
        }
      }
      return {
        namespace: s.metadata.namespace,
        name: s.metadata.name,
        clusterIP: this.vips.get(key(s.metadata)) ?? '',
        selector: s.spec.selector ?? {},
        ports: s.spec.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
        endpoints,
      };
    });
    const deployments: DeploymentView[] = this.set.deployments.map((d) => {
      const mine = pods.filter((p) => p.namespace === d.metadata.namespace && p.deployment === d.metadata.name);
      return { namespace: d.metadata.namespace, name: d.metadata.name, replicas: d.spec.replicas, ready: mine.filter((p) => p.ready && p.terminating !== true).length, pods: mine.map((p) => p.name) };
    });
    const routes: RouteView[] = routeEntries(this.set).map((r) => {
      const widest = r.rules.reduce<(typeof r.rules)[number] | undefined>((w, x) => (w === undefined || x.backends.length >= w.backends.length ? x : w), undefined);
      return {
        kind: r.kind,
        namespace: r.namespace,
        name: r.name,
        parents: r.parents.map((p) => p.name),
        backends: (widest?.backends ?? []).map((b) => ({ service: b.name, weight: b.weight })),
      };
    });
    return { phase: this.phase, ...(this.message !== undefined ? { message: this.message } : {}), progress: [...this.progress], pods, services, deployments, routes };
  }
}

function key(p: { readonly namespace: string; readonly name: string }): string {
  return `${p.namespace}/${p.name}`;
}

/** What must stay the same for a running pod to be kept as it is. */
function fingerprint(p: PodPlan): string {
  return JSON.stringify({ spec: p.spec, labels: p.labels, annotations: p.annotations, mesh: p.mesh });
}

/** Rejects, naming the first directory from `/` down to `dir` that other users cannot search (the
 *  proxies run as their own uid and must reach their token file). */
async function searchableByOthers(dir: string): Promise<void> {
  const parts = dir.split('/').filter((p) => p !== '');
  for (let i = 0; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join('/')}`;
    const mode = (await stat(d)).mode & 0o777;
    if ((mode & 0o001) === 0) {
      throw new Error(
        `the proxies (uid ${DEFAULT_PROXY_INIT.proxyUid}) cannot reach their token files: ${d} is mode ${mode.toString(8).padStart(4, '0')}; ` +
          `use a state directory whose parents others may search (chmod o+x ${d}), as the default /var/run/outrigger is`,
      );
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
