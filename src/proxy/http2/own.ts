// The HTTP/2 side of a listener, on the proxy's own engine (./wire): each client stream becomes a Fwd,
// which turns its frames into a request for the request layer (../request/exchange.ts: slot, policy,
// routes, endpoint, timeouts, retries, metrics, observers) and forwards each attempt as a stream on a
// pooled, multiplexed client-role H2Connection per upstream endpoint. DATA moves as it is with flow
// control end to end; heads and trailers are re-encoded. Every handler call and timer that acts on a
// stream runs under a per-stream guard: a fault in it ends that stream only, never a shared connection.
import type { Socket } from 'node:net';
import { dial } from '../transport/connect.js';
import type { Duplex } from 'node:stream';
import type { SpiffeId } from '../../api/identity.js';
import { GrpcStatus, grpcMessage, grpcStatusOfHttp, grpcStatusOfReset } from '../../api/grpc/protocol.js';
import { formatAddr, type SocketAddr } from '../../core/addr.js';
import { Codes, ProxyError } from '../errors/errors.js';
import type { ErrorResponse } from '../errors/respond.js';
import type { InboundGate, InboundPolicyDeps } from '../inbound/admit.js';
import { errorLabel } from '../metrics.js';
import { modifyHeaders, type CompiledHeaderModifier } from '../route/filters.js';
import type { Router } from '../route/router.js';
import { MESH_ALPN } from '../tls/alpn.js';
import { Admit, CLIENT_ID_HEADER, Exchange, type ExchangeContext, type RequestCodec } from '../request/exchange.js';
import { MIRROR_TIMEOUT_MS, type MirrorTicket } from '../request/mirror.js';
import { classify, errorAnswer, takeClientSocket, type H2Engine } from './common.js';
import { H2Connection, type H2Handler, type H2Stream } from './wire/connection.js';
import { H2ErrorCode } from './wire/errors.js';
import { HeaderList } from './wire/hpack.js';

export interface H2Context extends ExchangeContext {
  /** Inbound with a policy service: every stream is authorized and rate limited (../inbound). */
  readonly policy?: InboundPolicyDeps;
}

/** Client-role connections kept per upstream endpoint; a stream finding every one's queue full is refused. */
const MAX_CONNECTIONS_PER_ENDPOINT = 16;
/** Streams waiting on one upstream connection for its first SETTINGS or a free stream slot. One
 *  connection per endpoint is the rule (the server's SETTINGS_MAX_CONCURRENT_STREAMS holds across our
 *  streams); another opens only when this many already wait. */
const MAX_WAITING = 1024;

/** Where a test may inject a fault into forwarding code (see setFaultHook). */
export type FaultSite = 'start' | 'client-data' | 'head' | 'data' | 'error-answer';
let faultHook: ((site: FaultSite, path: string) => void) | undefined;

/** Tests only: `hook` runs at each FaultSite of every stream (with its :path) and may throw, as a bug
 *  in forwarding code would. undefined: none (the default). */
export function setFaultHook(hook: ((site: FaultSite, path: string) => void) | undefined): void {
  faultHook = hook;
}

/** Fields that never cross the proxy (RFC 9113 section 8.2.2 forbids most; `host` is :authority's). */
function dropped(name: string, value: string): boolean {
  return (
    name === 'host' ||
    (name === 'te' && value !== 'trailers') ||
    name === 'connection' ||
    name === 'keep-alive' ||
    name === 'proxy-connection' ||
    name === 'transfer-encoding' ||
    name === 'upgrade'
  );
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

/** The request's fields without pseudo-headers, as name/value pairs (routes, tap and spans). */
function plainFields(list: HeaderList): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.names.length; i++) {
    const n = list.names[i] as string;
    if (n.charCodeAt(0) !== 0x3a) out.push(n, list.values[i] as string);
  }
  return out;
}

/** A response head with a route's header modifier applied (names lower case, as HTTP/2 wants). */
function modifiedHead(list: HeaderList, m: CompiledHeaderModifier): HeaderList {
  const out = new HeaderList();
  const names = list.names;
  for (let i = 0; i < names.length; i++) {
    const n = names[i] as string;
    if (n.charCodeAt(0) === 0x3a) out.add(n, list.values[i] as string);
  }
  const f = plainFields(list);
  modifyHeaders(f, m);
  for (let i = 0; i + 1 < f.length; i += 2) out.add((f[i] as string).toLowerCase(), f[i + 1] as string);
  return out;
}

