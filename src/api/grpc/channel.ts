// A small gRPC client over node:http2 for the API's own calls (the proxy's destination and policy
// watches, its Certify): one HTTP/2 connection per channel, opened when a call needs it and again after
// it was lost; calls with gRPC's framing (a 5-byte prefix per message: compressed flag, big-endian
// length), grpc-timeout, the status from trailers (or from a trailers-only answer), and keepalive pings.
// With `tls` (what the proxy always gives: the control plane serves only TLS) every connection is TLS 1.3
// to a server whose identity was checked first (./tls.ts), presenting the client's certificate once it
// has one. What the API does not use is left out: client streaming, compression, metadata. It exists so
// the proxy does not load @grpc/grpc-js; the control plane's server stays grpc-js, and the tests run this
// client against it. https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md
import http2 from 'node:http2';
import { parseAddr } from '../../core/addr.js';
import { ChannelTlsError, connectTls, type ChannelTls, type ClientCertificate } from './tls.js';
import {
  GrpcStatus,
  grpcMessageText,
  grpcStatusName,
  grpcStatusOf,
  grpcStatusOfHttp,
  grpcStatusOfReset,
} from './protocol.js';

/** A method of a service: its path (`/package.Service/Method`) and how its messages are encoded. */
export interface Method<Req, Res> {
  readonly path: string;
  encode(request: Req): Buffer;
  decode(bytes: Buffer): Res;
}

export interface Status {
  readonly code: number;
  readonly details: string;
}

