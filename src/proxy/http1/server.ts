// The HTTP/1.x side of a listener: one ClientConn per accepted connection. It parses only message heads
// and moves body bytes between the client and a pooled upstream connection without copying them, one
// exchange at a time (pipelined requests wait, so responses keep their order). Upgrades and CONNECT turn
// into byte tunnels. What a request is above the wire (its slot, policy, route, endpoint, timeouts,
// retries, metrics and observers) is ../request/exchange.ts: one Exchange per connection, reused for each
// of its requests, which calls this connection back as its RequestCodec. Every failure ends at one rescue
// point, `fail`, which hands it to the exchange; the answer goes out here (../errors/respond).
import type { Socket } from 'node:net';
import { formatAddr, type SocketAddr } from '../../core/addr.js';
import { Codes, ProxyError } from '../errors/errors.js';
import { http1ErrorResponse, reasonPhrase, type ErrorResponse } from '../errors/respond.js';
import { connectUpstream, type Connecting } from '../transport/connect.js';
import { joinSockets } from '../transport/tcp.js';
import { ChunkedScanner, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from './parse.js';
import { UpstreamPool, type UpstreamConn, type UpstreamOwner } from './pool.js';
import { modifyHeaders } from '../route/filters.js';
import type { FailureKind } from '../route/retry.js';
import type { Router } from '../route/router.js';
import { mirrorHttp1 } from './mirror.js';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from '../tls/alpn.js';
import { InboundGate, type InboundPolicyDeps } from '../inbound/admit.js';
import { Admit, CLIENT_ID_HEADER, Exchange, type ExchangeContext, type RequestCodec } from '../request/exchange.js';
import type { MirrorTicket } from '../request/mirror.js';

export interface Http1Context extends ExchangeContext {
  readonly pool: UpstreamPool;
  readonly draining: () => boolean;
  /** Open client connections, so a shutdown can drain them and the listener close idle ones. */
  readonly conns: Set<ClientConn>;
  /** Inbound with a policy service: every request is authorized and rate limited (../inbound). */
  readonly policy?: InboundPolicyDeps;
}

export { CLIENT_ID_HEADER };

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
/** Largest response head accepted from an upstream (bytes). */
const MAX_RESPONSE_HEAD = 65536;
/**
 * A connection closed with its request body unread (the proxy answered early, or the upstream answered
 * before the body ended) half-closes after the answer and reads on, dropping what comes, for at most
 * this long and this many bytes, then closes. Closing at once would reset a client that is still
 * sending, and a reset can destroy the answer before the client reads it (RFC 9112 section 9.6); a
 * client that sees the answer stops sending (curl does), one that does not is cut off at the bound.
 */
const LINGER_MS = 2000;
const LINGER_MAX_BYTES = 256 * 1024;

function onLingerTimeout(c: ClientConn): void {
  c.lingerOver();
}

/**
 * A shutdown does not close an idle keep-alive connection at once: a client may be sending its next
 * request on it that very moment, and would see the connection closed without an answer (HTTP/1.1 has
 * no way to say "closing" to an idle connection). For this long a request that comes is answered with
 * `connection: close`, and then the connection ends; one still idle after it is closed.
 */
const DRAIN_IDLE_GRACE_MS = 1000;

function onDrainGrace(c: ClientConn): void {
  c.endIfIdle();
}

const enum Res {
  Idle,
  Head,
  Body,
  Done,
}

const malformedBody = (m: string) => new ProxyError(Codes.MALFORMED_REQUEST, `invalid request body: ${m}`);
const badUpstreamBody = (m: string) =>
  new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream sent an invalid response body: ${m}`);

export class ClientConn implements UpstreamOwner, RequestCodec {
  /** The request layer's side of this connection's requests (one at a time, reused). */
  private readonly ex: Exchange;
  /** Inbound: remove the client identity header from requests (and set it from `clientId`). */
  private readonly identityHeader: boolean;
  /** Client bytes not yet consumed: a partial head, or pipelined requests waiting their turn. */
  private buf: Buffer | null = null;
  private headTimer: NodeJS.Timeout | null = null;
  private closed = false;
  private clientEnded = false;
  private closeAfter = false;
  private drainTimer: NodeJS.Timeout | null = null;
  private waitUpstreamDrain = false;
  private waitClientDrain = false;
  /** Closing after an answer with the request body unread: what the client still sends is dropped. */
  private lingering = false;
  private lingerBytes = 0;
  private lingerTimer: NodeJS.Timeout | null = null;

  // A request waiting for a slot of its destination's in-flight limit (route/limit.ts), with the bytes
  // that came after its head.
  private waitingHead: RequestHead | null = null;
  private waitingRest: Buffer | null = null;

  // The exchange in progress (one at a time).
  private req: RequestHead | null = null;
  /** The bytes after the request's head, until its first attempt takes them (or it is refused). */
  private rest: Buffer | null = null;
  /** The first attempt was sent: the request is no longer the proxy's to refuse without reading it. */
  private attempted = false;
  private reqHead = '';
  private reqDone = false;
  private reqRemaining = 0;
  private reqChunks: ChunkedScanner | null = null;
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
    router?: Router,
    /** Inbound over mesh TLS: the identity the client proved. */
    private readonly clientId?: SpiffeId,
    /** Inbound: the client's address (of the raw connection, under any TLS). */
    peerAddr?: string,
  ) {
    // Inbound, the identity header is stripped whether or not mTLS is on: nobody may claim an identity
    // with a header.
    this.identityHeader = ctx.direction === 'inbound';
    const gate =
      ctx.direction === 'inbound' && ctx.policy !== undefined
        ? new InboundGate(ctx.policy, target.port, clientId, peerAddr ?? sock.remoteAddress)
        : undefined;
    this.ex = new Exchange(ctx, this, target, formatAddr(target), router, clientId, gate);
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

  /** Shutdown: finish the exchange in flight (its answer says `connection: close`), then close; an
   *  idle connection gets DRAIN_IDLE_GRACE_MS for a request already on its way. */
  drain(): void {
    this.closeAfter = true;
    if (this.closed || this.drainTimer !== null) return;
    this.drainTimer = setTimeout(onDrainGrace, DRAIN_IDLE_GRACE_MS, this);
    this.drainTimer.unref();
  }

  /** The drain's grace is over: an idle connection ends (a busy one ends after its exchange). */
  endIfIdle(): void {
    this.drainTimer = null;
    if (!this.closed && !this.req && !this.buf && this.waitingHead === null && !this.lingering) this.sock.end();
  }

  // ---- client side ----

  private clientData(chunk: Buffer): void {
    if (this.closed) return;
    if (this.lingering) {
      if ((this.lingerBytes += chunk.length) > LINGER_MAX_BYTES) this.lingerOver();
      return;
    }
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
    const rest = end + 4 < buf.length ? buf.subarray(end + 4) : null;
    const ex = this.ex;
    ex.open(head.method, head.target, head.authority, head.fields, false, head.bodyKind === 'none');
    if (ex.admit() === Admit.Queued) {
      this.waitingHead = head;
      this.waitingRest = rest;
      this.idleSince = 0;
      this.sock.pause();
      return;
    }
    this.startExchange(head, rest);
  }

  /** The request has its slot (or was refused one): the exchange decides where it goes. */
  private startExchange(head: RequestHead, rest: Buffer | null): void {
    this.req = head;
    this.rest = rest;
    this.attempted = false;
    this.idleSince = 0;
    if (!head.keepAlive || this.ctx.draining()) this.closeAfter = true;
    this.ex.start();
  }

  // ---- RequestCodec: what the exchange asks of this connection ----

  clientAddr(): string {
    return `${this.sock.remoteAddress ?? ''}:${this.sock.remotePort ?? 0}`;
  }

  requestEnded(): boolean {
    return this.reqDone;
  }

  clientGone(): boolean {
    return this.closed;
  }

  /** A slot of the destination's limit is ours: the waiting request starts. */
  admitted(): void {
    const head = this.waitingHead;
    const rest = this.waitingRest;
    this.waitingHead = null;
    this.waitingRest = null;
    if (head === null) return;
    this.startExchange(head, rest);
    this.updateReading();
  }

  sendAttempt(retry: boolean): void {
    const ex = this.ex;
    const head = this.req as RequestHead;
    this.resPhase = Res.Head;
    this.upReusable = true;
    this.retried = false;
    if (!retry) {
      this.reqHead = this.headText(head, ex.outTarget, ex.outFields);
      this.attempted = true;
      const rest = this.rest;
      this.rest = null;
      // The head and the body bytes that came with it leave in one write.
      const upSock = this.sendHead(true);
      this.requestBody(head, rest);
      upSock.uncork();
      return;
    }
    const upSock = this.sendHead(true);
    const replay = ex.replay;
    if (replay !== null) for (const b of replay) upSock.write(b);
    upSock.uncork();
    this.updateReading();
  }

  dropAttempt(): void {
    this.upReusable = false;
    this.releaseUpstream();
    this.rbuf = null;
    this.res = null;
    this.waitUpstreamDrain = false;
    this.waitClientDrain = false;
  }

  answerError(r: ErrorResponse): void {
    this.notSent();
    // After a malformed request or an unread body there is no telling where the next request starts.
    const close = this.closeAfter || this.clientEnded || !this.req || !this.reqDone;
    this.ctx.log.debug({ target: this.ex.upKey, status: r.status, err: r.message }, 'http/1 request failed');
    this.sock.write(http1ErrorResponse(r, close), 'latin1');
    this.endExchange(close, this.bodyUnread());
  }

  answerRedirect(status: number, location: string): void {
    this.notSent();
    const close = this.closeAfter || this.clientEnded || !this.reqDone;
    this.sock.write(
      `HTTP/1.1 ${status} ${reasonPhrase(status)}\r\nlocation: ${location}\r\ncontent-length: 0\r\n${close ? 'connection: close\r\n' : ''}\r\n`,
      'latin1',
    );
    this.endExchange(close, this.bodyUnread());
  }

  /** The request in flight has a body the client is still sending (the proxy has not read it all). */
  private bodyUnread(): boolean {
    return this.req !== null && !this.reqDone && !this.clientEnded;
  }

  /** Ends the connection after the answer while the client may still be sending its body: FIN now, the
   *  client's bytes dropped until it closes or the bound (LINGER_MS, LINGER_MAX_BYTES) is reached. */
  private linger(): void {
    this.lingering = true;
    this.buf = null;
    this.sock.end();
    this.sock.resume();
    this.lingerTimer = setTimeout(onLingerTimeout, LINGER_MS, this);
  }

  /** The linger bound was reached (or the client ended): the connection closes. */
  lingerOver(): void {
    if (this.lingerTimer !== null) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
    this.sock.destroy();
  }

  cutAnswer(err: ProxyError): number | undefined {
    this.ctx.log.debug({ target: this.ex.upKey, err: err.message }, 'http/1 exchange failed after the response began');
    // The exchange still counts this answer (as cut) once this returns: only the connection resets.
    this.resetState();
    this.sock.destroy();
    return undefined;
  }

  mirror(ticket: MirrorTicket): void {
    const ex = this.ex;
    mirrorHttp1(this.ctx.mtls, ticket, ex.method, ex.outTarget, ex.outFields);
  }

  crashed(err: unknown): void {
    const { metrics, direction } = this.ctx;
    const msg = err instanceof Error ? err.message : String(err);
    metrics.requestError(direction, this.ex.targetKey, new ProxyError(Codes.PROXY_FAULT, msg));
    this.ctx.log.error(
      { target: this.ex.targetKey, err: (err as Error)?.stack ?? String(err) },
      'http/1 request failed inside the proxy: connection closed',
    );
    this.sock.destroy();
    this.up?.socket.destroy();
  }

  /** The proxy answers a request nothing was sent for: one without a body is over, and the connection
   *  can go on with the bytes after it. */
  private notSent(): void {
    const head = this.req;
    if (head !== null && !this.attempted && head.bodyKind === 'none') {
      this.reqDone = true;
      this.buf = this.rest;
    }
    this.rest = null;
  }

  /** The exchange is over: the next request, or the connection ends (`close`; `unread`: with the
   *  request body still coming, which is then dropped for a while: linger). */
  private endExchange(close: boolean, unread: boolean): void {
    this.resetExchange();
    if (close && unread) return this.linger();
    if (close) {
      this.buf = null;
      this.sock.end();
      this.sock.destroySoon();
      return;
    }
    if (this.buf) this.nextRequest();
    this.updateReading();
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
    if (head.authority === '' && head.minor === 0) s += `host: ${this.ex.targetKey}\r\n`;
    return s + '\r\n';
  }

  private requestBody(head: RequestHead, rest: Buffer | null): void {
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
   * one). With `cork`, the socket is left corked for the caller to uncork. Returns the socket. A meshed
   * endpoint gets mesh TLS (to its app port, which its pod redirects to its proxy), pooled apart: per
   * expected identity, and apart from plaintext connections.
   */
  private sendHead(cork: boolean, fresh = false): Socket {
    const { pool, cfg } = this.ctx;
    const ex = this.ex;
    const serverId = ex.serverId;
    const poolKey = serverId !== undefined ? `tls\0${ex.upKey}\0${serverId}` : ex.upKey;
    const pooled = fresh ? undefined : pool.acquire(poolKey);
    if (pooled) {
      this.up = pooled;
      pooled.owner = this;
      if (cork) pooled.socket.cork();
      pooled.socket.write(this.reqHead, 'latin1');
      return pooled.socket;
    }
    const connectStarted = performance.now();
    const c = connectUpstream(
      ex.upAddr,
      ex.upKey,
      cfg.connectTimeoutMs,
      () => {
        this.connecting = null;
        // The balancer learns the endpoint's answer time, not what setting up a connection (and its
        // mTLS handshake) cost once: one slow first sample would otherwise starve a new endpoint for
        // as long as the peak takes to decay (tens of seconds).
        if (ex.ep !== null) ex.epStart += performance.now() - connectStarted;
      },
      (err) => {
        this.connecting = null;
        const up = this.up;
        if (up && up.socket === c.socket) {
          up.owner = null;
          this.up = null;
        }
        this.fail(err, 'connect-failure');
      },
      serverId !== undefined && this.ctx.mtls !== undefined
        ? { tls: this.ctx.mtls, serverId, alpn: MESH_ALPN.http1 }
        : undefined,
      { cfg, direction: this.ctx.direction },
    );
    this.connecting = c;
    const up = pool.adopt(c.socket, poolKey);
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
    // Kept (by reference) for a retry while it fits; a longer body is never replayed.
    if (part.length && this.ex.replay !== null) this.ex.keep(part);
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
    if (this.lingering) return this.lingerOver();
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

  private clientClosed(): void {
    this.closed = true;
    if (this.drainTimer !== null) {
      clearTimeout(this.drainTimer);
      this.drainTimer = null;
    }
    this.ctx.conns.delete(this);
    this.clearTimers();
    this.waitingHead = null;
    this.waitingRest = null;
    // A client that leaves after the answer's head is counted as HTTP/2 counts a reset: cancelled.
    this.ex.abandon(this.ex.responded);
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
              `upstream ${this.ex.targetKey}: response head larger than ${MAX_RESPONSE_HEAD} bytes`,
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
          this.ex.interimSent = true;
        }
        if (rest.length === 0) {
          this.rbuf = null;
          return;
        }
        rbuf = rest;
        continue;
      }
      this.rbuf = null;
      // The status line decides: the breaker learns from it, and (routes only) a retryable answer is
      // dropped before any byte of it reaches the client.
      if (!this.ex.answerHead(res.status, undefined)) return;
      this.res = res;
      this.ex.headSent();
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
    const m = this.ex.rule?.filters.response;
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
    this.fail(
      new ProxyError(
        this.resPhase === Res.Head && !this.rbuf ? Codes.CONNECT_REFUSED : Codes.UPSTREAM_PROTOCOL,
        `upstream ${this.ex.upKey}: connection ${code ? `failed (${code})` : 'closed'} ${why}`,
      ),
      this.resPhase === Res.Head ? 'reset' : null,
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
    if (this.headTimer) {
      clearTimeout(this.headTimer);
      this.headTimer = null;
    }
    if (this.lingerTimer !== null) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
    }
  }

  private resetExchange(): void {
    this.ex.reset();
    this.resetState();
  }

  /** The connection's own state of an exchange, back to idle (the Exchange's is reset apart). */
  private resetState(): void {
    this.idleSince = performance.now();
    this.req = null;
    this.rest = null;
    this.res = null;
    this.reqChunks = null;
    this.resChunks = null;
    this.resPhase = Res.Idle;
    this.rbuf = null;
    this.reqDone = false;
    this.dechunk = false;
    this.waitUpstreamDrain = false;
    this.waitClientDrain = false;
  }

  private finishExchange(): void {
    // The upstream answered before the request body ended: the rest of it is dropped while we close.
    const unread = this.bodyUnread();
    this.ex.answered(false, undefined);
    this.releaseUpstream();
    this.clearTimers();
    this.resetExchange();
    if (unread) return this.linger();
    if (this.closeAfter || this.clientEnded) {
      this.buf = null;
      this.sock.end();
      return;
    }
    if (this.buf) this.nextRequest();
    this.updateReading();
  }

  /**
   * The rescue point: every error of this connection ends here, and goes to the exchange (which may retry
   * a failed attempt, `kind` saying how it failed). Before a response head went out the client gets the
   * error's status (answerError); after, the connection is cut (cutAnswer).
   */
  private fail(err: unknown, kind: FailureKind | null = null): void {
    if (this.closed) return;
    this.ex.fail(err, kind);
  }

  /** 101 Switching Protocols or a CONNECT tunnel: from here on, bytes both ways. */
  private tunnel(fromUpstream: Buffer): void {
    const up = this.up as UpstreamConn;
    this.up = null;
    this.clearTimers();
    this.ex.answered(false, undefined);
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
