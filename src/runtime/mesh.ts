// One local mesh, as the control process runs it: starts, resumes, applies and stops it, in that order
// of steps, and keeps what it publishes current. The parts it orchestrates live beside it: pods and
// the reconcile plan (mesh-pods.ts), Service addresses (mesh-addresses.ts), hosts files (mesh-hosts.ts),
// tokens (mesh-tokens.ts), the proxies' arguments (mesh-proxy.ts), the published snapshot and Service
// rules (mesh-snapshot.ts), the resume record (mesh-resume.ts) and the status (mesh-status.ts).
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { DefaultInboundPolicy, StoreSnapshot } from '../control/store/store.js';
import { manifestSet } from '../manifests/types.js';
import {
  formatPortList,
  parseManifests,
  planPods,
  type ManifestSet,
  type ManifestSource,
  type PodPlan,
} from './manifests/index.js';
import { DEFAULT_PROXY_INIT, PodNetwork, type NetRecord, type PodNet } from './net/index.js';
import {
  Cgroup,
  cgroupRoots,
  podCgroupRel,
  removePodCgroupDirs,
  killNetnsProcesses,
  PodProcesses,
  proxyFlags,
  resolveProxyCommand,
  type CgroupRoots,
  type ProxyCommand,
} from './supervisor/index.js';
import { removeStateFiles, statePaths, writeJsonAtomic, type StatePaths } from './state.js';
import { applyOver } from './manifests/takeover.js';
import { ServiceAddresses } from './mesh-addresses.js';
import { hostEntries, rewriteHosts } from './mesh-hosts.js';
import { fingerprint, planReconcile, podKey as key, type RunningPod } from './mesh-pods.js';
import { proxyArgs } from './mesh-proxy.js';
import { readResumeRecords, resumeRecordOf } from './mesh-resume.js';
import { meshSnapshot, serviceRules, type MeshSnapshot } from './mesh-snapshot.js';
import { meshStatus, type MeshPhase, type MeshStatus } from './mesh-status.js';
import { MeshTokens, type TokenSubject } from './mesh-tokens.js';
import { RuntimeCodes, RuntimeError } from './errors.js';
import { internalError } from '../core/errors.js';
import { NodeProxies, SIDECAR, type DataPlaneSettings, type NodeProxyStatus } from './dataplane/index.js';

export type { DeploymentView, MeshPhase, MeshStatus, PodView, ServiceView } from './mesh-status.js';
export type { RouteView } from '../manifests/types.js';
export type { TokenSubject } from './mesh-tokens.js';

/** Whether a pod with this name and uid runs now (a recreated pod has a new uid). */
export type PodExists = (namespace: string, pod: { readonly name: string; readonly uid: string }) => boolean;

/** The control plane the mesh hosts for its proxies, started once the bridge (and so its address)
 *  exists; the proxies reach it at `addr`. */
export interface ControlPlaneHost {
  start(gateway: string, podExists: PodExists): Promise<{ readonly addr: string; close(): Promise<void> }>;
  /** The port it listens on (on the gateway's address): a mesh that is resumed must know the address
   *  before the control plane serves, to publish what its pods are first (see Mesh.resume). */
  readonly port: number;
  /** What the proxies check the control plane with (it serves only TLS): the mesh's trust anchors (PEM)
   *  and the identity its certificate carries. */
  readonly trust: { readonly trustAnchorsPem: string; readonly identity: string };
  /** Called with every new snapshot of Services, endpoints and pods. */
  publish(snapshot: Omit<StoreSnapshot, 'version'>): void;
  /** With identity: the trust domain, and a signed ServiceAccount token bound to a pod, which the
   *  runtime hands to that pod's proxy (as the kubelet projects one into a pod). */
  readonly identity?: {
    readonly trustDomain: string;
    issueToken(subject: TokenSubject, audience?: string): Promise<string>;
  };
}

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
  /** Paths of the host no container sees, besides the state directory (which none ever does). */
  readonly hide?: readonly string[];
  /** Sidecars (default), or one node proxy per simulated node (src/runtime/dataplane). */
  readonly dataPlane?: DataPlaneSettings;
}

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

