// Test harness for H2Connection (tests and bench only): a loopback server of our connections, a client of
// ours, an echo/test handler, a collecting client handler, and a raw peer that writes crafted frames.
import { createHash } from 'node:crypto';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { H2Connection, type H2ConnectionOptions, type H2Handler, type H2Stream } from './connection.js';
import { FrameReader, PREFACE, settingsAckFrame, settingsFrame } from './frames.js';
import { HeaderList } from './hpack.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Deterministic bytes, so both ends can check a body without sending its hash. */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

export function fieldsOf(list: HeaderList): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < list.length; i++) out[list.names[i] as string] = list.values[i] as string;
  return out;
}

export function headers(pairs: Record<string, string>): HeaderList {
  const l = new HeaderList();
  for (const [k, v] of Object.entries(pairs)) l.add(k, v);
  return l;
}

/** Per-stream state of the test server's handler. */
interface EchoState {
  path: string;
  /** Bytes received but not returned to the peer's window (write() said stop). */
  held: number;
  hash: ReturnType<typeof createHash> | null;
  received: number;
}

/**
 * The test server's behaviour, by :path. /echo: the body back (flow-controlled: bytes are consumed only
 * once our write accepted them). /size/N: N bytes of pattern(N). /trailers: body "ok" and trailers with
 * the request body's sha256. /info: a 103 then 200. /reset: RST_STREAM CANCEL. /hang: no answer.
 * /hold: no answer, and the body is never consumed.
 * Anything else: 200 with a 1 kB body (the bench's shape).
 */
export class EchoHandler implements H2Handler {
  conn!: H2Connection;
  closed: Promise<Error | undefined>;
  private resolveClosed!: (err: Error | undefined) => void;
  resets: number[] = [];
  static readonly KB = pattern(1024, 7);

  constructor() {
    this.closed = new Promise((r) => (this.resolveClosed = r));
  }

  onHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    const path = fieldsOf(fields)[':path'] ?? '/';
    const st: EchoState = { path, held: 0, hash: path === '/trailers' ? createHash('sha256') : null, received: 0 };
    stream.user = st;
    if (path === '/reset') return this.conn.reset(stream, 0x8);
    if (path === '/hang' || path === '/hold') return;
    if (path === '/info') this.conn.respond(stream, headers({ ':status': '103', link: '</a>; rel=preload' }), false);
    if (path === '/echo') {
      this.conn.respond(stream, headers({ ':status': '200', 'content-type': 'application/octet-stream' }), false);
      if (endStream) this.conn.write(stream, Buffer.alloc(0), true);
      return;
    }
    if (endStream) this.finish(stream, st);
  }

  private finish(stream: H2Stream, st: EchoState): void {
    const c = this.conn;
    if (st.path === '/trailers') {
      c.respond(stream, headers({ ':status': '200' }), false);
      c.write(stream, Buffer.from('ok'), false);
      c.trailers(stream, headers({ 'x-sha256': st.hash?.digest('hex') ?? '', 'x-bytes': String(st.received) }));
      return;
    }
    const m = /^\/size\/(\d+)$/.exec(st.path);
    const body = m ? pattern(Number(m[1])) : EchoHandler.KB;
    c.respond(stream, headers({ ':status': '200', 'content-length': String(body.length) }), false);
    c.write(stream, body, true);
  }

  onData(stream: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    const st = stream.user as EchoState;
    st.received += len;
    if (st.path === '/hold') return; // never consumed: the peer's windows only shrink
    if (st.path === '/echo') {
      if (this.conn.write(stream, buf.subarray(off, off + len), endStream)) this.conn.consumed(stream, len);
      else st.held += len;
      return;
    }
    st.hash?.update(buf.subarray(off, off + len));
    this.conn.consumed(stream, len);
    if (endStream) this.finish(stream, st);
  }

  onTrailers(stream: H2Stream): void {
    this.finish(stream, stream.user as EchoState);
  }

  onReset(_stream: H2Stream, code: number): void {
    this.resets.push(code);
  }

  onWritable(stream: H2Stream): void {
    const st = stream.user as EchoState;
    const n = st.held;
    st.held = 0;
    this.conn.consumed(stream, n);
  }

  onClose(err?: Error): void {
    this.resolveClosed(err);
  }
}

export interface TestServer {
  port: number;
  conns: H2Connection[];
  handlers: EchoHandler[];
  close(): Promise<void>;
}

