// The HTTP/2 side of a listener (prior-knowledge h2c for now): each client stream is forwarded as a
// stream on one multiplexed upstream session per destination, with flow control (streams are piped),
// trailers (so gRPC status and streaming work), and RST_STREAM and GOAWAY passed on.
import { dial } from '../transport/connect.js';
import http2, {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from '../../core/log.js';
import type { Endpoint } from '../balance/balancer.js';
import { isEndpointFailure, pickAvailable } from '../route/breaker.js';
import {
  modifyHeaders,
  redirectLocation,
  rewriteRequest,
  shouldMirror,
  type CompiledHeaderModifier,
} from '../route/filters.js';
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
import { Slot } from '../route/limit.js';
import { splitTarget, type RouteCandidate, type RouteRequest } from '../route/table.js';
import { formatAddr, type SocketAddr } from '../../core/addr.js';
import type { ProxyConfig } from '../config.js';
import type { Direction, ProxyMetrics } from '../metrics.js';
import { Codes, ProxyError } from '../errors/errors.js';
import { errorResponse, type ErrorResponse } from '../errors/respond.js';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from '../tls/alpn.js';
import type { MeshTls } from '../transport/mtls.js';
import { CLIENT_ID_HEADER } from '../http1/server.js';
import { InboundGate, type InboundPolicyDeps } from '../inbound/admit.js';
import type { Observer } from '../observe/observer.js';
import { h2Fields } from '../observe/event.js';
import { Answer, type AnswerEnd } from './answer.js';
import { grpcStatusOf, grpcStatusOfReset, isGrpc } from '../../api/grpc/protocol.js';
import { classify, errorAnswer, observeStream, takeClientSocket, type H2Engine } from './common.js';
import { forwardable, headerText } from './headers.js';
import { formatTraceparent, type TraceContext } from '../observe/trace.js';
import type { RouteStats } from '../metrics.js';

export interface H2Context {
  readonly cfg: ProxyConfig;
  readonly metrics: ProxyMetrics;
  readonly direction: Direction;
  readonly log: Logger;
  /** mTLS is on: streams to meshed endpoints go over a mesh TLS session, inbound streams get the
   *  client identity header. */
  readonly mtls?: MeshTls;
  /** Inbound with a policy service: every stream is authorized and rate limited (../inbound). */
  readonly policy?: InboundPolicyDeps;
  /** Tap, tracing and the access log; absent or inactive: nothing is built per stream. */
  readonly obs?: Observer;
}

/** What an observed stream's event needs besides its answer. */
interface NodeStreamFacts {
  readonly stream: ServerHttp2Stream;
  readonly headers: IncomingHttpHeaders;
  readonly dst: string;
  readonly clientId: string | undefined;
  readonly serverId: string | undefined;
  readonly trace: TraceContext | undefined;
}

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM } =
  http2.constants;

/** Answers a stream with the proxy's error (./common.ts says how). Returns what was sent. */
function respondWithError(
  stream: ServerHttp2Stream,
  r: ErrorResponse,
  grpc: boolean,
): { status: number; grpcStatus: number | undefined } {
  const a = errorAnswer(r, grpc);
  const head: http2.OutgoingHttpHeaders = { ':status': a.status };
  for (let i = 0; i + 1 < a.fields.length; i += 2) head[a.fields[i] as string] = a.fields[i + 1];
  if (a.body === undefined) stream.respond(head, { endStream: true });
  else {
    stream.respond(head);
    stream.end(a.body);
  }
  return { status: a.status, grpcStatus: a.grpcStatus };
}

export class H2Proxy implements H2Engine {
  private readonly upstreams = new Map<string, ClientHttp2Session>();
  private readonly downstreams = new Set<ServerHttp2Session>();
  private draining = false;

  constructor(private readonly ctx: H2Context) {}

