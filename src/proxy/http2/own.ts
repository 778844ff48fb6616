// The HTTP/2 side of a listener on the proxy's own engine (./wire): each client stream is forwarded as a
// stream on a pooled, multiplexed client-role H2Connection per upstream endpoint. DATA moves as it is
// with flow control end to end; heads and trailers are re-encoded. Destinations with routes still go
// through the node:http2 engine (./server.ts) until retries and filters are wired here.
import { dial } from '../transport/connect.js';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SpiffeId } from '../../api/identity.js';
import { GrpcStatus, grpcMessage, grpcStatusOfHttp, grpcStatusOfReset } from '../../api/grpc/protocol.js';
import { formatAddr, type SocketAddr } from '../../core/addr.js';
import type { Endpoint } from '../balance/balancer.js';
import { Codes, ProxyError } from '../errors/errors.js';
import { errorResponse } from '../errors/respond.js';
import { CLIENT_ID_HEADER } from '../http1/server.js';
import { InboundGate } from '../inbound/admit.js';
import { errorLabel, type RouteStats } from '../metrics.js';
import { formatTraceparent, type TraceContext } from '../observe/trace.js';
import { isEndpointFailure, pickAvailable } from '../route/breaker.js';
import { Slot } from '../route/limit.js';
import {
  abandonBreaker,
  feedBreaker,
  noEndpoint,
  queueFull,
  type BackendTarget,
  type Router,
} from '../route/router.js';
import { splitTarget, type RouteRequest } from '../route/table.js';
import { MESH_ALPN } from '../tls/alpn.js';
import { classify, errorAnswer, observeStream, takeClientSocket, type H2Engine } from './common.js';
import { H2Proxy, type H2Context } from './server.js';
import { H2Connection, type H2Handler, type H2Stream } from './wire/connection.js';
import { H2ErrorCode } from './wire/errors.js';
import { HeaderList } from './wire/hpack.js';

/** Client-role connections kept per upstream endpoint; a stream finding every one's queue full is refused. */
const MAX_CONNECTIONS_PER_ENDPOINT = 16;
/** Streams waiting on one upstream connection for its first SETTINGS or a free stream slot. One
 *  connection per endpoint is the rule (the server's SETTINGS_MAX_CONCURRENT_STREAMS holds across our
 *  streams); another opens only when this many already wait. */
const MAX_WAITING = 1024;

/** Fields that never cross the proxy (RFC 9113 section 8.2.2 forbids most; `host` is :authority's). */
function dropped(name: string, value: string): boolean {
  return name === 'host' || (name === 'te' && value !== 'trailers');
}

/** The value of the first field named `name`, or undefined. */
function field(list: HeaderList, name: string): string | undefined {
  const names = list.names;
  for (let i = 0; i < names.length; i++) if (names[i] === name) return list.values[i];
  return undefined;
}

function grpcStatusIn(list: HeaderList): number | undefined {
  const v = field(list, 'grpc-status');
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** The request's fields without pseudo-headers, as name/value pairs (tap and spans). */
function plainFields(list: HeaderList): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.names.length; i++) {
    const n = list.names[i] as string;
    if (n.charCodeAt(0) !== 0x3a) out.push(n, list.values[i] as string);
  }
  return out;
}

/** Trailers a gRPC answer ends with when the proxy ends or mends it. */
function grpcTrailers(status: number, message: string): HeaderList {
  return new HeaderList()
    .add('grpc-status', String(status))
    .add('grpc-message', grpcMessage(`outrigger proxy: ${message}`));
}

function upConnectTimeout(up: UpConn): void {
  if (up.ready) return;
  up.err ??= new ProxyError(
    Codes.CONNECT_TIMEOUT,
    `upstream ${up.label}: connect timed out after ${up.proxy.ctx.cfg.connectTimeoutMs}ms`,
  );
  up.conn.close(H2ErrorCode.CANCEL, up.err);
}