const EMPTY_SET: ManifestSet = manifestSet();

export class Mesh {
  private readonly paths: StatePaths;
  private readonly tokens: MeshTokens;
  private net: PodNetwork | undefined;
  private proxyCommand: ProxyCommand | undefined;
  private controlAddr: string | undefined;
  private closeControl: (() => Promise<void>) | undefined;
  /** Every file applied so far, by absolute path: the mesh is what they say together. */
  private sources = new Map<string, ManifestSource>();
  private set: ManifestSet = EMPTY_SET;
  private readonly running = new Map<string, RunningPod>();
  /** The Services' virtual IPs (once the network exists). */
  private addresses: ServiceAddresses | undefined;
  private phase: MeshPhase = 'Starting';
  private message: string | undefined;
  private readonly progress: string[] = [];
  private stopping: Promise<void> | undefined;
  private applyQueue: Promise<unknown> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | undefined;
  private lastRules = '';
  private saveQueued = false;
  /** The resume record last written (JSON), so an unchanged one is not written again. */
  private lastResume = '';
  /** The service CIDR a resumed mesh was started with (kept in its resume record). */
  private resumedServiceCidr: string | undefined;
  /** Pods being set up (network, rules, token) and not yet in `running`. */
  private readonly settingUp = new Set<Promise<void>>();
  /** The proxies' copy of the mesh's tap token (readable by the proxy uid only). */
  private tapTokenFile: string | undefined;
  /** Where the pods' cgroups go (found when the mesh starts). */
  private cgroups: CgroupRoots | undefined;
  /** The per-host data plane's node proxies (per-host meshes only). */
  private nodeProxies: NodeProxies | undefined;
  /** Node placements of pods not yet in `running` (between setUpPod and runningPod). */
  private readonly placements = new Map<string, string>();
  private trustAnchorsFile: string | undefined;

  constructor(private readonly o: MeshOptions) {
    this.paths = statePaths(o.stateDir);
    const identity = o.controlPlane?.identity;
    this.tokens = new MeshTokens(
      this.paths,
      identity !== undefined ? (s, audience) => identity.issueToken(s, audience) : undefined,
    );
  }

  private say(line: string): void {
    this.progress.push(line);
    this.o.onProgress?.(line);
  }