  /** Serves an accepted connection whose first bytes (`initial`, not yet consumed) are the h2 preface.
   *  With a `router` (a Service), each stream goes where its routes say, or to the endpoint its
   *  balancer picks when it has none. */
  handle(
    socket: Socket,
    target: SocketAddr,
    initial: Buffer,
    router?: Router,
    clientId?: SpiffeId,
    peerAddr?: string,
  ): void {
    const { policy, direction } = this.ctx;
    const gate = takeClientSocket(socket, initial, direction, policy, target, clientId, peerAddr);
    const key = formatAddr(target);
    const session = http2.performServerHandshake(socket, { settings: { enablePush: false } });
    this.downstreams.add(session);
    session.on('error', (err) => this.ctx.log.debug({ target: key, err: err.message }, 'http/2 client session error'));
    session.on('close', () => this.downstreams.delete(session));
    session.on('stream', (stream, headers) => {
      // A stream without a request body is never read, and Node closes such a server stream with
      // RST_STREAM(NO_ERROR) as soon as our writes are handed over, dropping the DATA and END_STREAM that
      // flow control still holds back (a slow reader of a large answer lost its end). Flowing, it is not.
      if (stream.endAfterHeaders) stream.resume();
      if (router === undefined) {
        this.forward(stream, headers, target, key, router, clientId, gate);
        return;
      }
      // A stream to a destination the mesh knows holds one of its in-flight slots until it closes.
      const dispatch = () => {
        stream.once('close', () => router.limit.release());
        if (!router.table.empty) this.forwardRouted(stream, headers, target, key, router);
        else this.forward(stream, headers, target, key, router, clientId, gate);
      };
      // On a later tick: never inside the close of the stream that passed the slot on.
      const onSlot = () =>
        queueMicrotask(() => {
          stream.off('close', onGone);
          if (stream.closed || stream.destroyed) router.limit.release();
          else dispatch();
        });
      const onGone = () => router.limit.cancel(onSlot);
      const got = router.limit.acquire(onSlot);
      if (got === Slot.Now) return dispatch();
      const { metrics, direction } = this.ctx;
      if (got === Slot.Queued) {
        metrics.requestQueueTotal.inc({ direction, target_addr: key, result: 'queued' });
        stream.once('close', onGone);
        return;
      }
      metrics.requestQueueTotal.inc({ direction, target_addr: key, result: 'full' });
      const stats = metrics.route(direction, key, headers[':authority'] ?? '', clientId);
      stats.requests.inc();
      const full = queueFull(router.limit, key);
      metrics.requestError(direction, key, full);
      const r = errorResponse(full);
      const sent = respondWithError(stream, r, isGrpc(headers));
      stats.response(sent.status, 0, sent.grpcStatus);
    });
    // An idle client session is let go like an idle HTTP/1 connection; close() is graceful (GOAWAY), so
    // a long quiet gRPC stream still open on it is not cut.
    session.setTimeout(this.ctx.cfg.idleTimeoutMs, () => session.close());
    if (this.draining) session.close();
  }

  /** One multiplexed session per destination (per destination and expected identity with mesh TLS,
   *  kept apart from plaintext ones); a session that said GOAWAY or failed is replaced. */
  private upstream(target: SocketAddr, label: string, serverId: SpiffeId | undefined): ClientHttp2Session {
    const key = serverId === undefined ? label : `tls\0${label}\0${serverId}`;
    const existing = this.upstreams.get(key);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const { cfg, mtls } = this.ctx;
    const connect = () => dial(cfg, this.ctx.direction, target.host, target.port);
    const session = http2.connect(`http://${label}`, {
      // http2 waits for a TLS socket's 'secureConnect' before it sends its preface.
      createConnection:
        serverId === undefined || mtls === undefined
          ? connect
          : () => mtls.originate(connect(), label, serverId, MESH_ALPN.h2),
      settings: { enablePush: false },
      // Until the server's SETTINGS arrive (one round trip), nghttp2 assumes it allows 100 streams; a
      // server allowing fewer refuses the rest of a burst (REFUSED_STREAM) and the clients see resets.
      // Assuming 1 makes nghttp2 queue the burst until the real limit is known.
      peerMaxConcurrentStreams: 1,
    });
    this.upstreams.set(key, session);
    const forget = () => {
      if (this.upstreams.get(key) === session) this.upstreams.delete(key);
    };
    const timer = setTimeout(() => {
      forget();
      session.destroy(
        new ProxyError(Codes.CONNECT_TIMEOUT, `upstream ${label}: connect timed out after ${cfg.connectTimeoutMs}ms`),
      );
    }, cfg.connectTimeoutMs);
    session.once('connect', () => clearTimeout(timer));
    session.on('error', (err) => {
      forget();
      this.ctx.log.debug({ target: label, err: err.message }, 'http/2 upstream session error');
    });
    // The server is going away: new streams go to a new session; streams in flight finish on this one.
    session.on('goaway', forget);
    session.on('close', () => {
      clearTimeout(timer);
      forget();
    });
    session.setTimeout(cfg.idleTimeoutMs, () => session.close());
    return session;
  }