/** Trailers a gRPC answer ends with when the proxy ends or mends it. */
function grpcTrailers(status: number, message: string): HeaderList {
  return new HeaderList()
    .add('grpc-status', String(status))
    .add('grpc-message', grpcMessage(`outrigger proxy: ${message}`));
}

/** Whether an upstream failure happened before anything was sent (a retry may go anywhere then). */
function connectFailure(e: ProxyError): boolean {
  return (
    e.code === Codes.CONNECT_REFUSED ||
    e.code === Codes.CONNECT_TIMEOUT ||
    e.code === Codes.UPSTREAM_TLS ||
    e.code === Codes.UPSTREAM_IDENTITY
  );
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
  try {
    const ds = f.ds;
    if (ds.closed) return;
    if (ds.queued === 0 && ds.trailers === null && !ds.endQueued) f.down.conn.reset(ds, H2ErrorCode.NO_ERROR);
    else if (tries < 1000) setTimeout(stopUploadWhenSent, 10, f, tries + 1);
    else f.down.conn.reset(ds, H2ErrorCode.NO_ERROR);
  } catch (err) {
    f.crashed(err);
  }
}

function mirrorTimeout(m: Mirror): void {
  m.stop();
}

/** What rides a stream of an upstream connection: a forwarded request's attempt, or a mirror. */
interface UpUser {
  /** Waits on `up` for a stream (not yet opened, not dropped, not over). */
  pendingOn(up: UpConn): boolean;
  /** Opens the stream on `up`; false when `up` is full (it stays queued). */
  open(up: UpConn): boolean;
  /** The connection it waited on will take no streams: go to another one. */
  dispatch(): void;
  /** The connection it waited on failed with `err`. */
  upFailed(err: Error): void;
  upHead(fields: HeaderList, endStream: boolean): void;
  upInformational(fields: HeaderList): void;
  upData(buf: Buffer, off: number, len: number, endStream: boolean): void;
  upTrailers(fields: HeaderList): void;
  upReset(code: number, local: boolean, up: UpConn): void;
  upWritable(): void;
  /** A fault escaped code run for this stream: end it (and only it). */
  crashed(err: unknown): void;
}

/** One client-role connection to an upstream endpoint, shared by the streams forwarded to it. Each
 *  event for a stream is passed to its user under the per-stream guard. */
