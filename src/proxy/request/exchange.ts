// One request as the proxy handles it above the wire, whichever protocol carried it: the destination's
// in-flight slot, inbound policy, the route (match, redirect, header filters, rewrite, mirrors), the
// endpoint and its breakers, per-attempt and per-route timeouts, retries with their budget and the
// replay buffer, and what metrics and observers (tap, traces, access log) are told. The wire engines
// (../http1/server.ts, ../http2/own.ts) turn bytes into a request and an answer into bytes; they call
// this layer, and it calls them back through `RequestCodec`. Plain fields and module-level timer
// functions: an HTTP/1 connection keeps one Exchange for all its requests (reset between them), so the
// layer costs that path no allocation per request.
import type { SpiffeId } from '../../api/identity.js';
import type { SocketAddr } from '../../core/addr.js';
import type { Logger } from '../../core/log.js';
import type { Endpoint } from '../balance/balancer.js';
import type { ProxyConfig } from '../config.js';
import { Codes, ProxyError } from '../errors/errors.js';
import { errorResponse, type ErrorResponse } from '../errors/respond.js';
import type { InboundGate } from '../inbound/admit.js';
import { errorLabel, type Direction, type ProxyMetrics, type RouteStats } from '../metrics.js';
import type { Observer } from '../observe/observer.js';
import { fieldValue, formatTraceparent, withTraceparent, type TraceContext } from '../observe/trace.js';
import { isEndpointFailure, pickAvailable } from '../route/breaker.js';
import { modifyHeaders, redirectLocation, rewriteRequest, shouldMirror } from '../route/filters.js';
import { Slot } from '../route/limit.js';
import { decideRetry, isIdempotent, MAX_RETRY_BODY_BYTES, retryDelayMs, type FailureKind } from '../route/retry.js';
import {
  abandonBreaker,
  chooseAttempt,
  feedBreaker,
  findRoute,
  noEndpoint,
  queueFull,
  type BackendTarget,
  type Router,
} from '../route/router.js';
import { splitTarget, type CompiledRule, type RouteCandidate, type RouteRequest } from '../route/table.js';
import type { MeshTls } from '../transport/mtls.js';
import { takeMirror, type MirrorTicket } from './mirror.js';

/** The header that tells the app who the client is: set by the inbound proxy from the identity mesh TLS
 *  verified, and removed from every request that arrives otherwise: no client claims an identity by header. */
export const CLIENT_ID_HEADER = 'outrigger-client-id';

/** What every engine of a listener shares. */
export interface ExchangeContext {
  readonly cfg: ProxyConfig;
  readonly metrics: ProxyMetrics;
  readonly direction: Direction;
  readonly log: Logger;
  /** mTLS is on: meshed endpoints are reached over mesh TLS (their identity in `serverId`). */
  readonly mtls?: MeshTls;
  /** Tap, tracing and the access log; absent or inactive: nothing is built per request. */
  readonly obs?: Observer;
}

/** What the wire engine of one request does for the request layer. */
export interface RequestCodec {
  /** The client's address as observers report it, `ip:port`. */
  clientAddr(): string;
  /** The client's request (head, body, trailers) has been read in full. */
  requestEnded(): boolean;
  /** The client went away (or reset its stream): an answer would go nowhere. */
  clientGone(): boolean;
  /** Sends an attempt to `ex.upAddr` (over mesh TLS to `ex.serverId` when set): the head from `ex.method`,
   *  `ex.outTarget`, `ex.outAuthority` and `ex.outFields`, then the body. `retry` false: the first attempt
   *  streams the client's body; true: a retry, whose body is `ex.replay` (the request has ended). */
  sendAttempt(retry: boolean): void;
  /** Drops the attempt in progress (its upstream stream or connection), its answer unread. */
  dropAttempt(): void;
  /** Answers the client with the proxy's error; no byte of an upstream's answer went out. */
  answerError(r: ErrorResponse): void;
  /** Answers the client with a redirect (an empty body). */
  answerRedirect(status: number, location: string): void;
  /** Ends an answer that began on the proxy's terms (a route timeout, a failure mid-answer): gRPC gets
   *  trailers with `grpcStatus` where it can, anything else a cut. Returns the gRPC status the client
   *  ends with (undefined for plain HTTP). */
  cutAnswer(err: ProxyError, grpcStatus: number): number | undefined;
  /** Sends a copy of the request (it has no body) with `ticket`, its answer dropped. */
  mirror(ticket: MirrorTicket): void;
  /** Code run for this request from the exchange's timers threw: end this request, and only it. */
  crashed(err: unknown): void;
  /** The request waited for a slot of its destination's limit and has one now: call start(). */
  admitted(): void;
}