  private forward(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    target: SocketAddr,
    key: string,
    router: Router | undefined,
    clientId: SpiffeId | undefined,
    gate?: InboundGate,
  ): void {
    const { metrics, cfg, direction, mtls } = this.ctx;
    const startedAt = performance.now();
    // The Service's own endpoints (no routes): an endpoint its breakers let through; their breakers
    // learn from the answer (5xx, or a gRPC status that means the server is unwell) or the failure
    // before one, once.
    const own = router?.own;
    const ep = own !== undefined ? pickAvailable(own.balancer, own.breakers) : undefined;
    let fed = ep === undefined;
    const epStart = ep?.begin() ?? 0;
    let epOk = true;
    const upAddr = ep?.addr ?? target;
    const upKey = ep?.key ?? key;
    const authority = headers[':authority'] ?? headers.host ?? '';
    // A meshed endpoint gets mesh TLS (to its app port, which its pod redirects to its proxy).
    const serverId = ep?.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
    const stats = metrics.route(direction, key, authority, clientId ?? serverId, undefined, ep?.meta);
    stats.requests.inc();
    const grpc = isGrpc(headers);
    let status = 0;
    let latency = 0;
    let grpcStatus: number | undefined;
    let recorded = false;
    let responded = false;
    /** fail() has answered (or reset) the client: the upstream stream's own close must not touch it. */
    let failed = false;
    const trace = this.ctx.obs?.tracer?.child(headerText(headers.traceparent));
    const record = (reason?: string) => {
      if (recorded) return;
      recorded = true;
      stats.response(status, latency, grpc ? grpcStatus : undefined, reason !== undefined);
      const obs = this.ctx.obs;
      if (obs !== undefined && obs.active)
        this.observe(obs, stats, status, grpc ? grpcStatus : undefined, latency, reason, {
          stream,
          headers,
          dst: upKey,
          clientId,
          serverId,
          trace,
        });
    };
    stream.on('error', () => {}); // a client's reset is not the proxy's error; 'close' follows

    const feed = (failure: boolean) => {
      if (fed) return;
      fed = true;
      if (feedBreaker(own as BackendTarget, (ep as Endpoint).key, failure)) {
        metrics.endpointEjectionsTotal.inc({ direction, target_addr: key, backend: (own as BackendTarget).service });
      }
    };
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      metrics.requestError(direction, key, classify(err, upKey));
      epOk = false;
      if (!responded) feed(true);
      if (up && !up.closed) up.close(NGHTTP2_CANCEL);
      if (stream.closed || stream.destroyed) return;
      if (stream.headersSent) {
        stream.close(NGHTTP2_INTERNAL_ERROR);
        return;
      }
      latency = performance.now() - startedAt;
      responded = true;
      ({ status, grpcStatus } = respondWithError(stream, errorResponse(classify(err, upKey)), grpc));
      record();
    };