/** A call that did not end with OK (a unary call's rejection). */
export class GrpcError extends Error {
  override name = 'GrpcError';
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${grpcStatusName(code)}: ${details}`);
  }
}

export interface CallHandlers<Res> {
  /** Each response message, in order. */
  message(m: Res): void;
  /** Exactly once, after the last message; never from within `call()` itself. */
  end(s: Status): void;
}

export interface Call {
  /** Ends the call with CANCELLED (the server sees RST_STREAM CANCEL); nothing once it has ended. */
  cancel(): void;
}

export interface CallOptions {
  /** The call's deadline from now (ms), sent as grpc-timeout; DEADLINE_EXCEEDED when it passes. */
  readonly timeoutMs?: number;
}

export interface ChannelOptions {
  /** After a connection attempt failed, calls made within this long fail at once with UNAVAILABLE
   *  instead of each trying again (ms, default 250): many watches retrying together make one attempt. */
  readonly reconnectDelayMs?: number;
  /** Time allowed to connect (ms, default 20000, as grpc's minimum connect timeout). */
  readonly connectTimeoutMs?: number;
  /** While calls are open, ping the server this often (ms, default 30000; 0: never), and drop the
   *  connection when a ping is not answered within keepaliveTimeoutMs (default 10000), so that a server
   *  that vanished without closing the connection is noticed. */
  readonly keepaliveMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /** A connection with no call open for this long is closed (ms, default 5 min). */
  readonly idleMs?: number;
  /** Largest response message accepted (bytes, default 4 MiB, as grpc's); larger ends the call with
   *  RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes?: number;
  /** TLS to the server, its identity checked (./tls.ts). Without it the channel speaks h2c: only the
   *  channel's own tests do (the proxy's settings refuse a control plane address without trust anchors). */
  readonly tls?: ChannelTls;
}

const DEFAULTS: Required<Omit<ChannelOptions, 'tls'>> = {
  reconnectDelayMs: 250,
  connectTimeoutMs: 20_000,
  keepaliveMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  idleMs: 5 * 60_000,
  maxMessageBytes: 4 * 1024 * 1024,
};

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;

/** The connection of a channel, with what its calls need to know about how it ended. */
interface Connection {
  readonly session: http2.ClientHttp2Session;
  connected: boolean;
  /** Why it failed or closed, for the details of the calls it takes down. */
  lostReason: string | undefined;
  /** Puts a TLS failure in the channel's terms (an untrusted or wrong server). */
  describe: (err: Error) => Error;
}

export class GrpcChannel {
  readonly #o: Required<Omit<ChannelOptions, 'tls'>>;
  readonly #tls: ChannelTls | undefined;
  readonly #calls = new Set<ChannelCall<unknown>>();
  #clientCertificate: ClientCertificate | undefined;
  readonly #certificateListeners = new Set<() => void>();
  #conn: Connection | undefined;
  /** When the last connection attempt failed (performance.now() ms), and why. */
  #failedAt = -Infinity;
  #failure = '';
  #idleTimer: NodeJS.Timeout | undefined;
  #closed = false;

  /** `target`: `host:port` (`[v6]:port`) of a gRPC server (TLS with `o.tls`). */
  constructor(
    readonly target: string,
    o: ChannelOptions = {},
  ) {
    const { tls, ...rest } = o;
    this.#o = { ...DEFAULTS, ...rest };
    this.#tls = tls;
  }

  /** The certificate new connections present (undefined before the first). */
  clientCertificate(): ClientCertificate | undefined {
    return this.#clientCertificate;
  }

  /**
   * Presents `c` from now on: the current connection is retired (new calls make a new one, with `c`),
   * the listeners of onClientCertificate are told (they re-open their streams on it), and the old
   * connection is closed once the calls still on it end. A TLS channel only.
   */
  setClientCertificate(c: ClientCertificate): void {
    if (this.#tls === undefined) throw new Error(`channel to ${this.target}: a client certificate needs tls`);
    const now = this.#clientCertificate;
    if (now !== undefined && now.keyPem === c.keyPem && now.certChainPem === c.certChainPem) return;
    this.#clientCertificate = c;
    if (this.#closed) return;
    const old = this.#conn;
    this.#conn = undefined;
    // A connection that failed without the certificate may succeed with it: no waiting for the retry.
    this.#failedAt = -Infinity;
    for (const fn of [...this.#certificateListeners]) fn();
    old?.session.close();
  }

  /** Calls `fn` after each new client certificate, once new calls go out with it; returns what stops it. */
  onClientCertificate(fn: () => void): () => void {
    this.#certificateListeners.add(fn);
    return () => this.#certificateListeners.delete(fn);
  }

  /** Starts a call whose response is a stream of messages (or one message: see unary). */
  call<Req, Res>(method: Method<Req, Res>, request: Req, handlers: CallHandlers<Res>, opts: CallOptions = {}): Call {
    const call = new ChannelCall(this, method, handlers, this.#o.maxMessageBytes);
    this.#calls.add(call as ChannelCall<unknown>);
    clearTimeout(this.#idleTimer);
    let body: Buffer;
    try {
      body = method.encode(request);
    } catch (err) {
      call.finish(GrpcStatus.INTERNAL, `request could not be encoded: ${(err as Error).message}`);
      return call;
    }
    if (this.#closed) {
      call.finish(GrpcStatus.UNAVAILABLE, 'channel closed');
      return call;
    }
    if (this.#conn === undefined && performance.now() - this.#failedAt < this.#o.reconnectDelayMs) {
      call.finish(GrpcStatus.UNAVAILABLE, this.#failure);
      return call;
    }
    const conn = this.#connection();
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': method.path,
      'content-type': 'application/grpc',
      te: 'trailers',
    };
    if (opts.timeoutMs !== undefined) headers['grpc-timeout'] = grpcTimeout(opts.timeoutMs);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = conn.session.request(headers);
    } catch (err) {
      call.finish(GrpcStatus.UNAVAILABLE, (err as Error).message);
      return call;
    }
    call.attach(stream, conn, opts.timeoutMs);
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0; // not compressed
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    stream.end(frame);
    return call;
  }

  /** One request, one response; rejects with a GrpcError for any status other than OK. */
  unary<Req, Res>(method: Method<Req, Res>, request: Req, opts: CallOptions = {}): Promise<Res> {
    return new Promise((resolve, reject) => {
      const got: Res[] = [];
      this.call(
        method,
        request,
        {
          message: (m) => got.push(m),
          end: (s) => {
            if (s.code !== GrpcStatus.OK) reject(new GrpcError(s.code, s.details));
            else if (got.length !== 1)
              reject(new GrpcError(GrpcStatus.INTERNAL, `expected one response message, got ${got.length}`));
            else resolve(got[0] as Res);
          },
        },
        opts,
      );
    });
  }

  /** Cancels every call and closes the connection (at once: nothing is left on it); later calls end
   *  with UNAVAILABLE. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#idleTimer);
    for (const c of [...this.#calls]) c.cancel();
    this.#conn?.session.destroy();
    this.#conn = undefined;
  }

  /** @internal A call has ended. */
  ended(call: ChannelCall<unknown>): void {
    this.#calls.delete(call);
    if (this.#calls.size > 0 || this.#conn === undefined || this.#closed) return;
    const conn = this.#conn;
    this.#idleTimer = setTimeout(() => {
      if (this.#calls.size > 0 || this.#conn !== conn) return;
      this.#conn = undefined;
      conn.session.close();
    }, this.#o.idleMs);
    this.#idleTimer.unref();
  }

  /** The connection new calls go on: the current one, or a new one (its calls wait while it connects). */
  #connection(): Connection {
    if (this.#conn !== undefined && !this.#conn.session.closed && !this.#conn.session.destroyed) return this.#conn;
    let describe = (err: Error): Error => err;
    let session: http2.ClientHttp2Session;
    const tlsSettings = this.#tls;
    if (tlsSettings === undefined) {
      session = http2.connect(`http://${this.target}`, { settings: { enablePush: false } });
    } else {
      const addr = parseAddr(this.target);
      const cert = this.#clientCertificate;
      // http2 waits for the socket's 'secureConnect' before it writes its preface: that event comes only
      // once the server's identity was checked.
      session = http2.connect(`https://${this.target}`, {
        settings: { enablePush: false },
        createConnection: () => {
          const c = connectTls(addr?.host ?? this.target, addr?.port ?? 0, tlsSettings, cert);
          describe = c.describe;
          return c.socket;
        },
      });
    }
    const conn: Connection = { session, connected: false, lostReason: undefined, describe: (e) => describe(e) };
    this.#conn = conn;
    const connectTimer = setTimeout(
      () => session.destroy(new Error(`connect timed out after ${this.#o.connectTimeoutMs} ms`)),
      this.#o.connectTimeoutMs,
    );
    connectTimer.unref();
    session.on('connect', () => {
      clearTimeout(connectTimer);
      conn.connected = true;
      this.#failedAt = -Infinity;
      this.#keepalive(conn);
    });
    session.on('error', (err: Error) => {
      conn.lostReason ??= reason(conn.describe(err));
    });
    // A server going away (GOAWAY) finishes the calls it accepted; new calls need a new connection.
    session.on('goaway', () => {
      if (this.#conn === conn) this.#conn = undefined;
    });
    session.on('close', () => {
      clearTimeout(connectTimer);
      conn.lostReason ??= conn.connected ? 'connection closed' : 'connection closed before it was established';
      if (this.#conn === conn) this.#conn = undefined;
      if (!conn.connected) {
        this.#failedAt = performance.now();
        this.#failure = `${this.target}: ${conn.lostReason}`;
      }
    });
    return conn;
  }

  /** Pings while calls are open; a ping unanswered in time drops the connection (its calls end UNAVAILABLE). */
  #keepalive(conn: Connection): void {
    if (this.#o.keepaliveMs <= 0) return;
    let waiting = false;
    const timer = setInterval(() => {
      if (waiting || this.#calls.size === 0 || conn.session.destroyed) return;
      waiting = true;
      const deadline = setTimeout(() => {
        conn.lostReason ??= `keepalive ping not answered within ${this.#o.keepaliveTimeoutMs} ms`;
        conn.session.destroy();
      }, this.#o.keepaliveTimeoutMs);
      deadline.unref();
      const sent = conn.session.ping(() => {
        waiting = false;
        clearTimeout(deadline);
      });
      if (!sent) {
        waiting = false;
        clearTimeout(deadline);
      }
    }, this.#o.keepaliveMs);
    timer.unref();
    conn.session.once('close', () => clearInterval(timer));
  }
}

/** Why a connection failed, for the calls' details: a TLS refusal with its code (docs/errors.md). */
function reason(err: Error): string {
  return err instanceof ChannelTlsError ? `${err.message} [${err.code}]` : err.message;
}

/** grpc-timeout: at most 8 digits and a unit (m: milliseconds, S: seconds). */
function grpcTimeout(ms: number): string {
  const whole = Math.max(0, Math.ceil(ms));
  return whole < 1e8 ? `${whole}m` : `${Math.min(99_999_999, Math.ceil(whole / 1000))}S`;
}

class ChannelCall<Res> implements Call {
  #stream: http2.ClientHttp2Stream | undefined;
  #conn: Connection | undefined;
  #timer: NodeJS.Timeout | undefined;
  #done = false;
  /** The HTTP status of the response head, once it came. */
  #httpStatus: number | undefined;
  /** grpc-status (and grpc-message) from the trailers or a trailers-only head. */
  #received: Status | undefined;
  #streamError: (Error & { code?: string }) | undefined;
  // Framing: bytes received and not yet a whole prefix or message.
  readonly #chunks: Buffer[] = [];
  #have = 0;
  #need = 5;
  #inPrefix = true;

  constructor(
    private readonly channel: GrpcChannel,
    private readonly method: Method<unknown, Res>,
    private readonly handlers: CallHandlers<Res>,
    private readonly maxMessageBytes: number,
  ) {}

  attach(stream: http2.ClientHttp2Stream, conn: Connection, timeoutMs: number | undefined): void {
    this.#stream = stream;
    this.#conn = conn;
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(
        () => this.finish(GrpcStatus.DEADLINE_EXCEEDED, `deadline of ${timeoutMs} ms exceeded`),
        timeoutMs,
      );
      this.#timer.unref();
    }
    stream.on('response', (headers) => {
      const status = headers[':status'];
      this.#httpStatus = typeof status === 'number' ? status : Number(status);
      if (this.#httpStatus === 200) {
        const ct = headers['content-type'];
        if (typeof ct !== 'string' || !ct.startsWith('application/grpc')) {
          this.finish(
            GrpcStatus.UNKNOWN,
            `the server answered with content-type ${ct ?? '(none)'}, not application/grpc`,
          );
          return;
        }
      }
      this.#statusFrom(headers);
    });
    stream.on('trailers', (trailers) => this.#statusFrom(trailers));
    stream.on('data', (chunk: Buffer) => this.#data(chunk));
    stream.on('error', (err: Error) => {
      this.#streamError ??= err;
    });
    stream.on('close', () => this.#streamClosed(stream));
  }

  cancel(): void {
    this.finish(GrpcStatus.CANCELLED, 'cancelled by the client');
  }

  /** Ends the call once: closes the stream if it is open, and calls `end` (later, never re-entrantly). */
  finish(code: number, details: string): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#timer);
    const stream = this.#stream;
    if (stream !== undefined && !stream.closed) stream.close(NGHTTP2_CANCEL);
    this.channel.ended(this as ChannelCall<unknown>);
    queueMicrotask(() => this.handlers.end({ code, details }));
  }

  #statusFrom(headers: http2.IncomingHttpHeaders): void {
    const code = grpcStatusOf(headers);
    if (code === undefined) return;
    const message = headers['grpc-message'];
    this.#received = { code, details: typeof message === 'string' ? grpcMessageText(message) : '' };
  }

  #data(chunk: Buffer): void {
    if (this.#done) return;
    this.#chunks.push(chunk);
    this.#have += chunk.length;
    while (!this.#done && this.#have >= this.#need) {
      const bytes = this.#take(this.#need);
      if (this.#inPrefix) {
        if ((bytes[0] as number) !== 0) {
          this.finish(GrpcStatus.INTERNAL, 'the server sent a compressed message, and this client accepts none');
          return;
        }
        const length = bytes.readUInt32BE(1);
        if (length > this.maxMessageBytes) {
          this.finish(
            GrpcStatus.RESOURCE_EXHAUSTED,
            `received a message larger than the maximum (${length} vs. ${this.maxMessageBytes} bytes)`,
          );
          return;
        }
        this.#need = length;
        this.#inPrefix = false;
        continue;
      }
      this.#need = 5;
      this.#inPrefix = true;
      let m: Res;
      try {
        m = this.method.decode(bytes);
      } catch (err) {
        this.finish(
          GrpcStatus.INTERNAL,
          `a response message of ${this.method.path} could not be decoded: ${(err as Error).message}`,
        );
        return;
      }
      this.handlers.message(m);
    }
  }

  /** The first `n` bytes received, removed from the buffer (copied only when they span chunks). */
  #take(n: number): Buffer {
    this.#have -= n;
    const first = this.#chunks[0];
    if (first !== undefined && first.length >= n) {
      if (first.length === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.#chunks[0] as Buffer;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    return out;
  }

  /** The stream is over: the status the server sent, or the one a gRPC client derives from how it ended. */
  #streamClosed(stream: http2.ClientHttp2Stream): void {
    if (this.#done) return;
    const partial = this.#have > 0 || !this.#inPrefix;
    if (this.#received !== undefined) {
      if (partial && this.#received.code === GrpcStatus.OK)
        this.finish(GrpcStatus.INTERNAL, 'the stream ended in the middle of a message');
      else this.finish(this.#received.code, this.#received.details);
      return;
    }
    if (this.#httpStatus !== undefined && this.#httpStatus !== 200) {
      this.finish(grpcStatusOfHttp(this.#httpStatus), `the server answered HTTP ${this.#httpStatus}`);
      return;
    }
    const err = this.#streamError;
    // A reset from the server is an error of this stream; anything else took the connection down.
    if (
      stream.rstCode !== undefined &&
      stream.rstCode !== NGHTTP2_NO_ERROR &&
      (err === undefined || err.code === 'ERR_HTTP2_STREAM_ERROR') &&
      this.#conn?.lostReason === undefined
    ) {
      this.finish(grpcStatusOfReset(stream.rstCode), `the server reset the stream (HTTP/2 error ${stream.rstCode})`);
      return;
    }
    // Node cancels the streams of a connection that failed with an error whose cause is the reason.
    const cause = err?.cause instanceof Error ? err.cause : err;
    const lost =
      this.#conn?.lostReason ?? (cause !== undefined ? reason(this.#conn?.describe(cause) ?? cause) : undefined);
    if (lost !== undefined || this.#httpStatus === undefined) {
      this.finish(
        GrpcStatus.UNAVAILABLE,
        `${this.channel.target}: ${lost ?? 'the connection closed before a response'}`,
      );
      return;
    }
    this.finish(GrpcStatus.INTERNAL, 'the stream ended without a grpc-status');
  }
}