/** What admit() found. */
export const enum Admit {
  /** Go on: start(). */
  Now,
  /** Waits for a slot: the codec hears admitted() (on a later tick), then calls start(). */
  Queued,
  /** No slot and no room to wait: start() answers 503. */
  Full,
}

/** Errors that are the endpoint's fault (the balancer hears the attempt failed). */
function upstreamFault(code: string | undefined): boolean {
  return (
    code === Codes.CONNECT_REFUSED ||
    code === Codes.CONNECT_TIMEOUT ||
    code === Codes.RESPONSE_TIMEOUT ||
    code === Codes.UPSTREAM_PROTOCOL ||
    code === Codes.UPSTREAM_TLS ||
    code === Codes.UPSTREAM_IDENTITY
  );
}

const NO_FIELDS: readonly string[] = [];

// Timers call these with the exchange (setTimeout's extra argument): no closure per request.
function onAttemptTimeout(ex: Exchange): void {
  ex.attemptTimer = null;
  ex.guard(Timer.Attempt);
}
function onRouteTimeout(ex: Exchange): void {
  ex.routeTimer = null;
  ex.guard(Timer.Route);
}
function onRetryTimer(ex: Exchange): void {
  ex.retryTimer = null;
  ex.guard(Timer.Retry);
}

/** The exchange's timers (guard() runs what each owes). */
export const enum Timer {
  Attempt,
  Route,
  Retry,
}

export class Exchange {
  // ---- The connection's (set once) ----
  /** The original destination, as metrics label it. */
  readonly targetKey: string;
  private readonly targetPort: number;
  private readonly target: SocketAddr;

  // ---- The request (set by open()) ----
  method = '';
  /** The request target as received (path and query). */
  path = '';
  authority = '';
  /** The request's header fields, flat (name, value, ...), without pseudo-headers. */
  fields: readonly string[] = NO_FIELDS;
  grpc = false;
  /** The request has no body (its head ended it). */
  bodyless = true;
  /** performance.now() when the request arrived. */
  startedAt = 0;

  // ---- What goes upstream (set by start()) ----
  outTarget = '';
  outAuthority = '';
  outFields: readonly string[] = NO_FIELDS;
  /** Tracing on: this side's span (its traceparent is in outFields). */
  trace: TraceContext | undefined = undefined;

  // ---- The attempt in progress ----
  /** Where it goes: the original destination, or the endpoint picked for this attempt. */
  upAddr: SocketAddr;
  upKey: string;
  /** The identity the endpoint must prove (mesh TLS); undefined for plaintext. */
  serverId: SpiffeId | undefined = undefined;
  ep: Endpoint | null = null;
  /** What `ep.begin()` returned (an engine may move it past the time a new connection took). */
  epStart = 0;
  /** Whose breakers learn how the attempt went; null: the original destination (no breakers). */
  private backend: BackendTarget | null = null;
  /** The breaker heard about this attempt. */
  private fed = true;

  // ---- Routing (a destination with routes; null otherwise) ----
  rule: CompiledRule | null = null;
  /** Request body bytes kept for a retry (the rule has a retry policy); null: none, or too many. */
  replay: Buffer[] | null = null;
  private replayBytes = 0;
  private retries = 0;
  /** performance.now() when the rule's request timeout expires; Infinity without one. */
  private deadline = Infinity;
  /** Something of an answer (an interim response) went to the client: a retry would answer twice. */
  interimSent = false;

  // ---- The answer ----
  stats: RouteStats | null = null;
  /** The answer's :status (0: none), and for gRPC the status the client ends with. */
  status = 0;
  grpcStatus: number | undefined = undefined;
  /** An upstream's answer head was taken for the client: no retry, and failures cut the answer. */
  responded = false;
  /** The exchange is over for the proxy (answered, failed, or abandoned). */
  finished = false;
  private recorded = false;
  /** HTTP/1's latency ends at the answer's head (ms since the request came; -1: not yet): the answer is
   *  counted when it ends, whole or cut, with this latency. */
  private headLatency = -1;

  // ---- Admission ----
  private holdsSlot = false;
  private waiting = false;
  private full = false;

