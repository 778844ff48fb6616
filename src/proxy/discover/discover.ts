// The proxy's view of the destination service: one watch (a server-streaming Get) per destination the
// proxy forwards to, each answer replacing the last, each destination with its balancer. Built for
// static stability: when the control plane is down, every destination keeps its last answer while its
// watch reconnects with jittered backoff, and catches up with the first answer after.
import { performance } from 'node:perf_hooks';
import { watchDestination, type Update } from '../../api/destination.js';
import type { ChannelTls } from '../../api/grpc/tls.js';
import { GrpcChannel, type Call, type Status } from '../../api/grpc/channel.js';
import { GrpcStatus, grpcStatusName } from '../../api/grpc/protocol.js';
import { formatAddr, parseAddr, type ServerAddr, type SocketAddr } from '../../core/addr.js';
import { JitteredBackoff, type JitteredBackoffOptions } from '../../core/backoff.js';
import type { Logger } from '../../core/log.js';
import type { Balancer, BalancerFactory, EndpointInfo, EndpointMeta, ProtocolHint } from '../balance/balancer.js';
import { PeakEwmaBalancer } from '../balance/peak-ewma.js';
import { Breakers, type BreakerOptions } from '../route/breaker.js';
import { InFlightLimit, type LimitOptions } from '../route/limit.js';
import { RetryBudget, type RetryBudgetOptions } from '../route/retry.js';
import type { BackendTarget, Router } from '../route/router.js';
import { compileRoutes, EMPTY_TABLE, type RouteTable } from '../route/table.js';

export interface DiscoveryOptions {
  /** The control plane's gRPC address. */
  readonly addr: SocketAddr;
  /** The connection to it, when shared with the proxy's other clients of the control plane (left open
   *  by close()); default: a channel of its own with `tls`, closed with it. */
  readonly channel?: GrpcChannel;
  readonly tls?: ChannelTls;
  readonly log: Logger;
  /** How long a first lookup waits for an answer before the destination is treated as passthrough
   *  (ms, default 1000). The answer still replaces it when it comes. */
  readonly initialTimeoutMs?: number;
  /** A destination nobody looked up (and with no work in flight) for this long is no longer watched
   *  (ms, default 5 min). */
  readonly idleMs?: number;
  /** Reconnection delays of a watch whose stream ended (defaults: 250 ms doubling to 2 s, each shortened by up to half). */
  readonly backoff?: JitteredBackoffOptions;
  /** The balancer each destination gets (default: peak-EWMA), and each backend of its routes. */
  readonly balancer?: BalancerFactory;
  /** Circuit breakers of each destination's own endpoints and of route backends (defaults:
   *  BREAKER_DEFAULTS). */
  readonly breakers?: BreakerOptions;
  /** Each destination's retry budget (defaults: RETRY_BUDGET_DEFAULTS). */
  readonly retryBudget?: RetryBudgetOptions;
  /** Each destination's bound on requests in flight and queued (defaults: LIMIT_DEFAULTS). */
  readonly limit?: LimitOptions;
}

/** Plain counters for the proxy's metrics. */
export interface DiscoveryStats {
  /** Answers received. */
  updates: number;
  /** Watches started again after their stream ended or failed. */
  reconnects: number;
  /** Destinations whose first answer did not come within initialTimeoutMs (passthrough meanwhile). */
  lookupTimeouts: number;
  /** Destinations the control plane refused as invalid (INVALID_ARGUMENT; passthrough, not retried). */
  refused: number;
  /** Watches closed because nothing used them for idleMs. */
  idleClosed: number;
  /** Watches open now. */
  watches: number;
  /** Route problems reported by compiling answers (a regex that does not compile, a missing backend). */
  routeProblems: number;
}

/** What the proxy knows about one destination; the same object for as long as it is watched, always
 *  reflecting the latest answer. Call `resolve` for each request or connection rather than keeping the
 *  object: a watch that nothing resolved for idleMs (and with no work in flight) is closed, and its
 *  object stops changing. */
export interface Destination extends Router {
  readonly dst: SocketAddr;
  /** False: the mesh does not know it (or no answer yet): forward to the original address. */
  readonly known: boolean;
  /** The Service's canonical authority (`name.ns.svc.cluster.local:port`); undefined for a pod. */
  readonly service: string | undefined;
  /** Over the ready endpoints of the latest answer. */
  readonly balancer: Balancer;
  /** Whether an answer has arrived (false while passthrough because none came in time). */
  readonly answered: boolean;
  /** True while the watch is disconnected: the answer is the last one received (static stability). */
  readonly stale: boolean;
}

