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
import type { Balancer, Endpoint } from '../balance/balancer.js';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from '../tls/alpn.js';
import type { MeshTls } from '../transport/mtls.js';

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
}

/** The header that tells the app who the client is: set by the inbound proxy from the identity mesh TLS
 *  verified, and removed from every request that arrives otherwise (DESIGN.md's security rule). */
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
const badUpstreamBody = (m: string) => new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream sent an invalid response body: ${m}`);

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
  /** Inbound with mTLS on: remove the client identity header from requests (and set it from `clientId`). */
  private readonly identityHeader: boolean;
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

  // The exchange in progress (one at a time).
  private req: RequestHead | null = null;
  private reqHead = '';
  private reqDone = false;
  private reqRemaining = 0;
  private reqChunks: ChunkedScanner | null = null;
  private stats: RouteStats | null = null;
  private startedAt = 0;
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
    this.fail(new ProxyError(Codes.HEADER_TIMEOUT, `request head not received within ${this.ctx.cfg.headerTimeoutMs}ms`));
  };
  private readonly onResTimeout = () => {
    this.resTimer = null;
    this.fail(new ProxyError(Codes.RESPONSE_TIMEOUT, `upstream ${this.upKey}: no response within ${this.ctx.cfg.responseTimeoutMs}ms`));
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
    /** A Service's endpoints: each request goes to the one it picks. Absent: to the original address. */
    private readonly balancer?: Balancer,
    /** Inbound over mesh TLS: the identity the client proved. */
    private readonly clientId?: SpiffeId,
  ) {
    this.targetKey = formatAddr(target);
    this.upAddr = target;
    this.upKey = this.targetKey;
    this.poolKey = this.targetKey;
    this.identityHeader = ctx.mtls !== undefined && ctx.direction === 'inbound';
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
    if ((this.buf !== null && this.req !== null) || this.waitUpstreamDrain) this.sock.pause();
    else this.sock.resume();
  }

  /**
   * Closes the connection if it has been idle (no request in flight, nothing buffered) since before
   * `limit`. The listener sweeps its connections with this instead of a socket timeout, whose timer
   * would be refreshed on every read and write of the hot path.
   */
  closeIfIdleSince(limit: number): void {
    if (this.idleSince !== 0 && this.idleSince < limit && !this.req && !this.buf) this.sock.destroy();
  }

  /** Shutdown: finish the exchange in flight, then close; close now if idle. */
  drain(): void {
    this.closeAfter = true;
    if (!this.req && !this.buf) this.sock.end();
  }

  // ---- client side ----

  private clientData(chunk: Buffer): void {
    if (this.closed) return;
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
    this.req = head;
    this.startedAt = performance.now();
    this.idleSince = 0;
    if (!head.keepAlive || this.ctx.draining()) this.closeAfter = true;
    const f = head.fields;
    let s = `${head.method} ${head.target} HTTP/1.1\r\n`;
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
    this.reqHead = s + '\r\n';
    this.resPhase = Res.Head;
    this.upReusable = true;
    this.retried = false;
    if (this.balancer !== undefined) {
      const ep = this.balancer.pick();
      if (ep === undefined) {
        this.stats = metrics.route(this.ctx.direction, this.targetKey, head.authority);
        this.stats.requests.inc();
        // Nothing was sent: a request without a body is over, and the connection can go on.
        if (head.bodyKind === 'none') {
          this.reqDone = true;
          this.buf = rest;
        }
        this.fail(new ProxyError(Codes.NO_ENDPOINTS, `${this.targetKey}${head.authority !== '' ? ` (${head.authority})` : ''}: no ready endpoints`));
        return;
      }
      this.ep = ep;
      this.epStart = ep.begin();
      this.upAddr = ep.addr;
      this.upKey = ep.key;
      // A meshed endpoint gets mesh TLS (to its app port, which its pod redirects to its proxy).
      if (ep.identity !== undefined && this.ctx.mtls !== undefined) {
        this.serverId = ep.identity as SpiffeId;
        this.poolKey = `tls\0${ep.key}\0${ep.identity}`;
      } else {
        this.serverId = undefined;
        this.poolKey = ep.key;
      }
    }
    this.stats = metrics.route(this.ctx.direction, this.targetKey, head.authority, this.clientId ?? this.serverId);
    this.stats.requests.inc();
    // The head and the body bytes that came with it leave in one write.
    const upSock = this.sendHead(true);
    this.requestBody(head, rest);
    upSock.uncork();
  }

  private requestBody(head: RequestHead, rest: Buffer | null): void {
    const { cfg } = this.ctx;
    if (cfg.responseTimeoutMs > 0) this.resTimer = setTimeout(this.onResTimeout, cfg.responseTimeoutMs);
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
    const c = connectUpstream(
      this.upAddr,
      this.upKey,
      cfg.connectTimeoutMs,
      () => {
        this.connecting = null;
      },
      (err) => {
        this.connecting = null;
        const up = this.up;
        if (up && up.socket === c.socket) {
          up.owner = null;
          this.up = null;
        }
        this.fail(err);
      },
      this.serverId !== undefined && this.ctx.mtls !== undefined ? { tls: this.ctx.mtls, serverId: this.serverId, alpn: MESH_ALPN.http1 } : undefined,
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

  private clientClosed(): void {
    this.closed = true;
    this.ctx.conns.delete(this);
    this.clearTimers();
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
          this.fail(new ProxyError(Codes.UPSTREAM_PROTOCOL, `upstream ${this.targetKey}: response head larger than ${MAX_RESPONSE_HEAD} bytes`));
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
        if (req.minor === 1) this.sock.write(this.responseHeadText(res, ''), 'latin1');
        if (rest.length === 0) {
          this.rbuf = null;
          return;
        }
        rbuf = rest;
        continue;
      }
      this.rbuf = null;
      if (this.resTimer) {
        clearTimeout(this.resTimer);
        this.resTimer = null;
      }
      this.res = res;
      (this.stats as RouteStats).response(res.status, performance.now() - this.startedAt);
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
    const f = res.fields;
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
    if (this.resPhase === Res.Head && !this.rbuf && up && up.uses > 1 && !this.retried && this.req.bodyKind === 'none') {
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
  }

  private resetExchange(): void {
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
    const responseStarted = this.res !== null;
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
      this.ctx.log.debug({ target: this.upKey, err: (err as Error).message }, 'http/1 exchange failed after the response began');
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
    stats.response(r.status, performance.now() - this.startedAt);
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