  attemptTimer: NodeJS.Timeout | null = null;
  routeTimer: NodeJS.Timeout | null = null;
  retryTimer: NodeJS.Timeout | null = null;

  /** Bound once: the destination's limit passes a slot on with it. */
  private readonly onSlot = (): void => {
    this.waiting = false;
    this.holdsSlot = true;
    // On a later tick: never inside the release of the request that passed the slot on.
    queueMicrotask(this.slotTask);
  };
  private readonly slotTask = (): void => {
    try {
      if (this.codec.clientGone()) this.releaseSlot();
      else this.codec.admitted();
    } catch (err) {
      this.codec.crashed(err);
    }
  };

  constructor(
    readonly ctx: ExchangeContext,
    readonly codec: RequestCodec,
    target: SocketAddr,
    targetKey: string,
    /** A Service: its routes, or its balancer when it has none, decide where each request goes.
     *  Absent: to the original address. */
    readonly router: Router | undefined,
    /** Inbound over mesh TLS: the identity the client proved. */
    readonly clientId: SpiffeId | undefined,
    /** Inbound with a policy: authorization and rate limits. */
    readonly gate: InboundGate | undefined,
  ) {
    this.target = target;
    this.targetKey = targetKey;
    this.targetPort = target.port;
    this.upAddr = target;
    this.upKey = targetKey;
  }

  // ---- The codec's calls, in the order a request takes ----

  /** A request arrived. */
  open(
    method: string,
    path: string,
    authority: string,
    fields: readonly string[],
    grpc: boolean,
    bodyless: boolean,
  ): void {
    this.method = method;
    this.path = path;
    this.authority = authority;
    this.fields = fields;
    this.grpc = grpc;
    this.bodyless = bodyless;
    this.startedAt = performance.now();
    this.headLatency = -1;
  }

  /** The destination's bound on requests in flight (a Service or pod the mesh knows). */
  admit(): Admit {
    const router = this.router;
    if (router === undefined || this.holdsSlot) return Admit.Now;
    const got = router.limit.acquire(this.onSlot);
    const { metrics, direction } = this.ctx;
    if (got === Slot.Now) {
      this.holdsSlot = true;
      return Admit.Now;
    }
    if (got === Slot.Queued) {
      metrics.requestQueueTotal.inc({ direction, target_addr: this.targetKey, result: 'queued' });
      this.waiting = true;
      return Admit.Queued;
    }
    metrics.requestQueueTotal.inc({ direction, target_addr: this.targetKey, result: 'full' });
    this.full = true;
    return Admit.Full;
  }

  /** Policy, the route, the endpoint, then the first attempt (codec.sendAttempt); or the proxy's own
   *  answer (codec.answerError or answerRedirect). */
  start(): void {
    const router = this.router;
    if (this.full) {
      this.full = false;
      return this.refuse(queueFull((router as Router).limit, this.targetKey), undefined);
    }
    const gate = this.gate;
    if (gate !== undefined) {
      let req: RouteRequest | undefined;
      if (gate.routed()) {
        const { path, query } = splitTarget(this.path);
        req = { method: this.method, path, query, headers: this.fields };
      }
      const denied = gate.http(req);
      if (denied !== undefined) return this.refuse(denied, undefined);
    }
    if (router !== undefined && !router.table.empty) return this.startRouted(router);
    this.outTarget = this.path;
    this.outAuthority = this.authority;
    this.outFields = this.ctx.obs?.tracer !== undefined ? this.traced(this.fields) : this.fields;
    if (router !== undefined) {
      const own = router.own;
      const ep = pickAvailable(own.balancer, own.breakers);
      if (ep === undefined)
        return this.refuse(
          noEndpoint(own, `${this.targetKey}${this.authority !== '' ? ` (${this.authority})` : ''}`),
          undefined,
        );
      this.useEndpoint(own, ep);
    }
    this.count(undefined);
    this.send(false);
  }

  /** A request body chunk on its way upstream: kept (by reference) for a retry while the body fits. */
  keep(chunk: Buffer): void {
    const r = this.replay;
    if (r === null) return;
    if ((this.replayBytes += chunk.length) > MAX_RETRY_BODY_BYTES) this.replay = null;
    else r.push(chunk);
  }