    let up: ClientHttp2Stream | undefined;
    let session: ClientHttp2Session;
    if (this.draining) stream.session?.close();
    if (gate !== undefined) {
      let req: RouteRequest | undefined;
      if (gate.routed()) {
        const { path, query } = splitTarget(String(headers[':path'] ?? '/'));
        req = { method: String(headers[':method'] ?? 'GET'), path, query, headers: h2Fields(headers) };
      }
      const denied = gate.http(req);
      if (denied !== undefined) {
        fail(denied);
        return;
      }
    }
    if (own !== undefined && ep === undefined) {
      fail(noEndpoint(own, `${key}${authority !== '' ? ` (${authority})` : ''}`));
      return;
    }
    if (ep !== undefined) {
      stream.once('close', () => {
        ep.end(epStart, epOk);
        if (!fed) abandonBreaker(own as BackendTarget, ep.key);
      });
    }
    try {
      session = this.upstream(upAddr, upKey, serverId);
      const out = forwardable(headers);
      if (direction === 'inbound') {
        // The identity header comes from the proxy only: a client's own could claim any identity.
        delete out[CLIENT_ID_HEADER];
        if (clientId !== undefined) out[CLIENT_ID_HEADER] = clientId;
      }
      if (trace !== undefined) out.traceparent = formatTraceparent(trace);
      up = session.request(out, stream.endAfterHeaders ? { endStream: true } : { waitForTrailers: true });
    } catch (err) {
      fail(err);
      return;
    }
    const upStream = up;
    let resTimer: NodeJS.Timeout | undefined;
    if (cfg.responseTimeoutMs > 0) {
      resTimer = setTimeout(
        () =>
          fail(
            new ProxyError(Codes.RESPONSE_TIMEOUT, `upstream ${upKey}: no response within ${cfg.responseTimeoutMs}ms`),
          ),
        cfg.responseTimeoutMs,
      );
    }

    // Request: body and trailers to the upstream.
    let clientTrailers: IncomingHttpHeaders | undefined;
    stream.on('trailers', (t: IncomingHttpHeaders) => {
      clientTrailers = t;
    });
    upStream.on('wantTrailers', () => upStream.sendTrailers(clientTrailers ? forwardable(clientTrailers) : {}));
    if (!stream.endAfterHeaders) stream.pipe(upStream);