const HINTS: ReadonlySet<string> = new Set<ProtocolHint>(['UNKNOWN', 'HTTP1', 'H2', 'OPAQUE']);

class Watch implements Destination {
  known = false;
  service: string | undefined = undefined;
  table: RouteTable = EMPTY_TABLE;
  readonly budget: RetryBudget;
  readonly limit: InFlightLimit;
  /** Route backends by service, kept across answers while the routes name them. */
  private readonly backends = new Map<string, BackendTarget>();
  answered = false;
  stale = false;
  /** The first lookup is over (answer, timeout or refusal): resolve() returns the object itself. */
  settled = false;
  closed = false;
  lastUsed = performance.now();
  readonly balancer: Balancer;
  /** `service` follows the latest answer (the address itself for a pod). */
  readonly own: { service: string; readonly balancer: Balancer; readonly breakers: Breakers };
  readonly ready: Promise<Destination>;
  private settle!: (d: Destination) => void;
  private call: Call | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private firstTimer: NodeJS.Timeout | undefined;
  private readonly backoff: JitteredBackoff;
  private readonly path: string;
  private badAddrLogged = false;

  constructor(
    readonly dst: SocketAddr,
    private readonly d: Discovery,
    private readonly o: Required<Pick<DiscoveryOptions, 'initialTimeoutMs' | 'balancer'>> & DiscoveryOptions,
  ) {
    this.path = formatAddr(dst);
    this.balancer = o.balancer();
    this.own = { service: this.path, balancer: this.balancer, breakers: new Breakers(o.breakers) };
    this.budget = new RetryBudget(o.retryBudget);
    this.limit = new InFlightLimit(o.limit);
    this.backoff = new JitteredBackoff(o.backoff);
    this.ready = new Promise((resolve) => (this.settle = resolve));
  }

  backend(service: string): BackendTarget | undefined {
    return this.backends.get(service);
  }

  start(): void {
    this.firstTimer = setTimeout(() => {
      this.firstTimer = undefined;
      if (this.settled) return;
      this.d.stats.lookupTimeouts++;
      this.d.lookupTimedOut(this.path);
      this.finishLookup();
    }, this.o.initialTimeoutMs);
    this.connect();
  }