  /**
   * The attempt's answer head (a final status; `grpcStatus` when a gRPC answer ends with it): the breaker
   * learns from it, and (routes with retries) a retryable answer is dropped and retried before any byte
   * of it reaches the client. Returns false then (stop); true: pass the answer on.
   */
  answerHead(status: number, grpcStatus: number | undefined): boolean {
    this.clearAttemptTimer();
    // gRPC's status comes at the end; anything else is judged by its head at once.
    if (!this.grpc || status !== 200 || grpcStatus !== undefined) this.feed(isEndpointFailure(status, grpcStatus));
    const rule = this.rule;
    if (rule !== null && rule.retry !== undefined) {
      if (this.maybeRetry(grpcStatus !== undefined ? { status, grpcStatus } : { status })) return false;
    }
    this.status = status;
    this.responded = true;
    return true;
  }

  /** The attempt ended without an answer (`kind`): the breaker learns it; true when a retry is under way
   *  (the codec stops), false when the codec passes the failure on. */
  attemptFailed(kind: FailureKind): boolean {
    if (this.responded || this.finished) return false;
    this.feed(true);
    const rule = this.rule;
    return rule !== null && rule.retry !== undefined && this.maybeRetry(kind);
  }

  /**
   * The rescue point of a request: every failure the proxy answers ends here. `kind` says how an attempt
   * failed before its answer (it may be retried). Before an answer began the client gets the error's
   * status (../errors/respond.ts); after, the codec cuts the answer.
   */
  fail(err: unknown, kind: FailureKind | null): void {
    if (this.finished) return;
    if (kind !== null && this.attemptFailed(kind)) return;
    this.finished = true;
    const { metrics, direction } = this.ctx;
    metrics.requestError(direction, this.targetKey, err);
    this.clearTimers();
    // Only the upstream's faults count against the endpoint (not a client's malformed bytes).
    this.settle(!upstreamFault((err as ProxyError | undefined)?.code));
    this.codec.dropAttempt();
    if (this.responded) {
      const e = err instanceof ProxyError ? err : new ProxyError(Codes.UPSTREAM_PROTOCOL, String(err));
      this.grpcStatus = this.codec.cutAnswer(e, errorResponse(e).grpcStatus);
      this.record(errorLabel(e));
      this.releaseSlot();
      return;
    }
    const r = errorResponse(err);
    if (this.stats === null) {
      // Refused before it was a request (its head was malformed or never came).
      this.stats = metrics.route(direction, this.targetKey, '', this.clientId);
      this.stats.requests.inc();
      this.startedAt = performance.now();
    }
    this.status = this.grpc ? 200 : r.status;
    this.grpcStatus = this.grpc ? r.grpcStatus : undefined;
    this.record(undefined);
    this.releaseSlot();
    this.codec.answerError(r);
  }

  /**
   * The answer is over, whole or not (`failed`: reset, cut off, a gRPC answer without its status; then
   * `reason` says why, and `error` is the proxy's error it counts). `status` and `grpcStatus` hold what
   * the client got.
   */
  answered(failed: boolean, reason: string | undefined, error?: ProxyError): void {
    if (this.finished) return;
    this.finished = true;
    if (error !== undefined) this.ctx.metrics.requestError(this.ctx.direction, this.targetKey, error);
    this.feed(failed || isEndpointFailure(this.status, this.grpcStatus));
    this.clearTimers();
    this.settle(!failed);
    this.record(failed ? reason : undefined);
    this.releaseSlot();
  }

  /** The client left (or reset) before the answer was over; `record`: count it, as `cancelled`. */
  abandon(record: boolean): void {
    if (this.waiting) {
      this.waiting = false;
      this.router?.limit.cancel(this.onSlot);
    }
    if (!this.finished) {
      this.finished = true;
      this.clearTimers();
      this.settle(true); // the client left: no fault of the endpoint's
      if (record && this.stats !== null) {
        if (this.grpc) this.grpcStatus = 1; // CANCELLED
        this.record('cancelled');
      }
    }
    this.releaseSlot();
  }

  /** The answer head taken by answerHead never reached the client (a fault came between): a failure now
   *  answers with the proxy's error instead of cutting an answer the client never saw. */
  headNotSent(): void {
    this.responded = false;
  }