    // Response: head, body and trailers back to the client (./answer.ts); the breaker learns from it.
    let answer: Answer | undefined;
    const answered = (end: AnswerEnd) => {
      status = end.status;
      grpcStatus = end.grpcStatus;
      if (end.error !== undefined) metrics.requestError(direction, key, end.error);
      if (end.failed) epOk = false;
      feed(end.failed || isEndpointFailure(status, grpcStatus));
      record(end.failed ? end.reason : undefined);
    };
    upStream.on('response', (h: IncomingHttpHeaders, flags: number) => {
      clearTimeout(resTimer);
      if (stream.closed || stream.destroyed) return;
      responded = true;
      latency = performance.now() - startedAt;
      // gRPC's status comes at the end; anything else is judged by its head at once.
      const st = Number(h[':status']) || 0;
      if (!grpc || st !== 200) feed(isEndpointFailure(st));
      answer = new Answer(stream, upStream, h, flags, { grpc, label: upKey, done: answered });
    });
    upStream.on('error', (err: NodeJS.ErrnoException) => {
      // The upstream sent RST_STREAM: that is an answer, passed on as the same reset by 'close' below,
      // not a failure to answer with a 502. Once answering, the Answer deals with how it ends.
      if (responded || (err.code === 'ERR_HTTP2_STREAM_ERROR' && upStream.rstCode)) return;
      fail(err);
    });
    upStream.on('close', () => {
      clearTimeout(resTimer);
      if (failed || responded) return;
      const code = upStream.rstCode;
      // Closed cleanly without ever answering (the session went away under it): still an answer is owed.
      if (code === undefined || code === NGHTTP2_NO_ERROR) {
        fail(new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${upKey}: stream closed without a response`));
        return;
      }
      if (!stream.closed && !stream.destroyed) {
        // The upstream reset the stream before answering: reset ours the same way (REFUSED_STREAM tells
        // the client that nothing was processed, so it may retry).
        latency = performance.now() - startedAt;
        feed(true);
        epOk = false;
        if (grpc) grpcStatus = grpcStatusOfReset(code);
        record('reset');
        stream.close(code);
      }
    });
    stream.on('close', () => {
      clearTimeout(resTimer);
      const code = stream.rstCode ?? NGHTTP2_NO_ERROR;
      // A client reset goes upstream with its code. A client stream that closed "cleanly" before the
      // whole response went out did not finish either: its session went away (socket closed, rstCode 0),
      // and the upstream stream would otherwise stay open on the shared session forever.
      if (!upStream.closed && (code !== NGHTTP2_NO_ERROR || answer === undefined || !answer.sent)) {
        upStream.close(code === NGHTTP2_NO_ERROR || code === NGHTTP2_REFUSED_STREAM ? NGHTTP2_CANCEL : code);
      }
    });
  }

  /**
   * A stream to a destination with routes (outbound): the rule that matches (:method, :path, query,
   * headers; gRPC service and method from :path), its redirect (answered here), header modifiers,
   * rewrite, mirror (streams without a body), timeouts, the weighted backend and an endpoint its
   * breakers let through, and retries: decided on the response head (or a trailers-only gRPC status)
   * before anything goes to the client; a request body is replayed when the client's stream ended
   * within MAX_RETRY_BODY_BYTES.
   */
  private forwardRouted(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    target: SocketAddr,
    key: string,
    router: Router,
  ): void {
    const { metrics, cfg, direction, mtls } = this.ctx;
    const startedAt = performance.now();
    stream.on('error', () => {});
    if (this.draining) stream.session?.close();
    const method = String(headers[':method'] ?? 'GET');
    const rawPath = String(headers[':path'] ?? '/');
    const authority = String(headers[':authority'] ?? headers.host ?? '');
    const grpc = isGrpc(headers);
    const { path, query } = splitTarget(rawPath);
    const fields = h2Fields(headers);
    let stats: RouteStats = metrics.route(direction, key, authority);
    let status = 0;
    let grpcStatus: number | undefined;
    let recorded = false;
    let serverIdNow: string | undefined;
    const trace = this.ctx.obs?.tracer?.child(headerText(headers.traceparent));
    const record = (reason?: string) => {
      if (recorded) return;
      recorded = true;
      const latency = performance.now() - startedAt;
      stats.response(status, latency, grpc ? grpcStatus : undefined, reason !== undefined);
      const obs = this.ctx.obs;
      if (obs !== undefined && obs.active)
        this.observe(obs, stats, status, grpc ? grpcStatus : undefined, latency, reason, {
          stream,
          headers,
          dst: upKey,
          clientId: undefined,
          serverId: serverIdNow,
          trace,
        });
    };
    /** Answers from the proxy (an error, or a redirect); after a response began, resets the stream. */
    const answerError = (err: unknown) => {
      finished = true;
      metrics.requestError(direction, key, classify(err, upKey));
      clearTimers();
      if (stream.closed || stream.destroyed) return;
      if (stream.headersSent) {
        stream.close(NGHTTP2_INTERNAL_ERROR);
        return;
      }
      responded = true;
      ({ status, grpcStatus } = respondWithError(stream, errorResponse(classify(err, upKey)), grpc));
      record();
    };
    let responded = false;
    /** The upstream's answer on its way to the client (./answer.ts), once one was taken. */
    let answer: Answer | undefined;
    let finished = false;
    let upKey = key;

    let cand: RouteCandidate;
    try {
      cand = findRoute(router, { method, path, query, headers: fields }, key);
    } catch (err) {
      stats.requests.inc();
      answerError(err);
      return;
    }
    const rule = cand.rule;
    const filters = rule.filters;
    stats = metrics.route(direction, key, authority, undefined, rule.route);
    if (filters.redirect !== undefined) {
      stats.requests.inc();
      const r = redirectLocation(
        { scheme: 'http', authority: authority !== '' ? authority : key, path, query },
        cand.prefix,
        filters.redirect,
        target.port,
      );
      responded = true;
      status = r.status;
      stream.respond({ ':status': r.status, location: r.location }, { endStream: true });
      record();
      return;
    }
    router.budget.deposit();
    const out = forwardable(headers);
    if (trace !== undefined) out.traceparent = formatTraceparent(trace);
    if (filters.request !== undefined) applyModifier(out, filters.request);
    if (filters.rewrite !== undefined) {
      const rw = rewriteRequest({ path, query, authority }, cand.prefix, filters.rewrite);
      out[':path'] = rw.target;
      out[':authority'] = rw.authority;
    }
    const bodyless = stream.endAfterHeaders;
    if (bodyless && filters.mirrors.length > 0) {
      for (const m of filters.mirrors) {
        if (!shouldMirror(m, Math.random)) continue;
        const b = router.backend(m.backend.service);
        if (b !== undefined) this.mirror(b, out, key);
        else metrics.mirrorTotal.inc({ direction, target_addr: key, result: 'dropped' });
      }
    }

    // The request body, kept for a retry while it fits.
    let replay: Buffer[] | null = null;
    let replayBytes = 0;
    let clientEnded = bodyless;
    let clientTrailers: IncomingHttpHeaders | undefined;
    if (!bodyless) {
      if (rule.retry !== undefined) {
        replay = [];
        stream.on('data', (d: Buffer) => {
          if (replay !== null && (replayBytes += d.length) <= MAX_RETRY_BODY_BYTES) replay.push(d);
          else replay = null;
        });
      }
      stream.on('end', () => (clientEnded = true));
      stream.on('trailers', (t: IncomingHttpHeaders) => (clientTrailers = t));
    }

    const deadline = rule.requestTimeoutMs > 0 ? startedAt + rule.requestTimeoutMs : Infinity;
    let routeTimer: NodeJS.Timeout | undefined;
    let attemptTimer: NodeJS.Timeout | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    const clearTimers = () => {
      clearTimeout(routeTimer);
      clearTimeout(attemptTimer);
      clearTimeout(retryTimer);
    };
    const attemptMs =
      rule.backendRequestTimeoutMs > 0 &&
      (cfg.responseTimeoutMs === 0 || rule.backendRequestTimeoutMs < cfg.responseTimeoutMs)
        ? rule.backendRequestTimeoutMs
        : cfg.responseTimeoutMs;

    // The attempt in progress.
    let up: ClientHttp2Stream | undefined;
    let ep: Endpoint | undefined;
    let backend: BackendTarget | undefined;
    let epStart = 0;
    let retries = 0;
    let firstAttempt = true;
    const settle = (ok: boolean) => {
      if (ep !== undefined) ep.end(epStart, ok);
      ep = undefined;
    };
    const feed = (failed: boolean) => {
      if (backend === undefined || ep === undefined) return;
      if (feedBreaker(backend, ep.key, failed))
        metrics.endpointEjectionsTotal.inc({ direction, target_addr: key, backend: backend.service });
    };
    const dropAttempt = () => {
      clearTimeout(attemptTimer);
      const u = up;
      up = undefined;
      if (u !== undefined) {
        if (!bodyless) stream.unpipe(u);
        if (!u.closed) u.close(NGHTTP2_CANCEL);
      }
    };
    /** The attempt failed or answered retryably: true when a retry is under way. */
    const maybeRetry = (outcome: { status: number; grpcStatus?: number } | FailureKind): boolean => {
      const d = decideRetry(
        {
          policy: rule.retry,
          retries,
          outcome,
          replayable: bodyless || (clientEnded && replay !== null),
          idempotent: grpc || isIdempotent(method),
          clientGone: stream.closed || stream.destroyed,
          remainingMs: deadline - performance.now(),
        },
        router.budget,
      );
      if (d !== 'retry') {
        if (d !== 'no-policy' && d !== 'not-retryable')
          metrics.retrySkippedTotal.inc({ direction, target_addr: key, route: rule.route, reason: d });
        return false;
      }
      metrics.retryTotal.inc({
        direction,
        target_addr: key,
        route: rule.route,
        reason: typeof outcome === 'string' ? outcome : 'status',
      });
      retries++;
      settle(typeof outcome !== 'string');
      const avoid = upKey;
      dropAttempt();
      retryTimer = setTimeout(() => attempt(avoid), retryDelayMs(retries, Math.random));
      return true;
    };
    const failAttempt = (err: unknown, kind: FailureKind | undefined) => {
      if (finished) return;
      if (kind !== undefined && !responded) {
        feed(true);
        if (rule.retry !== undefined && maybeRetry(kind)) return;
      }
      settle(false);
      dropAttempt();
      answerError(err);
    };

    const attempt = (avoid: string | undefined) => {
      if (finished || stream.closed || stream.destroyed) return;
      let a;
      try {
        a = chooseAttempt(router, rule, key, Math.random, avoid);
      } catch (err) {
        if (firstAttempt) stats.requests.inc();
        failAttempt(err, undefined);
        return;
      }
      backend = a.backend;
      ep = a.endpoint;
      epStart = ep.begin();
      upKey = ep.key;
      const serverId = ep.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
      serverIdNow = serverId;
      if (firstAttempt) {
        firstAttempt = false;
        stats = metrics.route(direction, key, authority, serverId, rule.route, ep.meta);
        stats.requests.inc();
      }
      let u: ClientHttp2Stream;
      try {
        const session = this.upstream(ep.addr, ep.key, serverId);
        const replaying = !bodyless && retries > 0;
        u = session.request({ ...out }, bodyless ? { endStream: true } : { waitForTrailers: true });
        if (replaying) {
          for (const b of replay ?? []) u.write(b);
          u.end();
        } else if (!bodyless) stream.pipe(u);
      } catch (err) {
        failAttempt(err, 'connect-failure');
        return;
      }
      up = u;
      if (attemptMs > 0) {
        attemptTimer = setTimeout(
          () =>
            failAttempt(
              new ProxyError(Codes.RESPONSE_TIMEOUT, `upstream ${upKey}: no response within ${attemptMs}ms`),
              'timeout',
            ),
          attemptMs,
        );
      }
      u.on('wantTrailers', () => u.sendTrailers(clientTrailers ? forwardable(clientTrailers) : {}));
      u.on('response', (h: IncomingHttpHeaders, flags: number) => {
        if (up !== u || finished) return;
        clearTimeout(attemptTimer);
        const st = Number(h[':status']) || 0;
        const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
        const gs = endStream ? grpcStatusOf(h) : undefined;
        // gRPC's status comes in the trailers unless the answer is trailers-only.
        if (!grpc || endStream || st !== 200) feed(isEndpointFailure(st, gs));
        if (
          rule.retry !== undefined &&
          !responded &&
          maybeRetry(gs !== undefined ? { status: st, grpcStatus: gs } : { status: st })
        )
          return;
        if (stream.closed || stream.destroyed) return;
        responded = true;
        const fedAtHead = !grpc || endStream || st !== 200;
        const modify = filters.response;
        answer = new Answer(stream, u, h, flags, {
          grpc,
          label: upKey,
          ...(modify !== undefined ? { modify: (o: http2.OutgoingHttpHeaders) => applyModifier(o, modify) } : {}),
          done: (end) => {
            status = end.status;
            grpcStatus = end.grpcStatus;
            if (end.error !== undefined) metrics.requestError(direction, key, end.error);
            if (!fedAtHead) feed(end.failed || isEndpointFailure(status, grpcStatus));
            finished = true;
            clearTimers();
            settle(!end.failed);
            record(end.failed ? end.reason : undefined);
          },
        });
      });
      u.on('error', (err: NodeJS.ErrnoException) => {
        // Once answering, the Answer deals with how the upstream's stream ends.
        if (up !== u || responded) return;
        if (err.code === 'ERR_HTTP2_STREAM_ERROR' && u.rstCode) return;
        const e = classify(err, upKey);
        const connect =
          e.code === Codes.CONNECT_REFUSED ||
          e.code === Codes.CONNECT_TIMEOUT ||
          e.code === Codes.UPSTREAM_TLS ||
          e.code === Codes.UPSTREAM_IDENTITY;
        failAttempt(e, connect ? 'connect-failure' : 'reset');
      });
      u.on('close', () => {
        if (up !== u || finished || responded) return;
        const code = u.rstCode;
        if (code === undefined || code === NGHTTP2_NO_ERROR) {
          failAttempt(
            new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${upKey}: stream closed without a response`),
            'reset',
          );
          return;
        }
        // Reset before answering: REFUSED_STREAM means nothing was processed (like a refused connect).
        feed(true);
        if (rule.retry !== undefined && maybeRetry(code === NGHTTP2_REFUSED_STREAM ? 'connect-failure' : 'reset'))
          return;
        finished = true;
        clearTimers();
        settle(false);
        if (!stream.closed && !stream.destroyed) {
          if (grpc) grpcStatus = grpcStatusOfReset(code);
          record('reset');
          stream.close(code);
        }
      });
    };

    stream.on('close', () => {
      clearTimers();
      const u = up;
      if (u !== undefined && !u.closed && (answer === undefined || !answer.sent || stream.rstCode !== NGHTTP2_NO_ERROR))
        u.close(NGHTTP2_CANCEL);
      settle(true);
    });
    if (deadline !== Infinity) {
      routeTimer = setTimeout(() => {
        if (finished) return;
        const err = new ProxyError(
          Codes.ROUTE_TIMEOUT,
          `${key}: route ${rule.route} timed out after ${rule.requestTimeoutMs}ms (timeouts.request)`,
        );
        if (answer !== undefined) {
          // Mid-answer: gRPC gets DEADLINE_EXCEEDED in the trailers, anything else a reset.
          answer.abort(err, errorResponse(err).grpcStatus);
          dropAttempt();
          return;
        }
        settle(false);
        dropAttempt();
        answerError(err);
      }, rule.requestTimeoutMs);
    }
    attempt(undefined);
  }

  /** Hands a finished stream to the observers (only called when someone observes). */
  private observe(
    obs: Observer,
    stats: RouteStats,
    status: number,
    grpcStatus: number | undefined,
    latencyMs: number,
    failure: string | undefined,
    f: NodeStreamFacts,
  ): void {
    const sock = f.stream.session?.socket;
    const h = f.headers;
    observeStream(
      obs,
      { direction: this.ctx.direction, own: this.ctx.mtls !== undefined ? (this.ctx.cfg.identity ?? '') : '' },
      stats,
      status,
      grpcStatus,
      latencyMs,
      failure,
      {
        src: `${sock?.remoteAddress ?? ''}:${sock?.remotePort ?? 0}`,
        method: headerText(h[':method']) ?? '',
        authority: headerText(h[':authority']) ?? headerText(h.host) ?? '',
        path: headerText(h[':path']) ?? '',
        fields: h2Fields(h),
        dst: f.dst,
        clientId: f.clientId,
        serverId: f.serverId,
        trace: f.trace,
      },
    );
  }

  /** RequestMirror: a copy of a stream without a body to an endpoint of `b`, its answer dropped. */
  private mirror(b: BackendTarget, out: http2.OutgoingHttpHeaders, key: string): void {
    const { metrics, direction, mtls } = this.ctx;
    const ep = b.balancer.pick();
    if (ep === undefined) {
      metrics.mirrorTotal.inc({ direction, target_addr: key, result: 'dropped' });
      return;
    }
    const start = ep.begin();
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      ep.end(start, ok);
      metrics.mirrorTotal.inc({ direction, target_addr: key, result: ok ? 'sent' : 'failed' });
    };
    try {
      const serverId = ep.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
      const m = this.upstream(ep.addr, ep.key, serverId).request({ ...out }, { endStream: true });
      m.on('error', () => finish(false));
      m.on('response', () => finish(true));
      m.on('close', () => finish(false));
      m.resume();
    } catch {
      finish(false);
    }
  }

  /** Shutdown: GOAWAY to every client (streams in flight finish), then close the upstream sessions. */
  drain(): void {
    this.draining = true;
    for (const s of this.downstreams) s.close();
  }

  close(): void {
    for (const s of this.downstreams) s.destroy();
    for (const s of this.upstreams.values()) s.close();
    this.upstreams.clear();
  }

  get openSessions(): number {
    return this.downstreams.size;
  }
}

/** Applies a header modifier to h2 headers (names are lower case there). */
function applyModifier(h: http2.OutgoingHttpHeaders, m: CompiledHeaderModifier): void {
  const fields: string[] = [];
  for (const k of Object.keys(h)) {
    if (k.charCodeAt(0) === 0x3a) continue;
    const v = h[k];
    if (Array.isArray(v)) for (const x of v) fields.push(k, String(x));
    else if (v !== undefined) fields.push(k, String(v));
    delete h[k];
  }
  modifyHeaders(fields, m);
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const k = (fields[i] as string).toLowerCase();
    const v = fields[i + 1] as string;
    const prev = h[k];
    h[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev.map(String), v] : [String(prev), v];
  }
}