/** Resets the client's stream with NO_ERROR once the answer queued on it is all written (a reset now
 *  would drop it); checked again shortly while flow control holds it. */
function stopUploadWhenSent(f: Fwd, tries = 0): void {
  const ds = f.ds;
  if (ds.closed) return;
  if (ds.queued === 0 && ds.trailers === null && !ds.endQueued) f.down.conn.reset(ds, H2ErrorCode.NO_ERROR);
  else if (tries < 1000) setTimeout(stopUploadWhenSent, 10, f, tries + 1);
  else f.down.conn.reset(ds, H2ErrorCode.NO_ERROR);
}

function responseTimeout(f: Fwd): void {
  f.fail(
    new ProxyError(
      Codes.RESPONSE_TIMEOUT,
      `upstream ${f.upKey}: no response within ${f.proxy.ctx.cfg.responseTimeoutMs}ms`,
    ),
  );
}

/** One client-role connection to an upstream endpoint, shared by the streams forwarded to it. */
class UpConn implements H2Handler {
  readonly conn: H2Connection;
  /** Why the socket failed, recorded before the connection resets its streams. */
  err: Error | undefined;
  /** GOAWAY or close: no new streams here. */
  gone = false;
  ready = false;
  /** Streams waiting for the peer's SETTINGS (its limits are not known before) or a free slot. */
  readonly waiting: Fwd[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly proxy: OwnH2Proxy,
    readonly poolKey: string,
    readonly label: string,
    socket: Duplex,
  ) {
    socket.on('error', (e: Error) => {
      this.err ??= e;
    });
    this.conn = new H2Connection(socket, this, { role: 'client', idleTimeoutMs: proxy.ctx.cfg.idleTimeoutMs });
    this.timer = setTimeout(upConnectTimeout, proxy.ctx.cfg.connectTimeoutMs, this);
  }

  /** New streams may go here now, or wait here. */
  get usable(): boolean {
    return !this.gone && !this.conn.isClosed && this.waiting.length < MAX_WAITING;
  }

  /** Opens `f`'s upstream stream now, or queues it until the connection can take it. */
  take(f: Fwd): void {
    if (!this.ready || this.waiting.length > 0 || !f.open(this)) this.waiting.push(f);
  }

  private openWaiting(): void {
    const w = this.waiting;
    // A request() refused because the connection is full is what makes it call onCapacity later.
    while (w.length > 0) {
      const f = w[0] as Fwd;
      if (!f.settled && !f.open(this)) break;
      w.shift();
    }
  }

  /** The connection will take no more streams: those waiting go elsewhere, or fail with its error. */
  private redispatch(): void {
    const w = this.waiting.splice(0);
    for (const f of w) {
      if (f.settled) continue;
      if (this.err !== undefined) f.fail(this.err);
      else f.dispatch();
    }
  }

  onHeaders(us: H2Stream, fields: HeaderList, endStream: boolean): void {
    (us.user as Fwd).upHead(fields, endStream);
  }
  onInformational(us: H2Stream, fields: HeaderList): void {
    (us.user as Fwd).upInformational(fields);
  }
  onData(us: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    (us.user as Fwd).upData(buf, off, len, endStream);
  }
  onTrailers(us: H2Stream, fields: HeaderList): void {
    (us.user as Fwd).upTrailers(fields);
  }
  onReset(us: H2Stream, code: number, local: boolean): void {
    (us.user as Fwd | null)?.upReset(code, local, this);
  }
  onWritable(us: H2Stream): void {
    (us.user as Fwd).upWritable();
  }
  onGoAway(): void {
    // The server is going away: new streams go to another connection; streams in flight finish here.
    this.gone = true;
    this.proxy.forget(this);
    this.redispatch();
  }
  onReady(): void {
    this.ready = true;
    clearTimeout(this.timer);
    this.openWaiting();
  }
  onCapacity(): void {
    this.openWaiting();
  }
  onClose(err?: Error): void {
    this.err ??= err;
    this.gone = true;
    clearTimeout(this.timer);
    this.proxy.forget(this);
    this.redispatch();
  }
}