  /** Metrics (latency from the request's arrival) and the observers: once per request. */
  record(reason: string | undefined): void {
    if (this.recorded) return;
    const stats = this.stats;
    if (stats === null) return; // never counted: it waited for a slot until its client left
    this.recorded = true;
    const elapsed = performance.now() - this.startedAt;
    const latency = this.headLatency >= 0 ? this.headLatency : elapsed;
    const grpcStatus = this.grpc ? this.grpcStatus : undefined;
    stats.response(this.status, latency, grpcStatus, reason !== undefined);
    const obs = this.ctx.obs;
    if (obs !== undefined && obs.active) this.observe(obs, stats, grpcStatus, Date.now() - elapsed, latency, reason);
  }

  /** The answer's head went to the client (HTTP/1): its latency is taken now, and the answer is counted
   *  when it ends (a cut after the head is then a failure, as it is for HTTP/2). */
  headSent(): void {
    if (this.headLatency < 0) this.headLatency = performance.now() - this.startedAt;
  }

  /** Gets the exchange ready for the connection's next request (HTTP/1 keeps one per connection). */
  reset(): void {
    this.releaseSlot();
    this.clearTimers();
    this.stats = null;
    this.trace = undefined;
    this.backend = null;
    this.upAddr = this.target;
    this.upKey = this.targetKey;
    this.serverId = undefined;
    this.fed = true;
    this.ep = null;
    this.status = 0;
    this.grpcStatus = undefined;
    this.responded = false;
    this.finished = false;
    this.recorded = false;
    this.headLatency = -1;
    this.interimSent = false;
    this.full = false;
    if (this.rule !== null) {
      this.rule = null;
      this.replay = null;
      this.deadline = Infinity;
    }
  }

  /** How long an attempt may wait for its answer head: the proxy's setting, or the rule's
   *  backendRequest when it is shorter (ms; 0: none). */
  attemptTimeoutMs(): number {
    const cfg = this.ctx.cfg.responseTimeoutMs;
    const rule = this.rule?.backendRequestTimeoutMs ?? 0;
    return rule > 0 && (cfg === 0 || rule < cfg) ? rule : cfg;
  }

  /** The attempt's answer head came: its timeout no longer applies. */
  clearAttemptTimer(): void {
    if (this.attemptTimer !== null) {
      clearTimeout(this.attemptTimer);
      this.attemptTimer = null;
    }
  }

  /** Runs what a timer of this exchange owes; a fault in it ends this request only (codec.crashed). */
  guard(t: Timer): void {
    try {
      if (t === Timer.Attempt) this.attemptTimedOut();
      else if (t === Timer.Route) this.routeTimedOut();
      else this.nextAttempt();
    } catch (err) {
      this.codec.crashed(err);
    }
  }

  // ---- Inside ----

  /** The request is counted, under the route that took it and the endpoint's workload. */
  private count(route: string | undefined): void {
    const stats = this.ctx.metrics.route(
      this.ctx.direction,
      this.targetKey,
      this.authority,
      this.clientId ?? this.serverId,
      route,
      this.ep?.meta,
    );
    this.stats = stats;
    stats.requests.inc();
  }

  /** Answers an error for a request nothing was sent for (no slot, policy, no route, no endpoint). */
  private refuse(err: unknown, route: string | undefined): void {
    const stats = this.ctx.metrics.route(
      this.ctx.direction,
      this.targetKey,
      this.authority,
      this.ctx.direction === 'inbound' ? this.clientId : undefined,
      route,
    );
    this.stats = stats;
    stats.requests.inc();
    this.fail(err, null);
  }

  /** Tracing: this side's span, and the fields with the traceparent the next hop gets. */
  private traced(fields: readonly string[]): string[] {
    const tracer = this.ctx.obs?.tracer;
    if (tracer === undefined) return fields.slice();
    const t = tracer.child(fieldValue(fields, 'traceparent'));
    this.trace = t;
    return withTraceparent(fields, formatTraceparent(t));
  }

