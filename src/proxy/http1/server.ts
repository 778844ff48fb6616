// The HTTP/1.x side of a listener: one ClientConn per accepted connection. It parses only message heads
// and moves body bytes between the client and a pooled upstream connection without copying them, one
// exchange at a time (pipelined requests wait, so responses keep their order). Upgrades and CONNECT turn
// into byte tunnels. Every failure ends at one rescue point, `fail`, which answers with ../errors/respond.
import type { Socket } from 'node:net';
import type { Logger } from '../../core/log.js';
import { formatAddr, type SocketAddr } from '../../core/addr.js';
import type { ProxyConfig } from '../config.js';
import type { Direction, ProxyMetrics, RouteStats } from '../metrics.js';
import { Codes, ProxyError } from '../errors/errors.js';
import { errorResponse, http1ErrorResponse } from '../errors/respond.js';
import { connectUpstream, type Connecting } from '../transport/connect.js';
import { joinSockets } from '../transport/tcp.js';
import { ChunkedScanner, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from './parse.js';
import { UpstreamPool, type UpstreamConn, type UpstreamOwner } from './pool.js';
import type { Endpoint } from '../balance/balancer.js';
import { modifyHeaders, redirectLocation, rewriteRequest, shouldMirror } from '../route/filters.js';
import { decideRetry, isIdempotent, MAX_RETRY_BODY_BYTES, retryDelayMs, type FailureKind } from '../route/retry.js';
import { isEndpointFailure, pickAvailable } from '../route/breaker.js';
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
import { Slot } from '../route/limit.js';
import { splitTarget, type CompiledRule, type RouteCandidate, type RouteRequest } from '../route/table.js';
import { reasonPhrase } from '../errors/respond.js';
import { mirrorHttp1 } from './mirror.js';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from '../tls/alpn.js';
import type { MeshTls } from '../transport/mtls.js';
import { InboundGate, type InboundPolicyDeps } from '../inbound/admit.js';
import type { Observer } from '../observe/observer.js';
import { fieldValue, formatTraceparent, withTraceparent, type TraceContext, type Tracer } from '../observe/trace.js';

export interface Http1Context {
  readonly cfg: ProxyConfig;
  readonly metrics: ProxyMetrics;
  readonly pool: UpstreamPool;
  readonly direction: Direction;
  readonly log: Logger;
  readonly draining: () => boolean;
  /** Open client connections, so a shutdown can drain them and the listener close idle ones. */
  readonly conns: Set<ClientConn>;
  /** mTLS is on: outbound requests to meshed endpoints go over mesh TLS, inbound requests get the
   *  client identity header. Absent: plaintext everywhere, headers untouched. */
  readonly mtls?: MeshTls;
  /** Inbound with a policy service: every request is authorized and rate limited (../inbound). */
  readonly policy?: InboundPolicyDeps;
  /** Tap, tracing and the access log; absent or inactive: nothing is built per request. */
  readonly obs?: Observer;
}

/** The header that tells the app who the client is: set by the inbound proxy from the identity mesh TLS
 *  verified, and removed from every request that arrives otherwise: no client claims an identity by header. */
export const CLIENT_ID_HEADER = 'outrigger-client-id';

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** Largest response head accepted from an upstream (bytes). */
const MAX_RESPONSE_HEAD = 65536;

const enum Res {
  Idle,
  Head,
  Body,
  Done,
}

const malformedBody = (m: string) => new ProxyError(Codes.MALFORMED_REQUEST, `invalid request body: ${m}`);
const badUpstreamBody = (m: string) =>
  new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream sent an invalid response body: ${m}`);

export class ClientConn implements UpstreamOwner {
  /** The original destination, as the metrics label it. */
  private readonly targetKey: string;
  /** Where the exchange in progress goes: the original destination, or the endpoint the balancer
   *  picked for this request. */
  private upAddr: SocketAddr;
  private upKey: string;
  /** The pool's key for the exchange's upstream: TLS connections are kept apart from plaintext ones,
   *  and per expected identity. */
  private poolKey: string;
  /** The identity the exchange's endpoint must prove (mesh TLS), undefined for plaintext. */
  private serverId: SpiffeId | undefined = undefined;
  /** Inbound: remove the client identity header from requests (and set it from `clientId`). */
  private readonly identityHeader: boolean;
  /** Inbound with a policy: authorization and rate limits, decided per connection where they can be. */
  private readonly gate: InboundGate | null;
  /** The original destination's port (a redirect's default port). */
  private readonly targetPort: number;
  private ep: Endpoint | null = null;
  private epStart = 0;
  /** Client bytes not yet consumed: a partial head, or pipelined requests waiting their turn. */
  private buf: Buffer | null = null;
  private headTimer: NodeJS.Timeout | null = null;
  private resTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private clientEnded = false;
  private closeAfter = false;
  private waitUpstreamDrain = false;
  private waitClientDrain = false;

  // A request waiting for a slot of its destination's in-flight limit (route/limit.ts), with the bytes
  // that came after its head; and whether this connection holds a slot for its exchange.
  private waitingHead: RequestHead | null = null;
  private waitingRest: Buffer | null = null;
  private waitingSince = 0;
  private slot = false;

  // The exchange in progress (one at a time).
  private req: RequestHead | null = null;
  private reqHead = '';
  private reqDone = false;
  private reqRemaining = 0;
  private reqChunks: ChunkedScanner | null = null;
  private stats: RouteStats | null = null;
  private startedAt = 0;
  /** Tracing on: this side's span of the exchange. */
  private trace: TraceContext | undefined = undefined;
  private up: UpstreamConn | null = null;
  private connecting: Connecting | null = null;
  private upReusable = true;
  private retried = false;
  private res: ResponseHead | null = null;
  private resPhase = Res.Idle;
  private rbuf: Buffer | null = null;
  private resRemaining = 0;
  private resChunks: ChunkedScanner | null = null;
  private dechunk = false;

  // Routing (only when the destination has routes; null otherwise).
  private rule: CompiledRule | null = null;
  /** Whose breakers learn how the exchange went: the rule's backend, or the Service's own endpoints
   *  when it has no routes; null: the original destination (no breakers). */
  private backend: BackendTarget | null = null;
  /** Request body bytes kept for a retry (the rule has a retry policy); null: none, or too many. */
  private replay: Buffer[] | null = null;
  private replayBytes = 0;
  private retries = 0;
  /** performance.now() when the rule's request timeout expires; Infinity without one. */
  private deadline = Infinity;
  private routeTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** An interim response (100 Continue) went to the client: a retry would answer twice. */
  private interimSent = false;
  /** How the attempt in progress failed, set just before fail() by whoever saw it. */
  private failKind: FailureKind | null = null;

  private readonly onData = (chunk: Buffer) => this.clientData(chunk);
  private readonly onEnd = () => this.clientEnd();
  private readonly onDrain = () => {
    if (this.waitClientDrain) {
      this.waitClientDrain = false;
      this.up?.socket.resume();
    }
  };
  /** performance.now() when the connection last became idle (no request in flight), 0 while busy. */
  idleSince = performance.now();
  private readonly onHeadTimeout = () => {
    this.headTimer = null;
    this.fail(
      new ProxyError(Codes.HEADER_TIMEOUT, `request head not received within ${this.ctx.cfg.headerTimeoutMs}ms`),
    );
  };
  private readonly onResTimeout = () => {
    this.resTimer = null;
    this.failKind = 'timeout';
    this.fail(
      new ProxyError(Codes.RESPONSE_TIMEOUT, `upstream ${this.upKey}: no response within ${this.attemptTimeoutMs()}ms`),
    );
  };
  private readonly onRouteTimeout = () => {
    this.routeTimer = null;
    this.fail(
      new ProxyError(
        Codes.ROUTE_TIMEOUT,
        `${this.targetKey}: route ${this.rule?.route} timed out after ${this.rule?.requestTimeoutMs}ms (timeouts.request)`,
      ),
    );
  };
  private readonly onRetryTimer = () => {
    this.retryTimer = null;
    this.nextAttempt();
  };
  private readonly onDechunk = (b: Buffer, start: number, end: number) => {
    if (end > start && !this.sock.write(b.subarray(start, end))) this.pauseUpstream();
  };

  constructor(
    private readonly ctx: Http1Context,
    private readonly sock: Socket,
    target: SocketAddr,
    initial: Buffer,
    ended: boolean,
    /** A Service: its routes, or its balancer when it has none, decide where each request goes.
     *  Absent: to the original address. */
    private readonly router?: Router,
    /** Inbound over mesh TLS: the identity the client proved. */
    private readonly clientId?: SpiffeId,
    /** Inbound: the client's address (of the raw connection, under any TLS). */
    peerAddr?: string,
  ) {
    this.targetKey = formatAddr(target);
    this.targetPort = target.port;
    this.upAddr = target;
    this.upKey = this.targetKey;
    this.poolKey = this.targetKey;
    // Inbound, the identity header is stripped whether or not mTLS is on: nobody may claim an identity
    // with a header.
    this.identityHeader = ctx.direction === 'inbound';
    this.gate =
      ctx.direction === 'inbound' && ctx.policy !== undefined
        ? new InboundGate(ctx.policy, target.port, clientId, peerAddr ?? sock.remoteAddress)
        : null;
    sock.setNoDelay(true);
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
    sock.on('drain', this.onDrain);
    sock.on('error', () => {}); // 'close' follows; a client's reset is not the proxy's error
    sock.once('close', () => this.clientClosed());
    ctx.conns.add(this);
    if (initial.length) this.clientData(initial);
    if (ended) this.clientEnd();
    this.updateReading();
  }

  /**
   * Reads from the client unless a pipelined request is waiting its turn or the upstream cannot take
   * more body bytes. Reading while a response is in flight lets us see a client that goes away.
   */
  private updateReading(): void {
    if (this.closed) return;
    if ((this.buf !== null && this.req !== null) || this.waitUpstreamDrain || this.waitingHead !== null)
      this.sock.pause();
    else this.sock.resume();
  }

  /**
   * Closes the connection if it has been idle (no request in flight, nothing buffered) since before
   * `limit`. The listener sweeps its connections with this instead of a socket timeout, whose timer
   * would be refreshed on every read and write of the hot path.
   */
  closeIfIdleSince(limit: number): void {
    if (this.idleSince !== 0 && this.idleSince < limit && !this.req && !this.buf && this.waitingHead === null)
      this.sock.destroy();
  }

  /** Shutdown: finish the exchange in flight, then close; close now if idle. */
  drain(): void {
    this.closeAfter = true;
    if (!this.req && !this.buf && this.waitingHead === null) this.sock.end();
  }

  // ---- client side ----

  private clientData(chunk: Buffer): void {
    if (this.closed) return;
    if (this.waitingHead !== null) {
      // Read before the pause took hold: it goes with the waiting request.
      this.waitingRest = this.waitingRest ? Buffer.concat([this.waitingRest, chunk]) : chunk;
      return;
    }
    if (this.req && !this.reqDone) {
      this.feedRequestBody(chunk);
      return;
    }
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    if (this.req) {
      // A pipelined request: it waits until the response in flight is done.
      this.sock.pause();
      return;
    }
    this.nextRequest();
  }

  /** Parses the next request head from `buf`, if it is all there, and starts its exchange. */
  private nextRequest(): void {
    let buf = this.buf;
    if (!buf) return;
    // RFC 9112 section 2.2: ignore empty lines before a request line.
    let start = 0;
    while (start + 1 < buf.length && buf[start] === 0x0d && buf[start + 1] === 0x0a) start += 2;
    if (start > 0) {
      buf = start === buf.length ? null : buf.subarray(start);
      this.buf = buf;
      if (!buf) return;
    }
    const max = this.ctx.cfg.maxHeaderBytes;
    const end = buf.indexOf(CRLFCRLF);
    if (end === -1 || end + 4 > max) {
      if (buf.length > max || end !== -1) {
        this.fail(new ProxyError(Codes.HEADERS_TOO_LARGE, `request head larger than ${max} bytes`));
      } else if (!this.headTimer) {
        this.headTimer = setTimeout(this.onHeadTimeout, this.ctx.cfg.headerTimeoutMs);
      }
      return;
    }
    if (this.headTimer) {
      clearTimeout(this.headTimer);
      this.headTimer = null;
    }
    let head: RequestHead;
    try {
      head = parseRequestHead(buf.toString('latin1', 0, end));
    } catch (err) {
      this.fail(err);
      return;
    }
    this.buf = null;
    this.startExchange(head, end + 4 < buf.length ? buf.subarray(end + 4) : null);
  }

  private startExchange(head: RequestHead, rest: Buffer | null): void {
    const { metrics } = this.ctx;
    const router = this.router;
    if (router !== undefined && !this.slot) {
      const got = router.limit.acquire(this.onSlot);
      if (got === Slot.Queued) {
        metrics.requestQueueTotal.inc({ direction: this.ctx.direction, target_addr: this.targetKey, result: 'queued' });
        this.waitingHead = head;
        this.waitingRest = rest;
        this.waitingSince = performance.now();
        this.idleSince = 0;
        this.sock.pause();
        return;
      }
      this.slot = got === Slot.Now;
    }
    this.req = head;
    // A request that waited for its slot: its latency and deadline count from when it arrived.
    this.startedAt = this.waitingSince !== 0 ? this.waitingSince : performance.now();
    this.waitingSince = 0;
    this.idleSince = 0;
    if (!head.keepAlive || this.ctx.draining()) this.closeAfter = true;
    if (router !== undefined && !this.slot) {
      // No slot and no room in the queue.
      metrics.requestQueueTotal.inc({ direction: this.ctx.direction, target_addr: this.targetKey, result: 'full' });
      this.refuse(head, rest, queueFull(router.limit, this.targetKey), undefined);
      return;
    }
    if (this.gate !== null) {
      let req: RouteRequest | undefined;
      if (this.gate.routed()) {
        const { path, query } = splitTarget(head.target);
        req = { method: head.method, path, query, headers: head.fields };
      }
      const denied = this.gate.http(req);
      if (denied !== undefined) {
        this.refuse(head, rest, denied, undefined);
        return;
      }
    }
    if (router !== undefined && !router.table.empty) {
      this.startRouted(head, rest, router);
      return;
    }
    this.reqHead = this.headText(
      head,
      head.target,
      this.ctx.obs?.tracer !== undefined ? this.traced(head.fields) : head.fields,
    );
    this.resPhase = Res.Head;
    this.upReusable = true;
    this.retried = false;
    if (router !== undefined) {
      const own = router.own;
      const ep = pickAvailable(own.balancer, own.breakers);
      if (ep === undefined) {
        this.stats = metrics.route(this.ctx.direction, this.targetKey, head.authority);
        this.stats.requests.inc();
        // Nothing was sent: a request without a body is over, and the connection can go on.
        if (head.bodyKind === 'none') {
          this.reqDone = true;
          this.buf = rest;
        }
        this.fail(noEndpoint(own, `${this.targetKey}${head.authority !== '' ? ` (${head.authority})` : ''}`));
        return;
      }
      this.useEndpoint(own, ep);
    }
    this.stats = metrics.route(
      this.ctx.direction,
      this.targetKey,
      head.authority,
      this.clientId ?? this.serverId,
      undefined,
      this.ep?.meta,
    );
    this.stats.requests.inc();
    // The head and the body bytes that came with it leave in one write.
    const upSock = this.sendHead(true);
    this.requestBody(head, rest);
    upSock.uncork();
  }

  /** Tracing: this side's span, and the fields with the traceparent the next hop gets. */
  private traced(fields: readonly string[]): string[] {
    const t = (this.ctx.obs?.tracer as Tracer).child(fieldValue(fields, 'traceparent'));
    this.trace = t;
    return withTraceparent(fields, formatTraceparent(t));
  }

  /** Records the exchange's answer: metrics always, observers when someone observes. */
  private record(stats: RouteStats, status: number): void {
    const latency = performance.now() - this.startedAt;
    stats.response(status, latency);
    const obs = this.ctx.obs;
    if (obs !== undefined && obs.active) this.observe(obs, stats, status, latency);
  }

  private observe(obs: Observer, stats: RouteStats, status: number, latencyMs: number): void {
    const req = this.req;
    const inbound = this.ctx.direction === 'inbound';
    const own = this.ctx.mtls !== undefined ? (this.ctx.cfg.identity ?? '') : '';
    const peer = inbound ? this.clientId : this.serverId;
    obs.emit({
      startMs: Date.now() - latencyMs,
      direction: this.ctx.direction,
      src: `${this.sock.remoteAddress ?? ''}:${this.sock.remotePort ?? 0}`,
      dst: this.upKey,
      tls: peer !== undefined,
      clientId: inbound ? (this.clientId ?? '') : peer !== undefined ? own : '',
      serverId: inbound ? (peer !== undefined ? own : '') : (this.serverId ?? ''),
      method: req?.method ?? '',
      authority: req?.authority ?? '',
      path: req?.target ?? '',
      status,
      grpcStatus: undefined,
      failure: undefined,
      latencyMs,
      route: stats.route,
      dstMeta: stats.dst,
      fields: req?.fields ?? [],
      trace: this.trace,
    });
  }

  /** The head as it goes upstream: request line, fields (the client identity header handled inbound). */
  private headText(head: RequestHead, target: string, f: readonly string[]): string {
    let s = `${head.method} ${target} HTTP/1.1\r\n`;
    if (this.identityHeader) {
      for (let i = 0; i < f.length; i += 2) {
        const name = f[i] as string;
        if (name.length === CLIENT_ID_HEADER.length && name.toLowerCase() === CLIENT_ID_HEADER) continue;
        s += `${name}: ${f[i + 1]}\r\n`;
      }
      if (this.clientId !== undefined) s += `${CLIENT_ID_HEADER}: ${this.clientId}\r\n`;
    } else {
      for (let i = 0; i < f.length; i += 2) s += `${f[i]}: ${f[i + 1]}\r\n`;
    }
    if (head.upgrade !== undefined) s += `connection: upgrade\r\nupgrade: ${head.upgrade}\r\n`;
    // We speak HTTP/1.1 upstream, where Host is required: an HTTP/1.0 client may not have sent one.
    if (head.authority === '' && head.minor === 0) s += `host: ${this.targetKey}\r\n`;
    return s + '\r\n';
  }

  /**
   * A request to a destination with routes: the rule that matches (404 when none), its redirect
   * (answered here), header modifiers, rewrite and mirrors, its timeouts, then the first attempt.
   */
  private startRouted(head: RequestHead, rest: Buffer | null, router: Router): void {
    const { metrics, direction } = this.ctx;
    const { path, query } = splitTarget(head.target);
    let cand: RouteCandidate;
    try {
      cand = findRoute(router, { method: head.method, path, query, headers: head.fields }, this.targetKey);
    } catch (err) {
      this.refuse(head, rest, err, undefined);
      return;
    }
    const rule = cand.rule;
    const filters = rule.filters;
    if (filters.redirect !== undefined) {
      const r = redirectLocation(
        { scheme: 'http', authority: head.authority !== '' ? head.authority : this.targetKey, path, query },
        cand.prefix,
        filters.redirect,
        this.targetPort,
      );
      this.stats = metrics.route(direction, this.targetKey, head.authority, undefined, rule.route);
      this.stats.requests.inc();
      if (head.bodyKind === 'none') {
        this.reqDone = true;
        this.buf = rest;
      }
      this.respondLocal(r.status, `location: ${r.location}\r\n`);
      return;
    }
    this.rule = rule;
    router.budget.deposit();
    let fields = head.fields;
    let target = head.target;
    if (filters.request !== undefined || filters.rewrite !== undefined) {
      fields = fields.slice();
      if (filters.request !== undefined) modifyHeaders(fields, filters.request);
      if (filters.rewrite !== undefined) {
        const rw = rewriteRequest({ path, query, authority: head.authority }, cand.prefix, filters.rewrite);
        target = rw.target;
        if (rw.authority !== head.authority) setHost(fields, rw.authority);
      }
    }
    if (this.ctx.obs?.tracer !== undefined) fields = this.traced(fields);
    this.reqHead = this.headText(head, target, fields);
    if (filters.mirrors.length > 0) {
      // Body-less requests only: a body is streamed once, to the chosen backend.
      for (const m of filters.mirrors) {
        if (head.bodyKind !== 'none' || !shouldMirror(m, Math.random)) continue;
        const b = router.backend(m.backend.service);
        if (b !== undefined) mirrorHttp1(this.ctx, this.targetKey, b, head.method, target, fields);
        else metrics.mirrorTotal.inc({ direction, target_addr: this.targetKey, result: 'dropped' });
      }
    }
    if (rule.requestTimeoutMs > 0) {
      this.deadline = this.startedAt + rule.requestTimeoutMs;
      this.routeTimer = setTimeout(this.onRouteTimeout, rule.requestTimeoutMs);
    }
    this.resPhase = Res.Head;
    this.upReusable = true;
    this.retried = false;
    this.retries = 0;
    this.interimSent = false;
    if (rule.retry !== undefined && head.bodyKind !== 'none') {
      this.replay = [];
      this.replayBytes = 0;
    }
    if (!this.pickAttempt(router, rule, undefined)) {
      this.refuse(head, rest, this.pickError, rule.route);
      return;
    }
    this.stats = metrics.route(
      direction,
      this.targetKey,
      head.authority,
      this.clientId ?? this.serverId,
      rule.route,
      this.ep?.meta,
    );
    this.stats.requests.inc();
    const upSock = this.sendHead(true);
    this.requestBody(head, rest);
    upSock.uncork();
  }

  private pickError: unknown = undefined;

  /** Chooses the backend and endpoint of an attempt; false (the error in pickError) when there is none. */
  private pickAttempt(router: Router, rule: CompiledRule, avoid: string | undefined): boolean {
    let a;
    try {
      a = chooseAttempt(router, rule, this.targetKey, Math.random, avoid);
    } catch (err) {
      this.pickError = err;
      return false;
    }
    this.useEndpoint(a.backend, a.endpoint);
    return true;
  }

  /** Sends the exchange (or this attempt of it) to `ep`, whose breakers are `backend`'s. A meshed
   *  endpoint gets mesh TLS (to its app port, which its pod redirects to its proxy), pooled apart. */
  private useEndpoint(backend: BackendTarget, ep: Endpoint): void {
    this.backend = backend;
    this.ep = ep;
    this.epStart = ep.begin();
    this.upAddr = ep.addr;
    this.upKey = ep.key;
    if (ep.identity !== undefined && this.ctx.mtls !== undefined) {
      this.serverId = ep.identity as SpiffeId;
      this.poolKey = `tls\0${ep.key}\0${ep.identity}`;
    } else {
      this.serverId = undefined;
      this.poolKey = ep.key;
    }
  }

  /** Answers an error for a request nothing was sent for (no route, no backend, no endpoint). */
  private refuse(head: RequestHead, rest: Buffer | null, err: unknown, route: string | undefined): void {
    this.stats = this.ctx.metrics.route(
      this.ctx.direction,
      this.targetKey,
      head.authority,
      this.ctx.direction === 'inbound' ? this.clientId : undefined,
      route,
    );
    this.stats.requests.inc();
    // Nothing was sent: a request without a body is over, and the connection can go on.
    if (head.bodyKind === 'none') {
      this.reqDone = true;
      this.buf = rest;
    }
    this.fail(err);
  }

  /** Answers the exchange from the proxy itself (a redirect) with an empty body. */
  private respondLocal(status: number, extra: string): void {
    this.record(this.stats as RouteStats, status);
    const close = this.closeAfter || this.clientEnded || !this.reqDone;
    this.sock.write(
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\n${extra}content-length: 0\r\n${close ? 'connection: close\r\n' : ''}\r\n`,
      'latin1',
    );
    this.clearTimers();
    this.resetExchange();
    if (close) {
      this.buf = null;
      this.sock.end();
      this.sock.destroySoon();
      return;
    }
    if (this.buf) this.nextRequest();
    this.updateReading();
  }

  /** The timeout of one attempt until its response head: the proxy's, or the rule's backendRequest
   *  when it is shorter (ms; 0: none). */
  private attemptTimeoutMs(): number {
    const cfg = this.ctx.cfg.responseTimeoutMs;
    const rule = this.rule?.backendRequestTimeoutMs ?? 0;
    return rule > 0 && (cfg === 0 || rule < cfg) ? rule : cfg;
  }

  /** Feeds the breaker of the attempt's endpoint (none for the original destination). */
  private feed(failed: boolean): void {
    const b = this.backend;
    const ep = this.ep;
    if (b === null || ep === null) return;
    if (feedBreaker(b, ep.key, failed)) {
      this.ctx.metrics.endpointEjectionsTotal.inc({
        direction: this.ctx.direction,
        target_addr: this.targetKey,
        backend: b.service,
      });
    }
  }

  /** Whether the attempt that ended with `outcome` is retried (then it is under way); counts why not. */
  private maybeRetry(outcome: { status: number } | FailureKind): boolean {
    const rule = this.rule as CompiledRule;
    const req = this.req as RequestHead;
    const router = this.router as Router;
    const d = decideRetry(
      {
        policy: rule.retry,
        retries: this.retries,
        outcome,
        replayable: this.reqDone && !this.interimSent && (req.bodyKind === 'none' || this.replay !== null),
        idempotent: isIdempotent(req.method),
        clientGone: this.closed,
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
    // The failed attempt ends here: its connection is dropped (its response, if any, is not read).
    this.settleEndpoint(typeof outcome !== 'string');
    this.upReusable = false;
    this.releaseUpstream();
    if (this.resTimer) {
      clearTimeout(this.resTimer);
      this.resTimer = null;
    }
    this.rbuf = null;
    this.res = null;
    this.resPhase = Res.Head;
    this.retried = false;
    this.waitUpstreamDrain = false;
    this.waitClientDrain = false;
    this.retryTimer = setTimeout(this.onRetryTimer, retryDelayMs(this.retries, Math.random));
    return true;
  }

  /** Sends the request again (a retry): another endpoint when there is one, the head and any body. */
  private nextAttempt(): void {
    if (this.closed || this.req === null || this.rule === null) return;
    const avoid = this.upKey;
    if (!this.pickAttempt(this.router as Router, this.rule, avoid)) {
      this.fail(this.pickError);
      return;
    }
    const upSock = this.sendHead(true);
    if (this.replay !== null) for (const b of this.replay) upSock.write(b);
    upSock.uncork();
    const ms = this.attemptTimeoutMs();
    if (ms > 0) this.resTimer = setTimeout(this.onResTimeout, ms);
    this.updateReading();
  }

  private requestBody(head: RequestHead, rest: Buffer | null): void {
    const timeout = this.rule === null ? this.ctx.cfg.responseTimeoutMs : this.attemptTimeoutMs();
    if (timeout > 0) this.resTimer = setTimeout(this.onResTimeout, timeout);
    if (head.bodyKind === 'none') {
      this.reqDone = true;
      if (rest) {
        // Pipelined requests, or the first bytes of a tunnel: kept until the response is in.
        this.buf = rest;
        this.sock.pause();
      }
      return;
    }
    this.reqDone = false;
    if (head.bodyKind === 'chunked') this.reqChunks = new ChunkedScanner(malformedBody);
    else this.reqRemaining = head.contentLength;
    if (rest) this.feedRequestBody(rest);
  }

  /**
   * Writes the request head to a pooled upstream connection, or to a new one (`fresh`: never a pooled
   * one). With `cork`, the socket is left corked for the caller to uncork. Returns the socket.
   */
  private sendHead(cork: boolean, fresh = false): Socket {
    const { pool, cfg } = this.ctx;
    const pooled = fresh ? undefined : pool.acquire(this.poolKey);
    if (pooled) {
      this.up = pooled;
      pooled.owner = this;
      if (cork) pooled.socket.cork();
      pooled.socket.write(this.reqHead, 'latin1');
      return pooled.socket;
    }
    const connectStarted = performance.now();
    const c = connectUpstream(
      this.upAddr,
      this.upKey,
      cfg.connectTimeoutMs,
      () => {
        this.connecting = null;
        // The balancer learns the endpoint's answer time, not what setting up a connection (and its
        // mTLS handshake) cost once: one slow first sample would otherwise starve a new endpoint for
        // as long as the peak takes to decay (tens of seconds).
        if (this.ep !== null) this.epStart += performance.now() - connectStarted;
      },
      (err) => {
        this.connecting = null;
        const up = this.up;
        if (up && up.socket === c.socket) {
          up.owner = null;
          this.up = null;
        }
        this.failKind = 'connect-failure';
        this.fail(err);
      },
      this.serverId !== undefined && this.ctx.mtls !== undefined
        ? { tls: this.ctx.mtls, serverId: this.serverId, alpn: MESH_ALPN.http1 }
        : undefined,
      { cfg, direction: this.ctx.direction },
    );
    this.connecting = c;
    const up = pool.adopt(c.socket, this.poolKey);
    up.uses = 1;
    up.owner = this;
    this.up = up;
    if (cork) c.socket.cork();
    c.socket.write(this.reqHead, 'latin1');
    return c.socket;
  }

  private feedRequestBody(chunk: Buffer): void {
    let end: number;
    if (this.reqChunks) {
      try {
        end = this.reqChunks.scan(chunk);
      } catch (err) {
        this.upReusable = false;
        this.fail(err);
        return;
      }
    } else if (chunk.length < this.reqRemaining) {
      this.reqRemaining -= chunk.length;
      end = -1;
    } else {
      end = this.reqRemaining;
      this.reqRemaining = 0;
    }
    const part = end === -1 ? chunk : chunk.subarray(0, end);
    if (this.replay !== null && part.length) {
      // Kept (by reference) for a retry, up to MAX_RETRY_BODY_BYTES; a longer body is never replayed.
      if ((this.replayBytes += part.length) > MAX_RETRY_BODY_BYTES) this.replay = null;
      else this.replay.push(part);
    }
    const up = this.up;
    if (up && part.length && !up.socket.write(part)) {
      this.waitUpstreamDrain = true;
      this.sock.pause();
    }
    if (end === -1) return;
    this.reqDone = true;
    this.reqChunks = null;
    if (end < chunk.length) {
      this.buf = this.buf ? Buffer.concat([this.buf, chunk.subarray(end)]) : chunk.subarray(end);
      this.sock.pause();
    }
    if (this.resPhase === Res.Done) this.finishExchange();
  }

  private clientEnd(): void {
    this.clientEnded = true;
    if (this.closed) return;
    if (!this.req) {
      // Nothing in flight: a partial head is abandoned, an idle connection closes.
      this.sock.end();
      return;
    }
    if (!this.reqDone) {
      // The client stopped in the middle of its request body: the upstream connection is unusable.
      this.upReusable = false;
      this.fail(new ProxyError(Codes.MALFORMED_REQUEST, 'client closed the connection before its request body ended'));
      return;
    }
    this.closeAfter = true;
  }

  /** A slot of the destination's limit is ours (passed on by a finishing request): the waiting request
   *  starts, on a later tick, so that it never runs inside the code of the request that gave it up. */
  private readonly onSlot = (): void => {
    queueMicrotask(() => {
      const head = this.waitingHead;
      const rest = this.waitingRest;
      this.waitingHead = null;
      this.waitingRest = null;
      if (this.closed || head === null) {
        this.router?.limit.release();
        return;
      }
      this.slot = true;
      this.startExchange(head, rest);
      this.updateReading();
    });
  };

  /** Gives the exchange's slot back (to the next waiting request, if any). */
  private releaseSlot(): void {
    if (!this.slot) return;
    this.slot = false;
    this.router?.limit.release();
  }

  private clientClosed(): void {
    this.closed = true;
    this.ctx.conns.delete(this);
    this.clearTimers();
    if (this.waitingHead !== null) {
      this.router?.limit.cancel(this.onSlot);
      this.waitingHead = null;
      this.waitingRest = null;
    }
    this.releaseSlot();
    if (this.backend !== null && this.ep !== null && this.res === null) abandonBreaker(this.backend, this.ep.key);
    this.settleEndpoint(true); // the client left: no fault of the endpoint's
    const up = this.up;
    this.up = null;
    if (up) {
      up.owner = null;
      up.socket.destroy();
    }
  }

  // ---- upstream side ----

  onUpstreamDrain(): void {
    if (this.waitUpstreamDrain) {
      this.waitUpstreamDrain = false;
      this.updateReading();
    }
  }

  onUpstreamData(chunk: Buffer): void {
    if (this.resPhase === Res.Body) this.feedResponseBody(chunk);
    else if (this.resPhase === Res.Head) this.responseHead(chunk);
    else {
      // Bytes after the response ended (or before a request): the connection is out of step.
      this.upReusable = false;
      this.releaseUpstream();
    }
  }

  private responseHead(chunk: Buffer): void {
    let rbuf = this.rbuf ? Buffer.concat([this.rbuf, chunk]) : chunk;
    const req = this.req as RequestHead;
    for (;;) {
      const end = rbuf.indexOf(CRLFCRLF);
      if (end === -1) {
        if (rbuf.length > MAX_RESPONSE_HEAD) {
          this.upReusable = false;
          this.fail(
            new ProxyError(
              Codes.UPSTREAM_PROTOCOL,
              `upstream ${this.targetKey}: response head larger than ${MAX_RESPONSE_HEAD} bytes`,
            ),
          );
          return;
        }
        this.rbuf = rbuf;
        return;
      }
      let res: ResponseHead;
      try {
        res = parseResponseHead(rbuf.toString('latin1', 0, end), req.method);
      } catch (err) {
        this.upReusable = false;
        this.fail(err);
        return;
      }
      const rest = rbuf.subarray(end + 4);
      if (res.status < 200 && res.status !== 101) {
        // Interim response (100 Continue, 103 Early Hints): passed on to HTTP/1.1 clients only.
        if (req.minor === 1) {
          this.sock.write(this.responseHeadText(res, ''), 'latin1');
          this.interimSent = true;
        }
        if (rest.length === 0) {
          this.rbuf = null;
          return;
        }
        rbuf = rest;
        continue;
      }
      this.rbuf = null;
      if (this.backend !== null) {
        // The status line decides: the breaker learns from it, and (routes only) a retryable answer
        // is dropped before any byte of it reaches the client.
        this.feed(isEndpointFailure(res.status));
        if (this.rule !== null && this.rule.retry !== undefined && this.maybeRetry(res)) return;
      }
      if (this.resTimer) {
        clearTimeout(this.resTimer);
        this.resTimer = null;
      }
      this.res = res;
      this.record(this.stats as RouteStats, res.status);
      if ((res.status === 101 && req.upgrade !== undefined) || (req.method === 'CONNECT' && res.status < 300)) {
        const extra = res.status === 101 ? `connection: upgrade\r\nupgrade: ${res.upgrade ?? req.upgrade}\r\n` : '';
        this.sock.write(this.responseHeadText(res, extra), 'latin1');
        this.tunnel(rest);
        return;
      }
      if (!res.keepAlive || res.bodyKind === 'eof') this.upReusable = false;
      if (res.bodyKind === 'eof' || !this.reqDone) {
        // The client cannot tell where a close-delimited body ends unless we close; and a response that
        // came before the request body ended leaves that body unread.
        this.closeAfter = true;
        if (!this.reqDone) this.upReusable = false;
      }
      this.dechunk = req.minor === 0 && res.bodyKind === 'chunked';
      if (this.dechunk) this.closeAfter = true;
      const conn = this.closeAfter ? 'connection: close\r\n' : req.minor === 0 ? 'connection: keep-alive\r\n' : '';
      // Head and the body bytes that came with it leave in one write (one syscall, one packet).
      const sock = this.sock;
      sock.cork();
      sock.write(this.responseHeadText(res, conn), 'latin1');
      this.resPhase = Res.Body;
      if (res.bodyKind === 'none') {
        this.responseEnd(rest.length > 0);
      } else {
        if (res.bodyKind === 'chunked') this.resChunks = new ChunkedScanner(badUpstreamBody);
        else this.resRemaining = res.contentLength;
        if (rest.length) this.feedResponseBody(rest);
      }
      sock.uncork();
      return;
    }
  }

  private responseHeadText(res: ResponseHead, extra: string): string {
    let f = res.fields;
    const m = this.rule?.filters.response;
    if (m !== undefined) {
      f = f.slice();
      modifyHeaders(f, m);
    }
    let s = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
    for (let i = 0; i < f.length; i += 2) {
      if (this.dechunk && f[i] === 'transfer-encoding') continue;
      s += `${f[i]}: ${f[i + 1]}\r\n`;
    }
    return s + extra + '\r\n';
  }

  private feedResponseBody(chunk: Buffer): void {
    const res = this.res as ResponseHead;
    let end = -1;
    if (res.bodyKind === 'chunked') {
      try {
        end = (this.resChunks as ChunkedScanner).scan(chunk, this.dechunk ? this.onDechunk : undefined);
      } catch (err) {
        this.upReusable = false;
        this.fail(err);
        return;
      }
    } else if (res.bodyKind === 'length') {
      if (chunk.length < this.resRemaining) this.resRemaining -= chunk.length;
      else {
        end = this.resRemaining;
        this.resRemaining = 0;
      }
    }
    if (!this.dechunk) {
      const part = end === -1 ? chunk : chunk.subarray(0, end);
      if (part.length && !this.sock.write(part)) this.pauseUpstream();
    }
    if (end !== -1) this.responseEnd(end < chunk.length);
  }

  private pauseUpstream(): void {
    this.waitClientDrain = true;
    this.up?.socket.pause();
  }

  private responseEnd(extraBytes: boolean): void {
    this.resPhase = Res.Done;
    this.resChunks = null;
    if (extraBytes) this.upReusable = false;
    if (this.reqDone || this.closeAfter) this.finishExchange();
  }

  onUpstreamEnd(): void {
    if (this.resPhase === Res.Body && this.res?.bodyKind === 'eof') {
      this.upReusable = false;
      this.responseEnd(false);
      return;
    }
    this.upstreamGone(undefined);
  }

  onUpstreamClose(err: Error | undefined): void {
    this.upstreamGone(err);
  }

  /** The upstream closed before the response ended. */
  private upstreamGone(err: Error | undefined): void {
    const up = this.up;
    this.up = null;
    if (up) {
      up.owner = null;
      up.socket.destroy();
    }
    if (this.closed || !this.req || this.resPhase === Res.Done) return;
    if (
      this.resPhase === Res.Head &&
      !this.rbuf &&
      up &&
      up.uses > 1 &&
      !this.retried &&
      this.req.bodyKind === 'none'
    ) {
      // A pooled connection the server closed while it sat idle (a race no timeout can rule out): the
      // request had no body and got no byte of answer, so sending it again on a new connection is safe.
      this.retried = true;
      this.sendHead(false, true);
      return;
    }
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const why = this.resPhase === Res.Head ? 'before responding' : 'before the response ended';
    if (this.resPhase === Res.Head) this.failKind = 'reset';
    this.fail(
      new ProxyError(
        this.resPhase === Res.Head && !this.rbuf ? Codes.CONNECT_REFUSED : Codes.UPSTREAM_PROTOCOL,
        `upstream ${this.upKey}: connection ${code ? `failed (${code})` : 'closed'} ${why}`,
      ),
    );
  }

  // ---- end of an exchange ----

  private releaseUpstream(): void {
    const up = this.up;
    this.up = null;
    this.connecting?.cancel();
    this.connecting = null;
    if (!up) return;
    if (this.upReusable && this.reqDone && this.resPhase === Res.Done && !this.waitUpstreamDrain) {
      up.socket.resume();
      this.ctx.pool.release(up);
    } else {
      up.owner = null;
      up.socket.destroy();
    }
  }

  private clearTimers(): void {
    if (this.resTimer) {
      clearTimeout(this.resTimer);
      this.resTimer = null;
    }
    if (this.headTimer) {
      clearTimeout(this.headTimer);
      this.headTimer = null;
    }
    if (this.routeTimer) {
      clearTimeout(this.routeTimer);
      this.routeTimer = null;
    }
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
  }

  private resetExchange(): void {
    this.releaseSlot();
    this.idleSince = performance.now();
    this.req = null;
    this.res = null;
    this.reqChunks = null;
    this.resChunks = null;
    this.resPhase = Res.Idle;
    this.rbuf = null;
    this.reqDone = false;
    this.dechunk = false;
    this.waitUpstreamDrain = false;
    this.waitClientDrain = false;
    this.stats = null;
    this.trace = undefined;
    this.backend = null;
    if (this.rule !== null) {
      this.rule = null;
      this.replay = null;
      this.deadline = Infinity;
      this.failKind = null;
    }
  }

  /** Tells the balancer how the exchange with its endpoint went (once per pick). */
  private settleEndpoint(ok: boolean): void {
    const ep = this.ep;
    if (ep === null) return;
    this.ep = null;
    ep.end(this.epStart, ok);
  }

  private finishExchange(): void {
    this.settleEndpoint(true);
    this.releaseUpstream();
    this.clearTimers();
    this.resetExchange();
    if (this.closeAfter || this.clientEnded) {
      this.buf = null;
      this.sock.end();
      return;
    }
    if (this.buf) this.nextRequest();
    this.updateReading();
  }

  /**
   * The rescue point: every error of this connection ends here. Before a response head went out the
   * client gets the error's status (../errors/respond.ts); after, the connection is cut.
   */
  private fail(err: unknown): void {
    if (this.closed) return;
    const kind = this.failKind;
    this.failKind = null;
    if (kind !== null && this.backend !== null && this.res === null) {
      // The attempt failed before a response head: the endpoint's fault; retried if the rule says so.
      this.feed(true);
      if (this.rule !== null && this.rule.retry !== undefined && this.maybeRetry(kind)) return;
    }
    const responseStarted = this.res !== null;
    this.ctx.metrics.requestError(this.ctx.direction, this.targetKey, err);
    // Only the upstream's faults count against the endpoint (not a client's malformed bytes).
    const code = (err as ProxyError | undefined)?.code;
    this.settleEndpoint(
      !(
        code === Codes.CONNECT_REFUSED ||
        code === Codes.CONNECT_TIMEOUT ||
        code === Codes.RESPONSE_TIMEOUT ||
        code === Codes.UPSTREAM_PROTOCOL ||
        code === Codes.UPSTREAM_TLS ||
        code === Codes.UPSTREAM_IDENTITY
      ),
    );
    this.upReusable = false;
    this.releaseUpstream();
    this.clearTimers();
    if (responseStarted) {
      this.ctx.log.debug(
        { target: this.upKey, err: (err as Error).message },
        'http/1 exchange failed after the response began',
      );
      this.resetExchange();
      this.sock.destroy();
      return;
    }
    const r = errorResponse(err);
    let stats = this.stats;
    if (!stats) {
      stats = this.ctx.metrics.route(this.ctx.direction, this.targetKey, '', this.clientId);
      stats.requests.inc();
      this.startedAt = performance.now();
    }
    this.record(stats, r.status);
    // After a malformed request or an unread body there is no telling where the next request starts.
    const close = this.closeAfter || this.clientEnded || !this.req || !this.reqDone;
    this.ctx.log.debug({ target: this.upKey, status: r.status, err: r.message }, 'http/1 request failed');
    this.sock.write(http1ErrorResponse(r, close), 'latin1');
    this.resetExchange();
    if (close) {
      this.buf = null;
      this.sock.end();
      this.sock.destroySoon();
      return;
    }
    if (this.buf) this.nextRequest();
    this.updateReading();
  }

  /** 101 Switching Protocols or a CONNECT tunnel: from here on, bytes both ways. */
  private tunnel(fromUpstream: Buffer): void {
    const up = this.up as UpstreamConn;
    this.up = null;
    this.clearTimers();
    this.settleEndpoint(true);
    up.detach();
    const sock = this.sock;
    sock.off('data', this.onData);
    sock.off('end', this.onEnd);
    sock.off('drain', this.onDrain);
    this.ctx.conns.delete(this);
    if (fromUpstream.length) sock.write(fromUpstream);
    if (this.buf) up.socket.write(this.buf);
    this.buf = null;
    this.resetExchange();
    this.closed = true;
    joinSockets(sock, up.socket, { aEnded: this.clientEnded });
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