  private finishLookup(): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(this);
  }

  /** Moves the watch to a new connection of the channel (a new client certificate): the answer in
   *  force stays until the new stream's first one, which is whole. */
  reconnect(): void {
    if (this.closed) return;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const old = this.call;
    this.call = undefined;
    old?.cancel();
    this.connect();
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.closed) return;
    const call: Call = watchDestination(this.d.channel, this.path, {
      message: (u) => {
        if (this.call === call) this.apply(u);
      },
      end: (s) => {
        if (this.call === call) this.ended(s);
      },
    });
    this.call = call;
  }

  private apply(u: Update): void {
    this.d.stats.updates++;
    this.backoff.reset();
    this.stale = false;
    const endpoints = this.endpointInfos(u.endpoints, u.service);
    this.known = u.known;
    this.service = u.known && u.service !== '' ? u.service : undefined;
    this.own.service = this.service ?? this.path;
    const own = u.known ? endpoints : [];
    this.balancer.update(own);
    this.own.breakers.sync(own.map((e) => e.key));
    this.applyRoutes(u.known ? u : undefined);
    this.answered = true;
    this.d.answered();
    this.finishLookup();
  }

  /** `service`: the canonical authority the endpoints belong to ("" for a pod IP). */
  private endpointInfos(list: Update['endpoints'], service: string): EndpointInfo[] {
    const endpoints: EndpointInfo[] = [];
    const svcName = service === '' ? '' : (service.split('.')[0] ?? '');
    for (const e of list) {
      const addr = parseAddr(e.addr);
      if (!addr) {
        if (!this.badAddrLogged)
          this.o.log.warn(
            { dst: this.path, addr: e.addr },
            'destination: ignoring an endpoint address that is not ip:port',
          );
        this.badAddrLogged = true;
        continue;
      }
      endpoints.push({
        addr: addr as ServerAddr,
        key: formatAddr(addr),
        weight: e.weight,
        identity: e.identity === '' ? undefined : e.identity,
        // A hint this proxy does not know (a newer control plane) means: detect.
        protocolHint: HINTS.has(e.protocol_hint) ? e.protocol_hint : 'UNKNOWN',
        meshed: e.meshed,
        pod: e.pod,
        meta: endpointMeta(e.pod, e.workload ?? '', svcName),
      });
    }
    return endpoints;
  }

  /** The routes of an answer (undefined: none): a new table, and the backends' balancers and breakers
   *  updated in place, so that endpoint stats and ejections survive an answer that changes weights. */
  private applyRoutes(u: Update | undefined): void {
    const routes = u?.routes ?? [];
    if (routes.length === 0) {
      this.table = EMPTY_TABLE;
      this.backends.clear();
      return;
    }
    const table = compileRoutes(routes, u?.backends ?? []);
    if (table.problems.length > 0) {
      this.d.stats.routeProblems += table.problems.length;
      this.o.log.warn(
        { dst: this.path, problems: table.problems },
        'destination: routes with problems (their matches never match or their backends answer 500)',
      );
    }
    const seen = new Set<string>();
    for (const b of u?.backends ?? []) {
      seen.add(b.service);
      let t = this.backends.get(b.service);
      if (t === undefined) {
        t = { service: b.service, balancer: this.o.balancer(), breakers: new Breakers(this.o.breakers) };
        this.backends.set(b.service, t);
      }
      const infos = b.exists ? this.endpointInfos(b.endpoints, b.service) : [];
      t.balancer.update(infos);
      t.breakers.sync(infos.map((e) => e.key));
    }
    for (const k of [...this.backends.keys()]) if (!seen.has(k)) this.backends.delete(k);
    this.table = table;
  }

  private ended(s: Status): void {
    this.call = undefined;
    if (this.closed) return;
    if (s.code === GrpcStatus.INVALID_ARGUMENT) {
      // Asking again would get the same refusal: serve it as passthrough until the watch goes idle.
      this.d.stats.refused++;
      this.o.log.warn(
        { dst: this.path, reason: s.details },
        'destination: the control plane refused the lookup; forwarding to the original address',
      );
      this.known = false;
      this.service = undefined;
      this.balancer.update([]);
      this.own.breakers.sync([]);
      this.applyRoutes(undefined);
      this.finishLookup();
      return;
    }
    this.stale = this.answered;
    this.d.streamFailed(s);
    this.d.stats.reconnects++;
    this.retryTimer = setTimeout(() => this.connect(), this.backoff.next());
    this.retryTimer.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.firstTimer) clearTimeout(this.firstTimer);
    this.call?.cancel();
    this.call = undefined;
    this.finishLookup();
  }

  busy(): boolean {
    if (this.limit.inFlight > 0 || this.limit.queued > 0) return true;
    for (const e of this.balancer.endpoints) if (e.pending > 0) return true;
    for (const b of this.backends.values()) for (const e of b.balancer.endpoints) if (e.pending > 0) return true;
    return false;
  }
}

export class Discovery {
  readonly stats: DiscoveryStats = {
    updates: 0,
    reconnects: 0,
    lookupTimeouts: 0,
    refused: 0,
    idleClosed: 0,
    watches: 0,
    routeProblems: 0,
  };
  /** @internal */
  readonly channel: GrpcChannel;
  private readonly ownChannel: boolean;
  private readonly o: Required<Pick<DiscoveryOptions, 'initialTimeoutMs' | 'balancer' | 'idleMs'>> & DiscoveryOptions;

  /** host → port → watch: no string is built per lookup. */
  private readonly watches = new Map<string, Map<number, Watch>>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  /** The control plane is unreachable (logged once until an answer comes again). */
  private outage = false;
  private timeoutLogged = false;
  private readonly stopCertificateWatch: () => void;