  /**
   * A request to a destination with routes: the rule that matches (404 when none), its redirect
   * (answered here), header modifiers, rewrite and mirrors, its timeouts, then the first attempt.
   */
  private startRouted(router: Router): void {
    const { path, query } = splitTarget(this.path);
    let cand: RouteCandidate;
    try {
      cand = findRoute(router, { method: this.method, path, query, headers: this.fields }, this.targetKey);
    } catch (err) {
      return this.refuse(err, undefined);
    }
    const rule = cand.rule;
    const filters = rule.filters;
    if (filters.redirect !== undefined) {
      const r = redirectLocation(
        { scheme: 'http', authority: this.authority !== '' ? this.authority : this.targetKey, path, query },
        cand.prefix,
        filters.redirect,
        this.targetPort,
      );
      const { metrics, direction } = this.ctx;
      this.stats = metrics.route(direction, this.targetKey, this.authority, undefined, rule.route);
      this.stats.requests.inc();
      this.status = r.status;
      this.finished = true;
      this.record(undefined);
      this.releaseSlot();
      this.codec.answerRedirect(r.status, r.location);
      return;
    }
    this.rule = rule;
    router.budget.deposit();
    let fields: readonly string[] = this.fields;
    let target = this.path;
    let authority = this.authority;
    if (filters.request !== undefined || filters.rewrite !== undefined) {
      const f = fields.slice();
      if (filters.request !== undefined) modifyHeaders(f, filters.request);
      if (filters.rewrite !== undefined) {
        const rw = rewriteRequest({ path, query, authority }, cand.prefix, filters.rewrite);
        target = rw.target;
        if (rw.authority !== authority) {
          authority = rw.authority;
          setHost(f, authority);
        }
      }
      fields = f;
    }
    if (this.ctx.obs?.tracer !== undefined) fields = this.traced(fields);
    this.outTarget = target;
    this.outAuthority = authority;
    this.outFields = fields;
    if (filters.mirrors.length > 0 && this.bodyless) {
      // Body-less requests only: a body is streamed once, to the chosen backend.
      for (const m of filters.mirrors) {
        if (!shouldMirror(m, Math.random)) continue;
        const ticket = takeMirror(this.ctx, this.targetKey, router.backend(m.backend.service));
        if (ticket !== undefined) this.codec.mirror(ticket);
      }
    }
    if (rule.requestTimeoutMs > 0) {
      this.deadline = this.startedAt + rule.requestTimeoutMs;
      this.routeTimer = setTimeout(onRouteTimeout, Math.max(1, this.deadline - performance.now()), this);
    }
    this.retries = 0;
    if (rule.retry !== undefined && !this.bodyless) {
      this.replay = [];
      this.replayBytes = 0;
    }
    let pickErr: unknown;
    if ((pickErr = this.pickAttempt(router, rule, undefined)) !== undefined) return this.refuse(pickErr, rule.route);
    this.count(rule.route);
    this.send(false);
  }

  /** Chooses the backend and endpoint of an attempt; returns the error when there is none. */
  private pickAttempt(router: Router, rule: CompiledRule, avoid: string | undefined): unknown {
    try {
      const a = chooseAttempt(router, rule, this.targetKey, Math.random, avoid);
      this.useEndpoint(a.backend, a.endpoint);
      return undefined;
    } catch (err) {
      return err;
    }
  }

  /** The attempt goes to `ep`, whose breakers are `backend`'s. A meshed endpoint gets mesh TLS. */
  private useEndpoint(backend: BackendTarget, ep: Endpoint): void {
    this.backend = backend;
    this.fed = false;
    this.ep = ep;
    this.epStart = ep.begin();
    this.upAddr = ep.addr;
    this.upKey = ep.key;
    this.serverId = ep.identity !== undefined && this.ctx.mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
  }

  /** Starts the attempt's timeout and hands the attempt to the codec (which may fail it at once: the
   *  timeout is cleared then). */
  private send(retry: boolean): void {
    const ms = this.attemptTimeoutMs();
    if (ms > 0) this.attemptTimer = setTimeout(onAttemptTimeout, ms, this);
    this.codec.sendAttempt(retry);
  }

  /** Feeds the breaker of the attempt's endpoint (none for the original destination), once. */
  private feed(failed: boolean): void {
    if (this.fed) return;
    this.fed = true;
    const b = this.backend as BackendTarget;
    if (feedBreaker(b, (this.ep as Endpoint).key, failed)) {
      this.ctx.metrics.endpointEjectionsTotal.inc({
        direction: this.ctx.direction,
        target_addr: this.targetKey,
        backend: b.service,
      });
    }
  }

  /** Tells the balancer how the attempt with its endpoint went (once per pick); an attempt its breaker
   *  never heard about is abandoned there (a probe must not stay in flight forever). */
  private settle(ok: boolean): void {
    const ep = this.ep;
    if (ep === null) return;
    this.ep = null;
    ep.end(this.epStart, ok);
    if (!this.fed) {
      this.fed = true;
      abandonBreaker(this.backend as BackendTarget, ep.key);
    }
  }