class UpConn implements H2Handler {
  readonly conn: H2Connection;
  /** Why the socket failed, recorded before the connection resets its streams. */
  err: Error | undefined;
  /** GOAWAY or close: no new streams here. */
  gone = false;
  ready = false;
  /** Streams waiting for the peer's SETTINGS (its limits are not known before) or a free slot. */
  readonly waiting: UpUser[] = [];
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
    const idle = proxy.ctx.cfg.idleTimeoutMs;
    this.conn = new H2Connection(socket, this, { role: 'client', idleTimeoutMs: idle, stallTimeoutMs: idle });
    proxy.ctx.metrics.h2.track(this.conn, proxy.ctx.direction, 'server');
    this.timer = setTimeout(upConnectTimeout, proxy.ctx.cfg.connectTimeoutMs, this);
  }

  /** New streams may go here now, or wait here. */
  get usable(): boolean {
    return !this.gone && !this.conn.isClosed && this.waiting.length < MAX_WAITING;
  }

  /** Opens `u`'s upstream stream now, or queues it until the connection can take it. */
  take(u: UpUser): void {
    if (this.ready && this.waiting.length === 0 && this.tryOpen(u)) return;
    this.waiting.push(u);
  }

  /** Opens `u`'s stream; true when it no longer waits (opened, or failed under the guard). */
  private tryOpen(u: UpUser): boolean {
    try {
      return u.open(this);
    } catch (err) {
      u.crashed(err);
      return true;
    }
  }

  private openWaiting(): void {
    const w = this.waiting;
    // A request() refused because the connection is full is what makes it call onCapacity later.
    while (w.length > 0) {
      const u = w[0] as UpUser;
      if (u.pendingOn(this) && !this.tryOpen(u)) break;
      w.shift();
    }
  }

  /** The connection will take no more streams: those waiting go elsewhere, or fail with its error. */
  private redispatch(): void {
    const w = this.waiting.splice(0);
    for (const u of w) {
      if (!u.pendingOn(this)) continue;
      try {
        if (this.err !== undefined) u.upFailed(this.err);
        else u.dispatch();
      } catch (err) {
        u.crashed(err);
      }
    }
  }

  onHeaders(us: H2Stream, fields: HeaderList, endStream: boolean): void {
    const u = us.user as UpUser | null;
    if (u === null) return;
    try {
      u.upHead(fields, endStream);
    } catch (err) {
      u.crashed(err);
    }
  }
  onInformational(us: H2Stream, fields: HeaderList): void {
    const u = us.user as UpUser | null;
    if (u === null) return;
    try {
      u.upInformational(fields);
    } catch (err) {
      u.crashed(err);
    }
  }
  onData(us: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    const u = us.user as UpUser | null;
    if (u === null) return this.conn.consumed(us, len);
    try {
      u.upData(buf, off, len, endStream);
    } catch (err) {
      u.crashed(err);
      this.conn.consumed(us, len); // whatever the fault left: the connection's window is not lost
    }
  }
  onTrailers(us: H2Stream, fields: HeaderList): void {
    const u = us.user as UpUser | null;
    if (u === null) return;
    try {
      u.upTrailers(fields);
    } catch (err) {
      u.crashed(err);
    }
  }
  onReset(us: H2Stream, code: number, local: boolean): void {
    const u = us.user as UpUser | null;
    if (u === null) return;
    try {
      u.upReset(code, local, this);
    } catch (err) {
      u.crashed(err);
    }
  }
  onWritable(us: H2Stream): void {
    const u = us.user as UpUser | null;
    if (u === null) return;
    try {
      u.upWritable();
    } catch (err) {
      u.crashed(err);
    }
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

/** One client connection (server role): each request becomes a Fwd; each event for a stream is passed
 *  to it under the per-stream guard. */
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
    // A peer that keeps its window shut (or reads nothing) for the idle timeout is let go (wire: stalls).
    const idle = proxy.ctx.cfg.idleTimeoutMs;
    this.conn = new H2Connection(socket, this, { role: 'server', idleTimeoutMs: idle, stallTimeoutMs: idle });
    proxy.ctx.metrics.h2.track(this.conn, proxy.ctx.direction, 'client');
  }

  onHeaders(ds: H2Stream, fields: HeaderList, endStream: boolean): void {
    let f: Fwd | undefined;
    try {
      f = new Fwd(this.proxy, this, ds, fields, endStream);
      ds.user = f;
      f.admit();
    } catch (err) {
      if (f !== undefined) f.crashed(err);
      else {
        this.proxy.ctx.log.error(
          { target: this.key, err: (err as Error)?.stack ?? String(err) },
          'http/2 stream failed',
        );
        this.conn.reset(ds, H2ErrorCode.INTERNAL_ERROR);
      }
    }
  }
  onData(ds: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    const f = ds.user as Fwd | null;
    if (f === null) return this.conn.consumed(ds, len);
    try {
      f.clientData(buf, off, len, endStream);
    } catch (err) {
      f.crashed(err);
      this.conn.consumed(ds, len); // whatever the fault left: the client's window is not lost
    }
  }
  onTrailers(ds: H2Stream, fields: HeaderList): void {
    const f = ds.user as Fwd | null;
    if (f === null) return;
    try {
      f.clientTrailers(fields);
    } catch (err) {
      f.crashed(err);
    }
  }
  onReset(ds: H2Stream, code: number): void {
    const f = ds.user as Fwd | null;
    if (f === null) return;
    try {
      f.clientReset(code);
    } catch (err) {
      f.crashed(err);
    }
  }
  onWritable(ds: H2Stream): void {
    const f = ds.user as Fwd | null;
    if (f === null) return;
    try {
      f.downWritable();
    } catch (err) {
      f.crashed(err);
    }
  }
  onClose(): void {
    this.proxy.downstreams.delete(this);
  }
}

/** One forwarded request: the client's stream, the stream of the attempt in progress, and the bytes
 *  between them; the request layer's Exchange decides the rest. */