/** One client connection (server role): each request becomes a Fwd. */
class DownConn implements H2Handler {
  readonly conn: H2Connection;
  readonly src: string;

  constructor(
    readonly proxy: OwnH2Proxy,
    socket: Socket,
    readonly target: SocketAddr,
    readonly key: string,
    readonly router: Router | undefined,
    readonly clientId: SpiffeId | undefined,
    readonly gate: InboundGate | undefined,
  ) {
    this.src = `${socket.remoteAddress ?? ''}:${socket.remotePort ?? 0}`;
    this.conn = new H2Connection(socket, this, { role: 'server', idleTimeoutMs: proxy.ctx.cfg.idleTimeoutMs });
  }

  onHeaders(ds: H2Stream, fields: HeaderList, endStream: boolean): void {
    const f = new Fwd(this.proxy, this, ds, fields, endStream);
    ds.user = f;
    f.admit();
  }
  onData(ds: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    (ds.user as Fwd).clientData(buf, off, len, endStream);
  }
  onTrailers(ds: H2Stream, fields: HeaderList): void {
    (ds.user as Fwd).clientTrailers(fields);
  }
  onReset(ds: H2Stream, code: number): void {
    (ds.user as Fwd | null)?.clientGone(code);
  }
  onWritable(ds: H2Stream): void {
    (ds.user as Fwd).downWritable();
  }
  onClose(): void {
    this.proxy.downstreams.delete(this);
  }
}

/** One forwarded request: the client's stream, the upstream's, and the bookkeeping of its answer. */
class Fwd {
  readonly startedAt = performance.now();
  readonly grpc: boolean;
  readonly authority: string;
  /** Set when the request is counted (it started, or was refused for a full queue). */
  stats: RouteStats | undefined;
  upKey: string;
  private ep: Endpoint | undefined;
  private epStart = 0;
  private epOk = true;
  private fed = true;
  private up: UpConn | null = null;
  private us: H2Stream | null = null;
  private serverId: SpiffeId | undefined;
  private trace: TraceContext | undefined;
  /** The request body and trailers that arrived before the upstream stream opened (a queued slot). */
  private pending: Buffer[] | null = null;
  private pendingBytes = 0;
  private pendingEnd = false;
  private pendingTrailers: HeaderList | null = null;
  /** Bytes held back from one side because the other side's write said stop. */
  private heldDown = 0;
  private heldUp = 0;
  private clientEnded: boolean;
  private holdsSlot = false;
  private onSlot: (() => void) | undefined;
  private responded = false;
  private finished = false;
  private recorded = false;
  private status = 0;
  private grpcStatus: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The request head as it goes upstream, and where, until the upstream stream opens. */
  private out: HeaderList | null = null;
  private addr: SocketAddr | undefined;

  constructor(
    readonly proxy: OwnH2Proxy,
    readonly down: DownConn,
    readonly ds: H2Stream,
    readonly head: HeaderList,
    endStream: boolean,
  ) {
    this.clientEnded = endStream;
    const ct = field(head, 'content-type');
    this.grpc = ct !== undefined && ct.startsWith('application/grpc');
    this.authority = field(head, ':authority') ?? field(head, 'host') ?? '';
    this.upKey = down.key;
  }