  /** Whether the attempt that ended with `outcome` is retried (then it is under way); counts why not. */
  private maybeRetry(outcome: { status: number; grpcStatus?: number } | FailureKind): boolean {
    const rule = this.rule as CompiledRule;
    const router = this.router as Router;
    const codec = this.codec;
    const d = decideRetry(
      {
        policy: rule.retry,
        retries: this.retries,
        outcome,
        replayable: codec.requestEnded() && !this.interimSent && (this.bodyless || this.replay !== null),
        // A GRPCRoute that lists a failure opts in: gRPC calls count as idempotent (./route/retry.ts).
        idempotent: this.grpc || isIdempotent(this.method),
        clientGone: codec.clientGone(),
        remainingMs: this.deadline - performance.now(),
      },
      router.budget,
    );
    const { metrics, direction } = this.ctx;
    if (d !== 'retry') {
      if (d !== 'no-policy' && d !== 'not-retryable')
        metrics.retrySkippedTotal.inc({ direction, target_addr: this.targetKey, route: rule.route, reason: d });
      return false;
    }
    metrics.retryTotal.inc({
      direction,
      target_addr: this.targetKey,
      route: rule.route,
      reason: typeof outcome === 'string' ? outcome : 'status',
    });
    this.retries++;
    // The failed attempt ends here: its stream or connection is dropped (its answer, if any, unread).
    this.settle(typeof outcome !== 'string');
    this.clearAttemptTimer();
    codec.dropAttempt();
    this.retryTimer = setTimeout(onRetryTimer, retryDelayMs(this.retries, Math.random), this);
    return true;
  }

  /** Sends the request again (a retry): another endpoint when there is one, the head and any body. */
  private nextAttempt(): void {
    const rule = this.rule;
    if (this.finished || rule === null) return;
    if (this.codec.clientGone()) return this.abandon(true);
    const err = this.pickAttempt(this.router as Router, rule, this.upKey);
    if (err !== undefined) return this.fail(err, null);
    this.send(true);
  }

  private attemptTimedOut(): void {
    if (this.finished || this.responded) return;
    this.fail(
      new ProxyError(Codes.RESPONSE_TIMEOUT, `upstream ${this.upKey}: no response within ${this.attemptTimeoutMs()}ms`),
      'timeout',
    );
  }

  private routeTimedOut(): void {
    if (this.finished) return;
    const rule = this.rule as CompiledRule;
    this.fail(
      new ProxyError(
        Codes.ROUTE_TIMEOUT,
        `${this.targetKey}: route ${rule.route} timed out after ${rule.requestTimeoutMs}ms (timeouts.request)`,
      ),
      null,
    );
  }

  private clearTimers(): void {
    if (this.attemptTimer !== null) {
      clearTimeout(this.attemptTimer);
      this.attemptTimer = null;
    }
    if (this.routeTimer !== null) {
      clearTimeout(this.routeTimer);
      this.routeTimer = null;
    }
    if (this.retryTimer !== null) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  /** Gives the request's slot back (to the next waiting request, if any). */
  private releaseSlot(): void {
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.router?.limit.release();
  }

  private observe(
    obs: Observer,
    stats: RouteStats,
    grpcStatus: number | undefined,
    startMs: number,
    latencyMs: number,
    failure: string | undefined,
  ): void {
    const direction = this.ctx.direction;
    const inbound = direction === 'inbound';
    const own = this.ctx.mtls !== undefined ? (this.ctx.cfg.identity ?? '') : '';
    const clientId = this.clientId;
    const serverId = this.serverId;
    const peer = inbound ? clientId : serverId;
    obs.emit({
      startMs,
      direction,
      src: this.codec.clientAddr(),
      dst: this.upKey,
      tls: peer !== undefined,
      clientId: inbound ? (clientId ?? '') : peer !== undefined ? own : '',
      serverId: inbound ? (peer !== undefined ? own : '') : (serverId ?? ''),
      method: this.method,
      authority: this.authority,
      path: this.path,
      status: this.status,
      grpcStatus,
      failure,
      latencyMs,
      route: stats.route,
      dstMeta: stats.dst,
      fields: this.fields,
      trace: this.trace,
    });
  }
}

/** Sets the Host field of a field list (a URLRewrite hostname). */
function setHost(fields: string[], authority: string): void {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      fields[i + 1] = authority;
      return;
    }
  }
  fields.push('host', authority);
}