class Fwd implements RequestCodec, UpUser {
  readonly ex: Exchange;
  private up: UpConn | null = null;
  private us: H2Stream | null = null;
  /** The connection the attempt waits on for a stream (it is in that connection's queue). */
  private waitingOn: UpConn | null = null;
  /** The attempt waiting for its stream is a retry (its body is the exchange's replay buffer). */
  private retry = false;
  /** The request head as it goes upstream, until the attempt's stream opens. */
  private out: HeaderList | null = null;
  /** The request body that arrived before the first attempt's stream opened: held, not consumed, so the
   *  client's window bounds it. */
  private pending: Buffer[] | null = null;
  private pendingBytes = 0;
  /** The client's trailers (kept: a retry sends them again). */
  private trailersIn: HeaderList | null = null;
  /** Bytes held back from one side because the other side's write said stop. */
  private heldDown = 0;
  private heldUp = 0;
  private clientEnded: boolean;
  /** The per-stream guard already ran for this stream. */
  private crashing = false;

  constructor(
    readonly proxy: OwnH2Proxy,
    readonly down: DownConn,
    readonly ds: H2Stream,
    readonly head: HeaderList,
    endStream: boolean,
  ) {
    this.clientEnded = endStream;
    const ct = field(head, 'content-type');
    const ex = new Exchange(proxy.ctx, this, down.target, down.key, down.router, down.clientId, down.gate);
    this.ex = ex;
    ex.open(
      field(head, ':method') ?? 'GET',
      field(head, ':path') ?? '/',
      field(head, ':authority') ?? field(head, 'host') ?? '',
      plainFields(head),
      ct !== undefined && ct.startsWith('application/grpc'),
      endStream,
    );
  }

  /** The destination's in-flight bound, then start. */
  admit(): void {
    if (this.ex.admit() !== Admit.Queued) this.start();
  }

  private start(): void {
    if (this.proxy.draining) this.down.conn.goaway();
    if (faultHook !== undefined) faultHook('start', this.ex.path);
    this.ex.start();
  }

  // ---- RequestCodec ----

  clientAddr(): string {
    return this.down.src;
  }

  requestEnded(): boolean {
    return this.clientEnded;
  }

  clientGone(): boolean {
    return this.ds.closed;
  }

  admitted(): void {
    this.start();
  }

  sendAttempt(retry: boolean): void {
    this.retry = retry;
    this.out = this.requestHead();
    this.dispatch();
  }

  dropAttempt(): void {
    const us = this.us;
    const up = this.up;
    this.us = null;
    this.up = null;
    this.waitingOn = null;
    this.out = null;
    if (us !== null) {
      us.user = null;
      if (!us.closed) (up as UpConn).conn.reset(us, H2ErrorCode.CANCEL);
    }
    // What the client sent went to the dropped stream (or waits for one): its bytes go back to its window.
    const n = this.heldDown + this.pendingBytes;
    this.heldDown = 0;
    this.heldUp = 0;
    this.pending = null;
    this.pendingBytes = 0;
    if (n > 0) this.down.conn.consumed(this.ds, n);
  }

  answerError(r: ErrorResponse): void {
    if (faultHook !== undefined) faultHook('error-answer', this.ex.path);
    const ds = this.ds;
    if (ds.closed) return;
    if (ds.headersSent) {
      this.down.conn.reset(ds, H2ErrorCode.INTERNAL_ERROR);
      return;
    }
    const a = errorAnswer(r, this.ex.grpc);
    const h = new HeaderList().add(':status', String(a.status));
    for (let i = 0; i + 1 < a.fields.length; i += 2) h.add(a.fields[i] as string, a.fields[i + 1] as string);
    this.down.conn.respond(ds, h, a.body === undefined);
    if (a.body !== undefined) this.down.conn.write(ds, Buffer.from(a.body), true);
    this.stopUpload();
  }

  answerRedirect(status: number, location: string): void {
    if (this.ds.closed) return;
    this.down.conn.respond(this.ds, new HeaderList().add(':status', String(status)).add('location', location), true);
    this.stopUpload();
  }

  /** The proxy answered before the client's request ended: RFC 9113 section 8.1, the stream is reset
   *  with NO_ERROR once the answer is written, so that the client stops sending a body nobody reads. */
  private stopUpload(): void {
    if (!this.clientEnded && !this.ds.closed) stopUploadWhenSent(this);
  }

  cutAnswer(err: ProxyError, grpcStatus: number): number | undefined {
    const ds = this.ds;
    const grpc = this.ex.grpc;
    if (ds.closed) return grpc ? GrpcStatus.CANCELLED : undefined;
    if (grpc && !ds.localEnded) {
      this.down.conn.trailers(ds, grpcTrailers(grpcStatus, err.message));
      return grpcStatus;
    }
    this.down.conn.reset(ds, H2ErrorCode.INTERNAL_ERROR);
    return grpc ? grpcStatusOfReset(H2ErrorCode.INTERNAL_ERROR) : undefined;
  }