  private readonly addressOf = (service: string): string | undefined => this.addresses?.get(service);

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
      this.addresses = new ServiceAddresses(this.net.serviceCidr);
      this.tapTokenFile = await this.tokens.writeTapToken();
      await this.findCgroups();
      this.startDataPlane();
      const services = this.o.serviceCidr ?? '10.96.0.0/16';
      this.say(`network: bridge ${this.net.bridge}, gateway ${this.net.gateway}, services ${services}`);
      const cp = this.o.controlPlane;
      if (cp !== undefined) {
        this.trustAnchorsFile = await this.tokens.writeTrustAnchors(cp.trust.trustAnchorsPem);
        const started = await cp.start(this.net.gateway, this.podExists);
        this.controlAddr = started.addr;
        this.closeControl = () => started.close();
        const identity = cp.identity !== undefined ? `, identity for trust domain ${cp.identity.trustDomain}` : '';
        this.say(`control plane: ${started.addr}${identity}`);
        if (cp.identity !== undefined) this.refreshTokensPeriodically();
      }
      await this.applyNow(files);
    });
  }

  private get dataPlane(): DataPlaneSettings {
    return this.o.dataPlane ?? SIDECAR;
  }

  /** Per-host: the node proxies (each started with its first pod). */
  private startDataPlane(): void {
    const dp = this.dataPlane;
    if (dp.mode !== 'per-host') return;
    this.nodeProxies = new NodeProxies({
      nodes: dp.nodes,
      bridge: (this.net as PodNetwork).bridge,
      stateDir: this.o.stateDir,
      command: () => {
        if (this.proxyCommand === undefined) throw internalError('no proxy command');
        return this.proxyCommand;
      },
      cgroups: this.cgroups,
      say: (line) => this.say(line),
      readyTimeoutMs: Math.min(30_000, this.o.readyTimeoutMs ?? 60_000),
    });
    this.say(`data plane: per-host, ${dp.nodes} node${dp.nodes === 1 ? '' : 's'}, one node proxy each`);
  }

  /** The data plane's processes: each node proxy (per-host), with what `get dataplane` shows. */
  dataPlaneStatus(): { readonly mode: DataPlaneSettings['mode']; readonly nodes: readonly NodeProxyStatus[] } {
    return { mode: this.dataPlane.mode, nodes: this.nodeProxies?.status() ?? [] };
  }

  /** The pods' cgroups go below the control process's own; a machine without the controllers cannot
   *  run a mesh (`up` says so before it starts one). */
  private async findCgroups(): Promise<void> {
    const roots = await cgroupRoots();
    if ('problem' in roots) throw new RuntimeError(RuntimeCodes.CGROUP, roots.problem);
    this.cgroups = roots;
  }

  private readonly podExists = (ns: string, pod: { readonly name: string; readonly uid: string }): boolean =>
    this.running.get(`${ns}/${pod.name}`)?.uid === pod.uid;

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

  /** The pods whose tokens are due, taken lazily so that a refresh stops once the mesh stops. */
  private *tokenSubjects(): Generator<TokenSubject> {
    for (const r of this.running.values()) {
      if (this.stopping !== undefined) return;
      if (!r.plan.mesh.inject || r.terminating) continue;
      yield this.tokenSubject(r.plan, r.uid);
    }
  }

  /** The pods whose app containers get a ServiceAccount token (meshed or not), lazily as above. */
  private *appTokenSubjects(): Generator<{ subject: TokenSubject; podDir: string }> {
    for (const r of this.running.values()) {
      if (this.stopping !== undefined) return;
      if (r.terminating || r.plan.spec.automountServiceAccountToken === false) continue;
      yield { subject: this.tokenSubject(r.plan, r.uid), podDir: r.pp.podDir };
    }
  }

  private tokenSubject(plan: PodPlan, uid: string): TokenSubject {
    return { namespace: plan.namespace, serviceAccount: plan.spec.serviceAccountName, pod: { name: plan.name, uid } };
  }

  private readonly tokenFailed = (s: TokenSubject, err: Error): void =>
    this.say(`pod ${s.namespace}/${s.pod.name}: token: ${err.message}`);

  private refreshTokensPeriodically(): void {
    this.tokens.refreshPeriodically(
      () => this.tokenSubjects(),
      this.tokenFailed,
      () => this.appTokenSubjects(),
    );
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
      const { resume: rec, net: netRecord } = await readResumeRecords(this.paths);
      this.resumedServiceCidr = rec.serviceCidr;
      this.net = await PodNetwork.adopt(netRecord, {
        ...(rec.serviceCidr !== undefined ? { serviceCidr: rec.serviceCidr } : {}),
        onRecord: (r: NetRecord) => writeJsonAtomic(this.paths.net, r),
      });
      this.addresses = new ServiceAddresses(this.net.serviceCidr);
      this.addresses.restore(rec.vips);
      await this.findCgroups();
      // The tap token the running proxies hold (kept in the state directory).
      this.tapTokenFile = await this.tokens.writeTapToken();
      this.sources = new Map(rec.sources.map((x) => [x.path, { file: x.file, text: x.text }]));
      this.set = parseManifests([...this.sources.values()]);
      const plans = new Map(planPods(this.set).map((p) => [key(p), p]));
      const onRecord = `${rec.pods.length} pod${rec.pods.length === 1 ? '' : 's'} on record`;
      this.say(`resuming the mesh: network ${this.net.bridge}, ${onRecord}`);
      const cp = this.o.controlPlane;
      if (cp !== undefined) {
        this.controlAddr = `${this.net.gateway}:${cp.port}`;
        this.trustAnchorsFile = await this.tokens.writeTrustAnchors(cp.trust.trustAnchorsPem);
      }
      if ([...plans.values()].some((p) => p.mesh.inject)) await this.prepareProxyCommand(false);
      // Per-host: the node proxies the killed control process started serve on (they outlive it, as its
      // pods do). New ones take the pods over once the control plane serves again; then those go.
      this.startDataPlane();
      const leftBehind = (await this.nodeProxies?.leftBehind()) ?? [];
      for (const p of rec.pods) {
        if (this.nodeProxies === undefined || p.node === undefined) continue;
        this.nodeProxies.placeAt(p.node, p.key);
        this.placements.set(p.key, p.node);
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
          if (plan.mesh.inject) await this.applyProxyInit(podNet, plan);
          try {
            const { adopted, started } = await r.pp.adopt(p.ready);
            const again = started.length > 0 ? `; started again: ${started.join(', ')}` : '';
            this.say(`pod ${p.key}: adopted ${adopted.join(', ') || 'nothing'}${again}`);
          } catch (err) {
            this.say(`pod ${p.key}: ${(err as Error).message}`);
            this.running.delete(p.key);
            leftovers.push(p.netns);
          }
        }),
      );
      this.placements.clear(); // each adopted pod has its node in `running` now
      for (const p of rec.pods)
        if (p.node !== undefined && !this.running.has(p.key)) this.nodeProxies?.unplace(p.node, p.key);
      // Pods in the network record but not (or no longer) adoptable: their processes and network go.
      for (const p of this.net.pods()) {
        const adopted = [...this.running.values()].some((r) => r.net.netns === p.netns);
        if (!adopted && !leftovers.includes(p.netns)) leftovers.push(p.netns);
      }
      const net = this.net;
      const removeLeftover = async (netns: string) => {
        await killNetnsProcesses(netns).catch(() => undefined);
        await net.removePod(netns);
        const cg = this.cgroups;
        if (cg !== undefined) {
          const dirs = new Cgroup(cg, podCgroupRel(netns)).dirs();
          await removePodCgroupDirs(dirs).catch((e: unknown) => this.say(`pod ${netns}: ${(e as Error).message}`));
        }
      };
      for (const netns of leftovers) await removeLeftover(netns);
      this.sync(); // the adopted state, published before any proxy can ask
      await rewriteHosts(this.net, this.running.values(), this.set.services, this.addressOf);

      if (cp !== undefined) {
        const started = await cp.start(this.net.gateway, this.podExists);
        this.closeControl = () => started.close();
        this.say(`control plane: ${started.addr}`);
        if (cp.identity !== undefined) {
          await this.tokens.refresh(this.tokenSubjects(), this.tokenFailed, this.appTokenSubjects());
          this.refreshTokensPeriodically();
        }
      }
      if (this.nodeProxies !== undefined) {
        // Every adopted pod on a node proxy of this runtime (beside the old one: the listeners share
        // their ports), then the old ones drain and go: the pods' traffic never stops.
        // A pod that cannot join goes, as one that could not be adopted: the reconcile makes it anew.
        await Promise.all(
          [...this.running.entries()].map(async ([k, r]) => {
            try {
              await r.pp.attachAdopted();
            } catch (err) {
              this.say(`pod ${k}: ${(err as Error).message}; it is made anew`);
              this.running.delete(k);
              if (r.node !== undefined) this.nodeProxies?.unplace(r.node, k);
              await r.pp.stop().catch(() => undefined);
              await removeLeftover(r.net.netns);
            }
          }),
        );
        await this.nodeProxies.retire(leftBehind);
      }
      await this.reconcilePods([...plans.values()]);
      this.sync();
    });
  }

  /** Moves the running mesh to what the files say, together with every file applied before (an
   *  object that was in one of these files and is no longer is removed). Refused as a whole, changing
   *  nothing, if the manifests are invalid. One apply at a time. */
  apply(files: readonly ManifestFile[]): Promise<ApplyResult> {
    if (this.phase !== 'Ready') {
      const why = `the mesh is ${this.phase.toLowerCase()}, not ready: apply refused`;
      return Promise.reject(new RuntimeError(RuntimeCodes.NOT_READY, why));
    }
    const run = this.applyQueue.catch(() => undefined).then(() => this.applyNow(files));
    this.applyQueue = run;
    return run;
  }

  private async applyNow(files: readonly ManifestFile[]): Promise<ApplyResult> {
    const applied = new Map(files.map((f) => [f.path, { file: f.name, text: f.text }]));
    // Everything is checked before anything changes: manifests (the new files with every earlier one),
    // pod names, Service addresses.
    const { sources, moved, set } = applyOver(this.sources, applied);
    const plans = planPods(set);
    const addresses = this.addresses;
    if (addresses === undefined) throw internalError('no service address pool');
    const vips = addresses.plan(set.services);
    if (plans.some((p) => p.mesh.inject)) await this.prepareProxyCommand(true);

    this.sources = sources;
    this.set = set;
    for (const m of moved) this.say(`taken over: ${m}`);
    const servicesChanged = addresses.commit(this.set.services, vips, (line) => this.say(line));
    if (servicesChanged) {
      await rewriteHosts(this.net as PodNetwork, this.running.values(), this.set.services, this.addressOf);
    }
    const result = await this.reconcilePods(plans);
    this.sync();
    await this.save();
    return result;
  }

  /** Finds (or stages) the proxy's command once, for the proxy uid. */
  private async prepareProxyCommand(say: boolean): Promise<void> {
    if (this.proxyCommand !== undefined) return;
    const uid = DEFAULT_PROXY_INIT.proxyUid;
    if (say) this.say(`preparing the proxy command (uid ${uid})`);
    this.proxyCommand = await resolveProxyCommand({ user: { uid, gid: uid }, stateDir: this.o.stateDir });
  }

  private async applyProxyInit(podNet: PodNet, plan: PodPlan): Promise<void> {
    const { skipInboundPorts, skipOutboundPorts } = plan.mesh;
    const config = { ...DEFAULT_PROXY_INIT, skipInboundPorts, skipOutboundPorts };
    await (this.net as PodNetwork).applyProxyInit(podNet.netns, config);
  }

  /** Creates, replaces and removes pods until the running ones are the plans. A Deployment whose
   *  template changed is rolled one pod at a time: a new pod is started and ready before an old one is
   *  removed. Rejects (after finishing what it can) if a new pod does not become ready. */
  private async reconcilePods(plans: readonly PodPlan[]): Promise<ApplyResult> {
    const plan = planReconcile(this.running, plans, this.set.deployments);
    const { creates, replaces, deletes, rollouts, unchanged } = plan;
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
    await Promise.all(deletes.map((r) => attempt(this.removePod(r).then(() => void deleted.push(key(r.plan))))));
    await Promise.all([
      ...creates.map((p) => attempt(this.createPod(p, timeout).then(() => void created.push(key(p))))),
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
            const news = `${ro.news.length} new pod${ro.news.length === 1 ? '' : 's'}`;
            this.say(`deployment ${d}: rolling out ${news}, replacing ${ro.olds.length}, one at a time`);
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
    if (failures.length > 0) throw new RuntimeError(RuntimeCodes.POD_START, failures.join('; '));
    return { created, replaced, deleted, unchanged };
  }

  private async createPod(plan: PodPlan, timeoutMs: number): Promise<void> {
    if (this.stopping !== undefined) throw new RuntimeError(RuntimeCodes.STOPPED, 'stopped while starting');
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
    const { inject, skipOutboundPorts } = plan.mesh;
    const skip = inject && skipOutboundPorts.length > 0 ? ` (skip outbound ${formatPortList(skipOutboundPorts)})` : '';
    this.say(`pod ${k}: ${r.net.ip}${inject ? ', meshed' : ', not meshed'}${skip}`);
    await this.save();
    if (this.stopping !== undefined) throw new RuntimeError(RuntimeCodes.STOPPED, 'stopped while starting');
    // Per-host, the pod's proxy (its node's) asks for the pod's policy before any container of the pod
    // has started (whose changes publish the pod for a sidecar): the control plane must know it first.
    if (r.node !== undefined) this.sync();
    await pp.start();
    this.say(`pod ${k}: started`);
    await pp.whenReady(timeoutMs);
    this.say(`pod ${k}: ready`);
  }

  /** A pod's network, proxy-init rules and token, then its entry in `running` (not started yet). */
  private async setUpPod(plan: PodPlan): Promise<void> {
    const net = this.net as PodNetwork;
    const k = key(plan);
    const pod = { namespace: plan.namespace, name: plan.name, hostname: plan.hostname };
    const podNet = await net.addPod(pod, hostEntries(this.set.services, this.addressOf, plan.namespace));
    const placed =
      this.nodeProxies !== undefined
        ? this.nodeProxies.place({ namespace: plan.namespace, name: plan.name, nodeName: plan.spec.nodeName })
        : undefined;
    if (placed !== undefined) this.placements.set(k, placed);
    if (plan.mesh.inject) await this.applyProxyInit(podNet, plan);
    const uid = randomUUID();
    if (plan.mesh.inject && this.o.controlPlane?.identity !== undefined && this.controlAddr !== undefined) {
      await this.tokens.writeToken(this.tokenSubject(plan, uid));
    }
    const r = this.runningPod(plan, uid, podNet);
    if (this.o.controlPlane?.identity !== undefined && plan.spec.automountServiceAccountToken !== false) {
      await this.tokens.writeAppToken(this.tokenSubject(plan, uid), r.pp.podDir);
    }
    if (this.stopping !== undefined) {
      await net.removePod(podNet.netns).catch(() => undefined);
      throw new RuntimeError(RuntimeCodes.STOPPED, 'stopped while starting');
    }
    this.running.set(k, r);
    this.placements.delete(k);
  }

  /** The processes of a pod (not started) with its proxy's settings; the caller enters it in `running`. */
  private runningPod(plan: PodPlan, uid: string, podNet: PodNet): RunningPod {
    const identity = this.o.controlPlane?.identity;
    const extraArgs = proxyArgs(plan, {
      controlAddr: this.controlAddr,
      defaultInboundPolicy: this.o.defaultInboundPolicy,
      tapTokenFile: this.tapTokenFile,
      controlTls:
        this.o.controlPlane !== undefined && this.trustAnchorsFile !== undefined
          ? { trustAnchorsFile: this.trustAnchorsFile, identity: this.o.controlPlane.trust.identity }
          : undefined,
      traceCollector: this.o.traceCollector,
      identity:
        identity !== undefined
          ? { trustDomain: identity.trustDomain, tokenFile: this.tokens.tokenFile(plan.namespace, plan.name) }
          : undefined,
    });
    const placed = this.placements.get(key(plan));
    const nodes = this.nodeProxies;
    // Per-host: the node proxy serves the pod with its sidecar's flags, reaching the app from inside the
    // pod's namespace and accepting outbound connections from the pod's own address only.
    const dataPlane =
      plan.mesh.inject && placed !== undefined && nodes !== undefined
        ? nodes.forPod(placed, {
            key: key(plan),
            netns: podNet.netns,
            ip: podNet.ip,
            args: [
              ...proxyFlags(plan, { extraArgs }),
              '--inbound-netns',
              `/run/netns/${podNet.netns}`,
              '--outbound-sources',
              podNet.ip,
            ],
          })
        : undefined;
    const pp = new PodProcesses({
      pod: plan,
      net: { netns: podNet.netns, ip: podNet.ip, gateway: podNet.gateway },
      stateDir: this.o.stateDir,
      podUid: uid,
      ...(this.cgroups !== undefined ? { cgroups: this.cgroups } : {}),
      ...(this.o.hide !== undefined ? { hide: this.o.hide } : {}),
      ...(placed !== undefined ? { nodeName: placed } : {}),
      ...(dataPlane !== undefined
        ? { dataPlane }
        : plan.mesh.inject && this.proxyCommand !== undefined
          ? { proxy: { command: this.proxyCommand, extraArgs } }
          : {}),
    });
    const r: RunningPod = {
      plan,
      uid,
      fingerprint: fingerprint(plan),
      net: podNet,
      pp,
      terminating: false,
      ...(placed !== undefined ? { node: placed } : {}),
    };
    pp.on('change', () => {
      this.queueSync();
      this.queueSave();
    });
    return r;
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
    if (r.node !== undefined) this.nodeProxies?.unplace(r.node, k);
    await (this.net as PodNetwork).removePod(r.net.netns);
    await this.tokens.removePod(r.plan.namespace, r.plan.name);
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
    const rules = serviceRules(snap);
    const text = JSON.stringify(rules);
    if (text === this.lastRules) return;
    this.lastRules = text;
    this.net.setServices(rules).catch((err: unknown) => this.say(`service rules: ${(err as Error).message}`));
  }

  private snapshot(): MeshSnapshot {
    return meshSnapshot(this.running.values(), this.set, this.addressOf);
  }

  /** Stops every pod (apps, then proxies, then anything left in their namespaces), the control plane,
   *  removes the network and the state files (logs stay). Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.phase !== 'Failed') this.phase = 'Stopping';
      this.say('stopping');
      if (this.syncTimer !== undefined) clearTimeout(this.syncTimer);
      this.tokens.stop();
      const errors: string[] = [];
      await Promise.allSettled([...this.settingUp]);
      const results = await Promise.allSettled([...this.running.values()].map((r) => r.pp.stop()));
      for (const r of results) if (r.status === 'rejected') errors.push((r.reason as Error).message);
      // The node proxies once no pod needs them (each drained its pods as they were detached).
      await this.nodeProxies?.stop().catch((err: unknown) => errors.push(`data plane: ${(err as Error).message}`));
      await this.closeControl?.().catch((err: unknown) => errors.push(`control plane: ${(err as Error).message}`));
      // The pods' parent group, once empty (another mesh's pods may still be in it).
      if (this.cgroups !== undefined) await new Cgroup(this.cgroups, 'outrigger').remove().catch(() => undefined);
      if (this.net !== undefined) {
        try {
          await this.net.teardown();
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      if (errors.length > 0) throw new RuntimeError(RuntimeCodes.STOP, `stop: ${errors.join('; ')}`);
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
    const rec = resumeRecordOf({
      serviceCidr: this.o.serviceCidr ?? this.resumedServiceCidr,
      sources: this.sources,
      vips: this.addresses?.toRecord() ?? {},
      running: this.running.values(),
    });
    // A save follows every change of a pod's status (probes, restarts); the record changes less often.
    const text = JSON.stringify(rec);
    if (text === this.lastResume) return;
    await writeJsonAtomic(this.paths.resume, rec);
    this.lastResume = text;
  }

  /** Writes the trust bundle the proxies watch (a trust rotation's stages); new proxies start with it. */
  async publishTrust(text: string): Promise<void> {
    if (this.trustAnchorsFile !== undefined) this.trustAnchorsFile = await this.tokens.writeTrustAnchors(text);
  }

  status(): MeshStatus {
    return meshStatus({
      phase: this.phase,
      message: this.message,
      progress: this.progress,
      running: this.running.values(),
      set: this.set,
      snapshot: this.net !== undefined ? this.snapshot() : { services: [] },
      addressOf: this.addressOf,
      dataPlane: this.dataPlaneStatus(),
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