  constructor(opts: DiscoveryOptions) {
    this.o = {
      ...opts,
      initialTimeoutMs: opts.initialTimeoutMs ?? 1000,
      idleMs: opts.idleMs ?? 5 * 60_000,
      balancer: opts.balancer ?? ((env) => new PeakEwmaBalancer(env)),
    };
    this.ownChannel = opts.channel === undefined;
    this.channel = opts.channel ?? new GrpcChannel(formatAddr(opts.addr), { tls: opts.tls });
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(this.o.idleMs / 2, 30_000)));
    this.sweeper.unref();
    // Once the proxy holds a certificate (and after each renewal) the channel presents it on a new
    // connection: every watch moves there.
    this.stopCertificateWatch = this.channel.onClientCertificate(() => {
      for (const byPort of this.watches.values()) for (const w of byPort.values()) w.reconnect();
    });
  }

  /** The destination for `dst`: the object itself when it is already watched (or the lookup is
   *  settled), else a promise of it settling on the first answer or, after initialTimeoutMs, in the
   *  passthrough state. Never rejects. */
  resolve(dst: SocketAddr): Destination | Promise<Destination> {
    if (this.closed) return passthrough(dst);
    let byPort = this.watches.get(dst.host);
    if (byPort === undefined) {
      byPort = new Map();
      this.watches.set(dst.host, byPort);
    }
    let w = byPort.get(dst.port);
    if (w === undefined) {
      w = new Watch({ host: dst.host, port: dst.port }, this, this.o);
      byPort.set(dst.port, w);
      this.stats.watches++;
      w.start();
    }
    w.lastUsed = performance.now();
    return w.settled ? w : w.ready;
  }

  /** Stops every watch; pending lookups settle as passthrough. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopCertificateWatch();
    clearInterval(this.sweeper);
    for (const byPort of this.watches.values()) for (const w of byPort.values()) w.close();
    this.watches.clear();
    this.stats.watches = 0;
    if (this.ownChannel) this.channel.close();
  }

  private sweep(): void {
    const cutoff = performance.now() - this.o.idleMs;
    for (const [host, byPort] of this.watches) {
      for (const [port, w] of byPort) {
        if (w.lastUsed > cutoff) continue;
        if (w.busy()) {
          w.lastUsed = performance.now();
          continue;
        }
        w.close();
        byPort.delete(port);
        this.stats.watches--;
        this.stats.idleClosed++;
      }
      if (byPort.size === 0) this.watches.delete(host);
    }
  }

  /** @internal An answer arrived: the control plane is reachable. */
  answered(): void {
    if (this.outage) this.o.log.info({ addr: formatAddr(this.o.addr) }, 'destination service reachable again');
    this.outage = false;
    this.timeoutLogged = false;
  }

  /** @internal */
  streamFailed(s: Status): void {
    if (this.outage) return;
    this.outage = true;
    this.o.log.warn(
      { addr: formatAddr(this.o.addr), code: grpcStatusName(s.code), reason: s.details },
      'destination service unreachable; keeping the last answers and reconnecting',
    );
  }

  /** @internal */
  lookupTimedOut(path: string): void {
    if (this.timeoutLogged) return;
    this.timeoutLogged = true;
    this.o.log.warn(
      { dst: path, timeoutMs: this.o.initialTimeoutMs },
      'destination lookup timed out; forwarding to the original address until an answer comes (logged once until then)',
    );
  }
}

const passthroughBudget = new RetryBudget();
const emptyBalancer: Balancer = { update: () => {}, pick: () => undefined, endpoints: [] };
const passthroughOwn: BackendTarget = { service: '', balancer: emptyBalancer, breakers: new Breakers() };

/** What a closed Discovery answers: forward to the original address. */
/** Passthrough destinations share one unbounded limit: they are not balanced, and their requests are
 *  bounded by the connections that carry them. */
const passthroughLimit = new InFlightLimit({ maxInFlight: Number.MAX_SAFE_INTEGER, maxQueued: 0 });

function passthrough(dst: SocketAddr): Destination {
  return {
    dst,
    known: false,
    service: undefined,
    balancer: emptyBalancer,
    own: passthroughOwn,
    answered: false,
    stale: false,
    table: EMPTY_TABLE,
    budget: passthroughBudget,
    limit: passthroughLimit,
    backend: () => undefined,
  };
}

/** The metrics and tap view of an endpoint: `pod` is `namespace/name`. */
function endpointMeta(pod: string, workload: string, service: string): EndpointMeta {
  const slash = pod.indexOf('/');
  const namespace = slash === -1 ? '' : pod.slice(0, slash);
  const name = slash === -1 ? pod : pod.slice(slash + 1);
  return { key: `${namespace}\0${workload}\0${name}\0${service}`, namespace, workload, pod: name, service };
}