  mirror(ticket: MirrorTicket): void {
    const ep = ticket.endpoint;
    const mtls = this.proxy.ctx.mtls;
    const serverId = ep.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
    new Mirror(this.proxy, ticket, serverId, this.requestHead()).dispatch();
  }

  /** The per-stream guard: a fault in code run for this stream (a handler of either connection, or a
   *  timer) ends this stream only. The client gets the proxy's error when nothing was answered yet (else
   *  the answer is cut, or the stream reset when even that fails); the upstream stream is reset; the
   *  shared connections and their other streams go on. */
  crashed(err: unknown): void {
    if (!this.crashing) {
      this.crashing = true;
      try {
        this.proxy.ctx.log.error(
          { target: this.down.key, stream: this.ds.id, err: (err as Error)?.stack ?? String(err) },
          'http/2 stream failed inside the proxy: the stream is ended, its connections go on',
        );
        const msg = err instanceof Error ? err.message : String(err);
        const fault = new ProxyError(Codes.PROXY_FAULT, `${this.down.key}: the proxy failed on this stream: ${msg}`);
        // An exchange already over does not count errors any more: this one still is.
        const { metrics, direction } = this.proxy.ctx;
        if (this.ex.finished) metrics.requestError(direction, this.down.key, fault);
        if (!this.ds.headersSent) this.ex.headNotSent();
        this.ex.fail(fault, null);
      } catch {
        // Ending it cleanly failed too: the resets below end it.
      }
    }
    try {
      const us = this.us;
      this.us = null;
      this.waitingOn = null;
      if (us !== null) {
        us.user = null;
        if (!us.closed) (this.up as UpConn).conn.reset(us, H2ErrorCode.CANCEL);
      }
    } catch {
      // The upstream connection refused the reset: nothing more to do for this stream there.
    }
    try {
      // An answer that is not whole by now never will be.
      const ds = this.ds;
      if (!ds.closed && !ds.localEnded) {
        ds.user = null;
        this.down.conn.reset(ds, H2ErrorCode.INTERNAL_ERROR);
      }
      this.ex.abandon(false);
    } catch {
      // Nothing left to try.
    }
  }

  // ---- UpUser: the attempt's stream ----

  pendingOn(up: UpConn): boolean {
    return this.waitingOn === up && !this.ex.finished && !this.ds.closed;
  }