/** A loopback server whose every connection is one of ours with an EchoHandler (or `make`'s handler). */
export async function serve(
  options: Partial<H2ConnectionOptions> = {},
  make: () => H2Handler & { conn?: H2Connection } = () => new EchoHandler(),
): Promise<TestServer> {
  const conns: H2Connection[] = [];
  const handlers: EchoHandler[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const h = make();
    const c = new H2Connection(socket, h, { ...options, role: 'server' });
    h.conn = c;
    conns.push(c);
    if (h instanceof EchoHandler) handlers.push(h);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    conns,
    handlers,
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** What a client stream got. */
export interface Exchange {
  stream: H2Stream | null;
  status: string;
  headers: Record<string, string>;
  informational: Record<string, string>[];
  body: Buffer[];
  trailers: Record<string, string> | null;
  reset: number;
  done: Promise<void>;
  finish(): void;
  bodyBytes(): Buffer;
}

function exchange(): Exchange {
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const ex: Exchange = {
    stream: null,
    status: '',
    headers: {},
    informational: [],
    body: [],
    trailers: null,
    reset: -1,
    done,
    finish,
    bodyBytes: () => Buffer.concat(ex.body),
  };
  return ex;
}

/** A client handler that collects each stream's response into an Exchange (stream.user). */
export class CollectHandler implements H2Handler {
  conn!: H2Connection;
  closed: Promise<Error | undefined>;
  private resolveClosed!: (err: Error | undefined) => void;
  goaways: [number, number][] = [];
  pings: number[] = [];
  ready: Promise<void>;
  private resolveReady!: () => void;
  capacity = 0;
  /** Writers waiting for onWritable, by stream id. */
  private writable = new Map<number, () => void>();

  constructor() {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.ready = new Promise((r) => (this.resolveReady = r));
  }

  /** Sends a request and, when given, a body in `chunk`-byte writes honouring backpressure. */
  async request(
    fields: Record<string, string>,
    body?: Buffer,
    chunk = 16384,
    trailers?: HeaderList,
  ): Promise<Exchange> {
    const ex = exchange();
    const noBody = body === undefined && trailers === undefined;
    const s = this.conn.request(headers(fields), noBody);
    if (s === null) throw new Error('connection full');
    ex.stream = s;
    s.user = ex;
    if (body !== undefined) {
      for (let i = 0; i < body.length; i += chunk) {
        const end = i + chunk >= body.length && trailers === undefined;
        if (!this.conn.write(s, body.subarray(i, i + chunk), end)) {
          await new Promise<void>((r) => this.writable.set(s.id, r));
        }
        if (s.closed) break;
      }
      if (body.length === 0 && trailers === undefined) this.conn.write(s, body, true);
    }
    if (trailers !== undefined && !s.closed) this.conn.trailers(s, trailers);
    await ex.done;
    return ex;
  }

  onHeaders(stream: H2Stream, fields: HeaderList, endStream: boolean): void {
    const ex = stream.user as Exchange;
    ex.headers = fieldsOf(fields);
    ex.status = ex.headers[':status'] ?? '';
    if (endStream) ex.finish();
  }
  onInformational(stream: H2Stream, fields: HeaderList): void {
    (stream.user as Exchange).informational.push(fieldsOf(fields));
  }
  onData(stream: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    const ex = stream.user as Exchange;
    ex.body.push(Buffer.from(buf.subarray(off, off + len)));
    this.conn.consumed(stream, len);
    if (endStream) ex.finish();
  }
  onTrailers(stream: H2Stream, fields: HeaderList): void {
    const ex = stream.user as Exchange;
    ex.trailers = fieldsOf(fields);
    ex.finish();
  }
  onReset(stream: H2Stream, code: number): void {
    const ex = stream.user as Exchange | null;
    if (ex === null) return;
    ex.reset = code;
    ex.finish();
    this.writable.get(stream.id)?.();
  }
  onWritable(stream: H2Stream): void {
    const w = this.writable.get(stream.id);
    this.writable.delete(stream.id);
    w?.();
  }
  onGoAway(last: number, code: number): void {
    this.goaways.push([last, code]);
  }
  onCapacity(): void {
    this.capacity++;
  }
  onReady(): void {
    this.resolveReady();
  }
  onPing(rtt: number): void {
    this.pings.push(rtt);
  }
  onClose(err?: Error): void {
    this.resolveClosed(err);
  }
}

/** A client connection of ours to `port`, ready (peer settings received). */
export async function connect(
  port: number,
  options: Partial<H2ConnectionOptions> = {},
): Promise<{ conn: H2Connection; h: CollectHandler; socket: net.Socket }> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const h = new CollectHandler();
  const conn = new H2Connection(socket, h, { ...options, role: 'client' });
  h.conn = conn;
  await h.ready;
  return { conn, h, socket };
}

/** A frame as the raw peer saw it. */
export interface RawFrame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** A hand-driven client: writes whatever bytes a test crafts, and records every frame it gets back. */
export class RawPeer {
  readonly frames: RawFrame[] = [];
  closed = false;
  private waiters: (() => void)[] = [];
  private readonly reader = new FrameReader({ maxFrameSize: 1 << 24 });

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.reader.push(chunk);
      while (this.reader.next()) {
        const r = this.reader;
        this.frames.push({ type: r.type, flags: r.flags, streamId: r.streamId, payload: Buffer.from(r.payload) });
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** Connects and sends the preface with `settings` (then ACKs the server's SETTINGS when `ack`). */
  static async connect(port: number, settings: [number, number][] = [], ack = true): Promise<RawPeer> {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    return RawPeer.over(socket, settings, ack);
  }

  /** The same over a socket already connected (a TLS socket whose ALPN said h2, say). */
  static async over(socket: net.Socket, settings: [number, number][] = [], ack = true): Promise<RawPeer> {
    const p = new RawPeer(socket);
    p.send(PREFACE, settingsFrame(settings));
    if (ack) {
      await p.waitFor((f) => f.type === 4 && (f.flags & 1) === 0);
      p.send(settingsAckFrame());
    }
    return p;
  }

  send(...bufs: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(bufs));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves with the first frame (from the start) that matches, or null if the socket closes first. */
  async waitFor(pred: (f: RawFrame) => boolean, timeoutMs = 5000): Promise<RawFrame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.find(pred);
      if (f !== undefined) return f;
      if (this.closed) return null;
      if (Date.now() > deadline) throw new Error('raw peer: timed out waiting for a frame');
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50).unref();
      });
    }
  }

  /** The GOAWAY's error code, waiting for it (or -1 if the socket closes without one). */
  async goAwayCode(timeoutMs = 5000): Promise<number> {
    const f = await this.waitFor((x) => x.type === 7, timeoutMs);
    return f === null ? -1 : f.payload.readUInt32BE(4);
  }

  async closedSocket(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('raw peer: socket not closed');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}