  /** The destination's in-flight bound (a Service or pod the mesh knows), then start. */
  admit(): void {
    const router = this.down.router;
    if (router === undefined) return this.start();
    const { metrics, direction } = this.proxy.ctx;
    const key = this.down.key;
    this.onSlot = () => {
      this.onSlot = undefined;
      this.holdsSlot = true;
      // On a later tick: never inside the release of the stream that passed the slot on.
      queueMicrotask(() => {
        if (this.ds.closed) this.releaseSlot();
        else this.start();
      });
    };
    const got = router.limit.acquire(this.onSlot);
    if (got === Slot.Now) {
      this.onSlot = undefined;
      this.holdsSlot = true;
      return this.start();
    }
    if (got === Slot.Queued) {
      metrics.requestQueueTotal.inc({ direction, target_addr: key, result: 'queued' });
      return;
    }
    this.onSlot = undefined;
    metrics.requestQueueTotal.inc({ direction, target_addr: key, result: 'full' });
    const stats = metrics.route(direction, key, this.authority, this.down.clientId);
    this.stats = stats;
    stats.requests.inc();
    this.fail(queueFull(router.limit, key));
  }

  private releaseSlot(): void {
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.down.router?.limit.release();
    } else if (this.onSlot !== undefined) {
      this.down.router?.limit.cancel(this.onSlot);
      this.onSlot = undefined;
    }
  }

  /** Policy, the endpoint, and the upstream stream. */
  private start(): void {
    const { ctx } = this.proxy;
    const { metrics, direction, mtls } = ctx;
    const { router, gate, key, clientId, target } = this.down;
    if (this.proxy.draining) this.down.conn.goaway();
    const own = router?.own;
    const ep = own !== undefined ? pickAvailable(own.balancer, own.breakers) : undefined;
    this.ep = ep;
    this.fed = ep === undefined;
    this.epStart = ep?.begin() ?? 0;
    this.upKey = ep?.key ?? key;
    // A meshed endpoint gets mesh TLS (to its app port, which its pod redirects to its proxy).
    const serverId = ep?.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
    this.serverId = serverId;
    const stats = metrics.route(direction, key, this.authority, clientId ?? serverId, undefined, ep?.meta);
    this.stats = stats;
    stats.requests.inc();
    this.trace = ctx.obs?.tracer?.child(field(this.head, 'traceparent'));
    if (gate !== undefined) {
      let req: RouteRequest | undefined;
      if (gate.routed()) {
        const { path, query } = splitTarget(field(this.head, ':path') ?? '/');
        req = { method: field(this.head, ':method') ?? 'GET', path, query, headers: plainFields(this.head) };
      }
      const denied = gate.http(req);
      if (denied !== undefined) return this.fail(denied);
    }
    if (own !== undefined && ep === undefined)
      return this.fail(noEndpoint(own, `${key}${this.authority !== '' ? ` (${this.authority})` : ''}`));

    const out = new HeaderList();
    const inbound = direction === 'inbound';
    const h = this.head;
    for (let i = 0; i < h.names.length; i++) {
      const n = h.names[i] as string;
      const v = h.values[i] as string;
      if (dropped(n, v)) continue;
      // The identity header comes from the proxy only: a client's own could claim any identity.
      if (inbound && n === CLIENT_ID_HEADER) continue;
      if (this.trace !== undefined && n === 'traceparent') continue;
      out.add(n, v, h.flags[i]);
    }
    if (inbound && clientId !== undefined) out.add(CLIENT_ID_HEADER, clientId);
    if (this.trace !== undefined) out.add('traceparent', formatTraceparent(this.trace));

    this.out = out;
    this.addr = ep?.addr ?? target;
    const ms = ctx.cfg.responseTimeoutMs;
    if (ms > 0) this.timer = setTimeout(responseTimeout, ms, this);
    this.dispatch();
  }

  /** Whether the request is over for the proxy (answered, failed, or the client went away). */
  get settled(): boolean {
    return this.finished || this.ds.closed;
  }

  /** To an upstream connection of the endpoint: at once, or once it can take a stream. */
  dispatch(): void {
    const up = this.proxy.upstream(this.addr as SocketAddr, this.upKey, this.serverId);
    if (up === undefined)
      return this.fail(new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${this.upKey}: every connection is full`));
    up.take(this);
  }

  /** Opens the upstream stream on `up` and sends what the client sent so far; false when `up` is full. */
  open(up: UpConn): boolean {
    const endNow = this.clientEnded && this.pending === null && this.pendingTrailers === null;
    const us = up.conn.request(this.out as HeaderList, endNow);
    if (us === null) return false;
    this.out = null;
    this.up = up;
    this.us = us;
    us.user = this;
    const pending = this.pending;
    if (pending !== null) {
      this.pending = null;
      let ok = true;
      const last = this.pendingEnd && this.pendingTrailers === null;
      for (let i = 0; i < pending.length; i++)
        ok = up.conn.write(us, pending[i] as Buffer, last && i === pending.length - 1);
      if (pending.length === 0 && last) up.conn.write(us, Buffer.alloc(0), true);
      if (ok) this.down.conn.consumed(this.ds, this.pendingBytes);
      else this.heldDown += this.pendingBytes;
      this.pendingBytes = 0;
    }
    if (this.pendingTrailers !== null) up.conn.trailers(us, this.pendingTrailers);
    this.pendingTrailers = null;
    return true;
  }

  // ---- The request, client → upstream ----

  clientData(buf: Buffer, off: number, len: number, end: boolean): void {
    if (end) this.clientEnded = true;
    const us = this.us;
    if (us === null || this.finished) {
      if (this.finished || this.recorded) {
        this.down.conn.consumed(this.ds, len);
        return;
      }
      // Held (not consumed) until the upstream stream opens: the client's window bounds it.
      (this.pending ??= []).push(buf.subarray(off, off + len));
      this.pendingBytes += len;
      this.pendingEnd = end;
      return;
    }
    if ((this.up as UpConn).conn.write(us, buf.subarray(off, off + len), end)) this.down.conn.consumed(this.ds, len);
    else this.heldDown += len;
  }

  clientTrailers(fields: HeaderList): void {
    this.clientEnded = true;
    if (this.finished) return;
    if (this.us === null) this.pendingTrailers = fields;
    else (this.up as UpConn).conn.trailers(this.us, fields);
  }

  /** The upstream stream takes bytes again: return the client's bytes we held back. */
  upWritable(): void {
    const n = this.heldDown;
    this.heldDown = 0;
    this.down.conn.consumed(this.ds, n);
  }

  /** The client reset its stream, or its connection went away. */
  clientGone(code: number): void {
    const us = this.us;
    // A client reset goes upstream with its code; a connection that closed becomes CANCEL.
    if (us !== null && !us.closed)
      (this.up as UpConn).conn.reset(
        us,
        code === H2ErrorCode.NO_ERROR || code === H2ErrorCode.REFUSED_STREAM ? H2ErrorCode.CANCEL : code,
      );
    if (!this.finished && this.stats !== undefined) {
      this.finished = true;
      if (this.grpc) this.grpcStatus = GrpcStatus.CANCELLED;
      this.end(this.grpc, 'cancelled');
    }
    this.releaseSlot();
  }

  // ---- The answer, upstream → client ----

  upInformational(fields: HeaderList): void {
    if (!this.ds.closed && !this.ds.headersSent) this.down.conn.respond(this.ds, fields, false);
  }

  upHead(fields: HeaderList, end: boolean): void {
    clearTimeout(this.timer);
    if (this.finished || this.ds.closed) return;
    this.responded = true;
    const st = Number(field(fields, ':status')) || 0;
    this.status = st;
    // gRPC's status comes at the end; anything else is judged by its head at once.
    if (!this.grpc || st !== 200) this.feed(isEndpointFailure(st));
    if (end && this.grpc) {
      const gs = grpcStatusIn(fields);
      if (gs === undefined && st === 200) {
        // A gRPC answer always ends with grpc-status: a trailers-only one gets the proxy's INTERNAL in its head.
        const err = this.grpcStatusMissing();
        fields
          .add('grpc-status', String(GrpcStatus.INTERNAL))
          .add('grpc-message', grpcMessage(`outrigger proxy: ${err.message}`));
        this.down.conn.respond(this.ds, fields, true);
        this.answered(true, errorLabel(err));
        return;
      }
      this.grpcStatus = gs ?? grpcStatusOfHttp(st);
    }
    this.down.conn.respond(this.ds, fields, end);
    if (end) this.answered(false, undefined);
  }

  upData(buf: Buffer, off: number, len: number, end: boolean): void {
    const us = this.us as H2Stream;
    const up = this.up as UpConn;
    if (this.finished || this.ds.closed) {
      up.conn.consumed(us, len);
      return;
    }
    const grpcEnd = end && this.grpc && this.status === 200;
    if (this.down.conn.write(this.ds, buf.subarray(off, off + len), end && !grpcEnd)) up.conn.consumed(us, len);
    else this.heldUp += len;
    if (grpcEnd) this.missingGrpcStatus();
    else if (end) {
      if (this.grpc) this.grpcStatus = grpcStatusOfHttp(this.status);
      this.answered(false, undefined);
    }
  }

  upTrailers(fields: HeaderList): void {
    if (this.finished || this.ds.closed) return;
    if (this.grpc) {
      const gs = grpcStatusIn(fields);
      if (gs === undefined && this.status === 200) return this.missingGrpcStatus();
      this.grpcStatus = gs ?? grpcStatusOfHttp(this.status);
    }
    this.down.conn.trailers(this.ds, fields);
    this.answered(false, undefined);
  }

  /** A gRPC answer ended without grpc-status: the proxy's INTERNAL in trailers. */
  private missingGrpcStatus(): void {
    const err = this.grpcStatusMissing();
    this.down.conn.trailers(this.ds, grpcTrailers(GrpcStatus.INTERNAL, err.message));
    this.answered(true, errorLabel(err));
  }

  /** Counts the missing grpc-status as the proxy's error and sets the status the client ends with. */
  private grpcStatusMissing(): ProxyError {
    const err = new ProxyError(
      Codes.GRPC_STATUS_MISSING,
      `upstream ${this.upKey}: the grpc response ended without grpc-status`,
    );
    this.grpcStatus = GrpcStatus.INTERNAL;
    this.proxy.ctx.metrics.requestError(this.proxy.ctx.direction, this.down.key, err);
    return err;
  }

  /** The client's stream takes bytes again: return the upstream's bytes we held back. */
  downWritable(): void {
    const n = this.heldUp;
    this.heldUp = 0;
    if (this.us !== null) (this.up as UpConn).conn.consumed(this.us, n);
  }

  /** The upstream stream was reset: by the server (`local` false), or with its connection. */
  upReset(code: number, local: boolean, up: UpConn): void {
    clearTimeout(this.timer);
    if (this.finished) {
      // RFC 9113 section 8.1: the server answered in full, then reset with NO_ERROR to stop the upload;
      // the client is told the same way once our answer is written.
      if (!local && code === H2ErrorCode.NO_ERROR && !this.clientEnded) stopUploadWhenSent(this);
      return;
    }
    const { metrics, direction } = this.proxy.ctx;
    if (!this.responded) {
      // Never answered: a connection that failed is the proxy's error answer (502, 504, a gRPC status);
      // a reset from the server is passed on as the same reset (REFUSED_STREAM: nothing was processed).
      if (local && up.err !== undefined) return this.fail(up.err);
      if (local && code !== H2ErrorCode.REFUSED_STREAM)
        return this.fail(
          new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${this.upKey}: stream closed without a response`),
        );
      this.feed(true);
      this.epOk = false;
      if (this.grpc) this.grpcStatus = grpcStatusOfReset(code);
      this.finished = true;
      this.down.conn.reset(this.ds, code);
      this.end(true, 'reset');
      return;
    }
    if (!local && code === H2ErrorCode.NO_ERROR && this.ds.localEnded) return; // stopped the upload (RFC 9113 8.1)
    if (!local) {
      // Reset mid-answer: the client's stream is reset the same way.
      this.down.conn.reset(this.ds, code);
      if (this.grpc) this.grpcStatus = grpcStatusOfReset(code);
      this.answered(true, 'reset');
      return;
    }
    // The connection went away mid-answer: gRPC gets UNAVAILABLE in trailers, anything else a reset.
    const err = new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${this.upKey}: the connection closed mid-response`);
    metrics.requestError(direction, this.down.key, err);
    if (this.grpc && !this.ds.localEnded) {
      this.grpcStatus = GrpcStatus.UNAVAILABLE;
      this.down.conn.trailers(this.ds, grpcTrailers(GrpcStatus.UNAVAILABLE, err.message));
    } else {
      this.down.conn.reset(this.ds, H2ErrorCode.INTERNAL_ERROR);
      if (this.grpc) this.grpcStatus = grpcStatusOfReset(H2ErrorCode.INTERNAL_ERROR);
    }
    this.answered(true, errorLabel(err));
  }

  /** The answer is over (sent, mended or cut). */
  private answered(failed: boolean, reason: string | undefined): void {
    this.finished = true;
    if (failed) this.epOk = false;
    this.feed(failed || isEndpointFailure(this.status, this.grpcStatus));
    this.end(failed, reason);
    this.releaseSlot();
  }

  /** Answers with the proxy's error; after a response began, resets the stream. */
  fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    const { metrics, direction } = this.proxy.ctx;
    const e = classify(err, this.upKey);
    metrics.requestError(direction, this.down.key, e);
    this.epOk = false;
    if (!this.responded) this.feed(true);
    const us = this.us;
    if (us !== null && !us.closed) (this.up as UpConn).conn.reset(us, H2ErrorCode.CANCEL);
    if (!this.ds.closed) {
      if (this.ds.headersSent) this.down.conn.reset(this.ds, H2ErrorCode.INTERNAL_ERROR);
      else {
        const a = errorAnswer(errorResponse(e), this.grpc);
        const h = new HeaderList().add(':status', String(a.status));
        for (let i = 0; i + 1 < a.fields.length; i += 2) h.add(a.fields[i] as string, a.fields[i + 1] as string);
        this.responded = true;
        this.status = a.status;
        this.grpcStatus = a.grpcStatus;
        this.down.conn.respond(this.ds, h, a.body === undefined);
        if (a.body !== undefined) this.down.conn.write(this.ds, Buffer.from(a.body), true);
      }
    }
    // The client's body still on its way is taken and dropped: its bytes go back to its window.
    if (this.pendingBytes > 0) this.down.conn.consumed(this.ds, this.pendingBytes);
    this.pending = null;
    this.pendingBytes = 0;
    this.end(false, undefined);
    this.releaseSlot();
  }

  /** The breaker of the endpoint learns from the answer, or the failure before one, once. */
  private feed(failure: boolean): void {
    if (this.fed) return;
    this.fed = true;
    const own = this.down.router?.own as BackendTarget;
    if (feedBreaker(own, (this.ep as Endpoint).key, failure)) {
      const { metrics, direction } = this.proxy.ctx;
      metrics.endpointEjectionsTotal.inc({ direction, target_addr: this.down.key, backend: own.service });
    }
  }

  /** Metrics, the endpoint's latency, and the observers: once. */
  private end(failed: boolean, reason: string | undefined): void {
    if (this.recorded) return;
    this.recorded = true;
    const latency = performance.now() - this.startedAt;
    const ep = this.ep;
    if (ep !== undefined) {
      ep.end(this.epStart, this.epOk && !failed);
      if (!this.fed) abandonBreaker(this.down.router?.own as BackendTarget, ep.key);
    }
    const grpcStatus = this.grpc ? this.grpcStatus : undefined;
    const stats = this.stats;
    if (stats === undefined) return; // never counted: it waited for a slot until the client left
    stats.response(this.status, latency, grpcStatus, reason !== undefined);
    const { ctx } = this.proxy;
    const obs = ctx.obs;
    if (obs !== undefined && obs.active) {
      const h = this.head;
      observeStream(
        obs,
        { direction: ctx.direction, own: ctx.mtls !== undefined ? (ctx.cfg.identity ?? '') : '' },
        stats,
        this.status,
        grpcStatus,
        latency,
        reason,
        {
          src: this.down.src,
          method: field(h, ':method') ?? '',
          authority: this.authority,
          path: field(h, ':path') ?? '',
          fields: plainFields(h),
          dst: this.upKey,
          clientId: this.down.clientId,
          serverId: this.serverId,
          trace: this.trace,
        },
      );
    }
  }
}

export class OwnH2Proxy implements H2Engine {
  readonly downstreams = new Set<DownConn>();
  private readonly pools = new Map<string, UpConn[]>();
  /** Destinations with routes: the node:http2 engine, until retries and filters are wired here. */
  private readonly node: H2Proxy;
  draining = false;

  constructor(readonly ctx: H2Context) {
    this.node = new H2Proxy(ctx);
  }

  handle(
    socket: Socket,
    target: SocketAddr,
    initial: Buffer,
    router?: Router,
    clientId?: SpiffeId,
    peerAddr?: string,
  ): void {
    if (router !== undefined && !router.table.empty) {
      this.node.handle(socket, target, initial, router, clientId, peerAddr);
      return;
    }
    const { policy, direction } = this.ctx;
    const gate = takeClientSocket(socket, initial, direction, policy, target, clientId, peerAddr);
    const d = new DownConn(this, socket, target, formatAddr(target), router, clientId, gate);
    this.downstreams.add(d);
    socket.resume();
    if (this.draining) d.conn.goaway();
  }

  /** A connection to `addr` with a free stream slot (per expected identity with mesh TLS, apart from
   *  plaintext ones); undefined when every allowed connection is full. */
  upstream(addr: SocketAddr, label: string, serverId: SpiffeId | undefined): UpConn | undefined {
    const key = serverId === undefined ? label : `tls\0${label}\0${serverId}`;
    let list = this.pools.get(key);
    if (list !== undefined) {
      for (const c of list) if (c.usable) return c;
      if (list.length >= MAX_CONNECTIONS_PER_ENDPOINT) return undefined;
    } else {
      list = [];
      this.pools.set(key, list);
    }
    const { mtls } = this.ctx;
    const raw = dial(this.ctx.cfg, this.ctx.direction, addr.host, addr.port);
    const socket =
      serverId === undefined || mtls === undefined ? raw : mtls.originate(raw, label, serverId, MESH_ALPN.h2);
    const c = new UpConn(this, key, label, socket);
    list.push(c);
    return c;
  }

  forget(c: UpConn): void {
    const list = this.pools.get(c.poolKey);
    if (list === undefined) return;
    const i = list.indexOf(c);
    if (i !== -1) list.splice(i, 1);
    if (list.length === 0) this.pools.delete(c.poolKey);
  }

  /** Shutdown: GOAWAY to every client (streams in flight finish). */
  drain(): void {
    this.draining = true;
    this.node.drain();
    for (const d of this.downstreams) d.conn.goaway();
  }

  close(): void {
    this.node.close();
    for (const d of this.downstreams) d.conn.close(H2ErrorCode.NO_ERROR);
    for (const list of this.pools.values()) for (const c of list) c.conn.close(H2ErrorCode.NO_ERROR);
    this.pools.clear();
  }

  get openSessions(): number {
    return this.downstreams.size + this.node.openSessions;
  }
}