  /** To an upstream connection of the attempt's endpoint: at once, or once it can take a stream. */
  dispatch(): void {
    const ex = this.ex;
    const up = this.proxy.upstream(ex.upAddr, ex.upKey, ex.serverId);
    if (up === undefined)
      return ex.fail(
        new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${ex.upKey}: every connection is full`),
        'connect-failure',
      );
    this.waitingOn = up;
    up.take(this);
  }

  upFailed(err: Error): void {
    this.waitingOn = null;
    const e = classify(err, this.ex.upKey);
    this.ex.fail(e, connectFailure(e) ? 'connect-failure' : 'reset');
  }

  /** Opens the attempt's stream on `up` and sends the request so far (a retry: all of it). */
  open(up: UpConn): boolean {
    if (!this.pendingOn(up)) return true;
    const retry = this.retry;
    const replay = this.ex.replay;
    const trailers = this.trailersIn;
    const endNow = retry
      ? this.ex.bodyless || ((replay === null || replay.length === 0) && trailers === null)
      : this.clientEnded && this.pending === null && trailers === null;
    const us = up.conn.request(this.out as HeaderList, endNow);
    if (us === null) return false;
    this.out = null;
    this.waitingOn = null;
    this.up = up;
    this.us = us;
    us.user = this;
    if (endNow) return true;
    if (retry) {
      // The whole request is in hand (a retry needs that): the replay buffer, then the trailers.
      const r = replay ?? [];
      for (let i = 0; i < r.length; i++) up.conn.write(us, r[i] as Buffer, trailers === null && i === r.length - 1);
    } else {
      const pending = this.pending;
      if (pending !== null) {
        this.pending = null;
        let ok = true;
        const last = this.clientEnded && trailers === null;
        for (let i = 0; i < pending.length; i++)
          ok = up.conn.write(us, pending[i] as Buffer, last && i === pending.length - 1);
        if (pending.length === 0 && last) up.conn.write(us, Buffer.alloc(0), true);
        if (ok) this.down.conn.consumed(this.ds, this.pendingBytes);
        else this.heldDown += this.pendingBytes;
        this.pendingBytes = 0;
      }
    }
    if (trailers !== null) up.conn.trailers(us, trailers);
    return true;
  }

  /** The request head as it goes upstream: re-encoded from the client's, or built from what the
   *  exchange changed (route filters, rewrite, traceparent); the client identity header handled inbound. */
  private requestHead(): HeaderList {
    const ex = this.ex;
    const inbound = this.proxy.ctx.direction === 'inbound';
    const clientId = this.down.clientId;
    const out = new HeaderList();
    const h = this.head;
    if (ex.outFields === ex.fields && ex.outTarget === ex.path && ex.outAuthority === ex.authority) {
      for (let i = 0; i < h.names.length; i++) {
        const n = h.names[i] as string;
        const v = h.values[i] as string;
        if (dropped(n, v)) continue;
        // The identity header comes from the proxy only: a client's own could claim any identity.
        if (inbound && n === CLIENT_ID_HEADER) continue;
        out.add(n, v, h.flags[i]);
      }
    } else {
      let authority = false;
      for (let i = 0; i < h.names.length; i++) {
        const n = h.names[i] as string;
        if (n.charCodeAt(0) !== 0x3a) continue;
        if (n === ':path') out.add(n, ex.outTarget);
        else if (n === ':authority') {
          authority = true;
          out.add(n, ex.outAuthority);
        } else out.add(n, h.values[i] as string, h.flags[i]);
      }
      if (!authority && ex.outAuthority !== ex.authority) out.add(':authority', ex.outAuthority);
      const f = ex.outFields;
      for (let i = 0; i + 1 < f.length; i += 2) {
        const n = (f[i] as string).toLowerCase();
        const v = f[i + 1] as string;
        if (dropped(n, v) || (inbound && n === CLIENT_ID_HEADER)) continue;
        out.add(n, v);
      }
    }
    if (inbound && clientId !== undefined) out.add(CLIENT_ID_HEADER, clientId);
    return out;
  }

  // ---- The request, client → upstream ----

  clientData(buf: Buffer, off: number, len: number, end: boolean): void {
    if (end) this.clientEnded = true;
    if (faultHook !== undefined) faultHook('client-data', this.ex.path);
    if (this.ex.finished) {
      // Answered (or failed) already: the rest of the upload is taken and dropped.
      this.down.conn.consumed(this.ds, len);
      return;
    }
    const chunk = buf.subarray(off, off + len);
    if (len > 0 && this.ex.replay !== null) this.ex.keep(chunk);
    const us = this.us;
    if (us === null) {
      // Held (not consumed) until the attempt's stream opens: the client's window bounds it.
      (this.pending ??= []).push(chunk);
      this.pendingBytes += len;
      return;
    }
    if ((this.up as UpConn).conn.write(us, chunk, end)) this.down.conn.consumed(this.ds, len);
    else this.heldDown += len;
  }

  clientTrailers(fields: HeaderList): void {
    this.clientEnded = true;
    this.trailersIn = fields;
    if (this.ex.finished) return;
    if (this.us !== null) (this.up as UpConn).conn.trailers(this.us, fields);
  }

  /** The upstream stream takes bytes again: return the client's bytes we held back. */
  upWritable(): void {
    const n = this.heldDown;
    this.heldDown = 0;
    this.down.conn.consumed(this.ds, n);
  }

  /** The client reset its stream, or its connection went away. */
  clientReset(code: number): void {
    const us = this.us;
    // A client reset goes upstream with its code; a connection that closed becomes CANCEL.
    if (us !== null && !us.closed)
      (this.up as UpConn).conn.reset(
        us,
        code === H2ErrorCode.NO_ERROR || code === H2ErrorCode.REFUSED_STREAM ? H2ErrorCode.CANCEL : code,
      );
    this.waitingOn = null;
    this.ex.abandon(true);
  }

  // ---- The answer, upstream → client ----

  upInformational(fields: HeaderList): void {
    if (this.ds.closed || this.ds.headersSent || this.ex.finished) return;
    this.down.conn.respond(this.ds, fields, false);
    this.ex.interimSent = true;
  }

  upHead(fields: HeaderList, end: boolean): void {
    const ex = this.ex;
    if (ex.finished || this.ds.closed) return;
    const grpc = ex.grpc;
    const st = Number(field(fields, ':status')) || 0;
    const gs = end && grpc ? grpcStatusIn(fields) : undefined;
    // A retryable answer is dropped (and retried) here, before any byte of it reaches the client.
    if (!ex.answerHead(st, gs)) return;
    if (faultHook !== undefined) faultHook('head', ex.path);
    const m = ex.rule?.filters.response;
    if (m !== undefined) fields = modifiedHead(fields, m);
    if (end && grpc) {
      if (gs === undefined && st === 200) {
        // A gRPC answer always ends with grpc-status: a trailers-only one gets the proxy's INTERNAL in its head.
        const err = this.grpcStatusMissing();
        fields
          .add('grpc-status', String(GrpcStatus.INTERNAL))
          .add('grpc-message', grpcMessage(`outrigger proxy: ${err.message}`));
        this.down.conn.respond(this.ds, fields, true);
        ex.answered(true, errorLabel(err), err);
        return;
      }
      ex.grpcStatus = gs ?? grpcStatusOfHttp(st);
    }
    this.down.conn.respond(this.ds, fields, end);
    if (end) ex.answered(false, undefined);
  }

  upData(buf: Buffer, off: number, len: number, end: boolean): void {
    const us = this.us as H2Stream;
    const up = this.up as UpConn;
    const ex = this.ex;
    if (ex.finished || this.ds.closed) {
      up.conn.consumed(us, len);
      return;
    }
    if (faultHook !== undefined) faultHook('data', ex.path);
    const grpcEnd = end && ex.grpc && ex.status === 200;
    if (this.down.conn.write(this.ds, buf.subarray(off, off + len), end && !grpcEnd)) up.conn.consumed(us, len);
    else this.heldUp += len;
    if (grpcEnd) this.missingGrpcStatus();
    else if (end) {
      if (ex.grpc) ex.grpcStatus = grpcStatusOfHttp(ex.status);
      ex.answered(false, undefined);
    }
  }

  upTrailers(fields: HeaderList): void {
    const ex = this.ex;
    if (ex.finished || this.ds.closed) return;
    if (ex.grpc) {
      const gs = grpcStatusIn(fields);
      if (gs === undefined && ex.status === 200) return this.missingGrpcStatus();
      ex.grpcStatus = gs ?? grpcStatusOfHttp(ex.status);
    }
    this.down.conn.trailers(this.ds, fields);
    ex.answered(false, undefined);
  }

  /** A gRPC answer ended without grpc-status: the proxy's INTERNAL in trailers. */
  private missingGrpcStatus(): void {
    const err = this.grpcStatusMissing();
    this.down.conn.trailers(this.ds, grpcTrailers(GrpcStatus.INTERNAL, err.message));
    this.ex.answered(true, errorLabel(err), err);
  }

  /** The proxy's error for a missing grpc-status, and the status the client ends with. */
  private grpcStatusMissing(): ProxyError {
    this.ex.grpcStatus = GrpcStatus.INTERNAL;
    return new ProxyError(
      Codes.GRPC_STATUS_MISSING,
      `upstream ${this.ex.upKey}: the grpc response ended without grpc-status`,
    );
  }

  /** The client's stream takes bytes again: return the upstream's bytes we held back. */
  downWritable(): void {
    const n = this.heldUp;
    this.heldUp = 0;
    if (this.us !== null) (this.up as UpConn).conn.consumed(this.us, n);
  }

  /** The upstream stream was reset: by the server (`local` false), or with its connection. */
  upReset(code: number, local: boolean, up: UpConn): void {
    const ex = this.ex;
    if (ex.finished) {
      // RFC 9113 section 8.1: the server answered in full, then reset with NO_ERROR to stop the upload;
      // the client is told the same way once our answer is written.
      if (!local && code === H2ErrorCode.NO_ERROR && !this.clientEnded) stopUploadWhenSent(this);
      return;
    }
    if (!ex.responded) {
      // Never answered: a connection that failed is the proxy's error answer (502, 504, a gRPC status);
      // a reset from the server is passed on as the same reset (REFUSED_STREAM: nothing was processed),
      // unless the route retries it.
      this.us = null;
      if (local && up.err !== undefined) return this.upFailed(up.err);
      if (local && code !== H2ErrorCode.REFUSED_STREAM)
        return ex.fail(
          new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${ex.upKey}: stream closed without a response`),
          'reset',
        );
      if (ex.attemptFailed(code === H2ErrorCode.REFUSED_STREAM ? 'connect-failure' : 'reset')) return;
      if (ex.grpc) ex.grpcStatus = grpcStatusOfReset(code);
      this.down.conn.reset(this.ds, code);
      ex.answered(true, 'reset');
      return;
    }
    if (!local && code === H2ErrorCode.NO_ERROR && this.ds.localEnded) return; // stopped the upload (RFC 9113 8.1)
    if (!local) {
      // Reset mid-answer: the client's stream is reset the same way.
      this.down.conn.reset(this.ds, code);
      if (ex.grpc) ex.grpcStatus = grpcStatusOfReset(code);
      ex.answered(true, 'reset');
      return;
    }
    // The connection went away mid-answer: gRPC gets UNAVAILABLE in trailers, anything else a reset.
    const err = new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${ex.upKey}: the connection closed mid-response`);
    if (ex.grpc && !this.ds.localEnded) {
      ex.grpcStatus = GrpcStatus.UNAVAILABLE;
      this.down.conn.trailers(this.ds, grpcTrailers(GrpcStatus.UNAVAILABLE, err.message));
    } else {
      this.down.conn.reset(this.ds, H2ErrorCode.INTERNAL_ERROR);
      if (ex.grpc) ex.grpcStatus = grpcStatusOfReset(H2ErrorCode.INTERNAL_ERROR);
    }
    ex.answered(true, errorLabel(err), err);
  }
}

/** RequestMirror: a copy of a request without a body on a stream of the mirror endpoint's connection;
 *  the answer is not read (the stream is reset once its head came). */
class Mirror implements UpUser {
  private waitingOn: UpConn | null = null;
  private up: UpConn | null = null;
  private us: H2Stream | null = null;
  private done = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly proxy: OwnH2Proxy,
    private readonly ticket: MirrorTicket,
    private readonly serverId: SpiffeId | undefined,
    private readonly out: HeaderList,
  ) {
    this.timer = setTimeout(mirrorTimeout, MIRROR_TIMEOUT_MS, this);
  }

  pendingOn(up: UpConn): boolean {
    return !this.done && this.waitingOn === up;
  }
  dispatch(): void {
    const ep = this.ticket.endpoint;
    const up = this.proxy.upstream(ep.addr, ep.key, this.serverId);
    if (up === undefined) return this.finish(false);
    this.waitingOn = up;
    up.take(this);
  }
  open(up: UpConn): boolean {
    if (!this.pendingOn(up)) return true;
    const us = up.conn.request(this.out, true);
    if (us === null) return false;
    this.waitingOn = null;
    this.up = up;
    this.us = us;
    us.user = this;
    return true;
  }
  upFailed(): void {
    this.finish(false);
  }
  upHead(): void {
    this.finish(true);
  }
  upInformational(): void {}
  upData(_buf: Buffer, _off: number, len: number): void {
    if (this.us !== null) this.up?.conn.consumed(this.us, len);
  }
  upTrailers(): void {}
  upReset(): void {
    this.finish(false);
  }
  upWritable(): void {}
  crashed(): void {
    this.finish(false);
  }
  /** The mirror took too long: cut. */
  stop(): void {
    this.finish(false);
  }

  private finish(ok: boolean): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.waitingOn = null;
    const us = this.us;
    this.us = null;
    if (us !== null) {
      us.user = null;
      if (!us.closed) this.up?.conn.reset(us, H2ErrorCode.CANCEL);
    }
    this.ticket.finish(ok);
  }
}

export class OwnH2Proxy implements H2Engine {
  readonly downstreams = new Set<DownConn>();
  private readonly pools = new Map<string, UpConn[]>();
  draining = false;

  constructor(readonly ctx: H2Context) {}

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
    for (const d of this.downstreams) d.conn.goaway();
  }

  close(): void {
    for (const d of this.downstreams) d.conn.close(H2ErrorCode.NO_ERROR);
    for (const list of this.pools.values()) for (const c of list) c.conn.close(H2ErrorCode.NO_ERROR);
    this.pools.clear();
  }

  get openSessions(): number {
    return this.downstreams.size;
  }
}
