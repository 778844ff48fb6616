// A tiny HTTP/2 forwarder on H2Connection, for tests and the bench only: each downstream connection (server
// role) gets one upstream connection (client role); DATA moves as it is, heads are re-encoded, and window
// is returned to one side only once the other side's write accepted the bytes. It proves the API is
// enough to write a proxy on; the real one goes through the proxy's request layer.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { H2Connection, type H2ConnectionOptions, type H2Handler, type H2Stream } from './connection.js';
import { H2ErrorCode } from './errors.js';
import type { HeaderList } from './hpack.js';

/** The two streams of one forwarded request, and the bytes each side holds back from its peer. */
class Link {
  up: H2Stream | null = null;
  /** While waiting for an upstream stream: the request head, body pieces and trailers, in order. */
  head: HeaderList | null = null;
  headEnd = false;
  pending: Buffer[] | null = null;
  pendingEnd = false;
  pendingTrailers: HeaderList | null = null;
  /** Downstream bytes not yet returned (the upstream write said stop), and the same the other way. */
  heldDown = 0;
  heldUp = 0;
  constructor(readonly down: H2Stream) {}
}

/** Requests waiting for an upstream stream slot, at most this many per connection; more are refused. */
const MAX_WAITING = 1024;

export class TinyForwarder {
  readonly down: H2Connection;
  readonly up: H2Connection;
  private readonly waiting: Link[] = [];

  constructor(downSocket: Duplex, upSocket: Duplex, options: Partial<H2ConnectionOptions> = {}) {
    this.down = new H2Connection(downSocket, new DownHandler(this), { ...options, role: 'server' });
    this.up = new H2Connection(upSocket, new UpHandler(this), { ...options, role: 'client' });
  }

  /** Listens on `port` (0: any) and forwards every connection to `upstreamPort` on loopback. */
  static listen(port: number, upstreamPort: number, options: Partial<H2ConnectionOptions> = {}): net.Server {
    return net
      .createServer((socket) => {
        const upSocket = net.connect(upstreamPort, '127.0.0.1');
        upSocket.on('error', () => socket.destroy());
        new TinyForwarder(socket, upSocket, options);
      })
      .listen(port, '127.0.0.1');
  }

  /** Opens the upstream stream of `link`, or queues it while the upstream connection is full. */
  open(link: Link): void {
    const us = this.up.request(link.head as HeaderList, link.headEnd);
    if (us === null) {
      if (this.waiting.length >= MAX_WAITING || this.up.isClosed) {
        this.down.reset(link.down, H2ErrorCode.REFUSED_STREAM);
        return;
      }
      this.waiting.push(link);
      return;
    }
    link.head = null;
    link.up = us;
    us.user = link;
    const pending = link.pending;
    if (pending !== null) {
      link.pending = null;
      let n = 0;
      let ok = true;
      for (let i = 0; i < pending.length; i++) {
        const b = pending[i] as Buffer;
        n += b.length;
        ok = this.up.write(us, b, link.pendingEnd && i === pending.length - 1);
      }
      if (pending.length === 0 && link.pendingEnd) this.up.write(us, Buffer.alloc(0), true);
      if (ok) this.down.consumed(link.down, n);
      else link.heldDown += n;
    }
    if (link.pendingTrailers !== null) this.up.trailers(us, link.pendingTrailers);
    link.pendingTrailers = null;
  }

  openWaiting(): void {
    while (this.waiting.length > 0 && !this.up.full) {
      const link = this.waiting.shift() as Link;
      if (!link.down.closed) this.open(link);
    }
  }
}

/** Downstream: requests come in, responses go out. */
class DownHandler implements H2Handler {
  constructor(private readonly f: TinyForwarder) {}

  onHeaders(ds: H2Stream, fields: HeaderList, endStream: boolean): void {
    const link = new Link(ds);
    ds.user = link;
    link.head = fields;
    link.headEnd = endStream;
    this.f.open(link);
  }

  onData(ds: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    const link = ds.user as Link;
    const piece = buf.subarray(off, off + len);
    if (link.up === null) {
      // Held (not consumed) until the upstream stream opens: the peer's window bounds it.
      (link.pending ??= []).push(piece);
      link.pendingEnd = endStream;
      return;
    }
    if (this.f.up.write(link.up, piece, endStream)) this.f.down.consumed(ds, len);
    else link.heldDown += len;
  }

  onTrailers(ds: H2Stream, fields: HeaderList): void {
    const link = ds.user as Link;
    if (link.up === null) link.pendingTrailers = fields;
    else this.f.up.trailers(link.up, fields);
  }

  onReset(ds: H2Stream, code: number): void {
    const link = ds.user as Link | null;
    if (link?.up != null) this.f.up.reset(link.up, code);
  }

  /** The downstream stream takes bytes again: return the upstream bytes we held back. */
  onWritable(ds: H2Stream): void {
    const link = ds.user as Link;
    const n = link.heldUp;
    link.heldUp = 0;
    if (link.up !== null) this.f.up.consumed(link.up, n);
  }

  onClose(): void {
    this.f.up.close();
  }
}

/** Upstream: responses come in, request bodies go out. */
class UpHandler implements H2Handler {
  constructor(private readonly f: TinyForwarder) {}

  onHeaders(us: H2Stream, fields: HeaderList, endStream: boolean): void {
    this.f.down.respond((us.user as Link).down, fields, endStream);
  }

  onInformational(us: H2Stream, fields: HeaderList): void {
    this.f.down.respond((us.user as Link).down, fields, false);
  }

  onData(us: H2Stream, buf: Buffer, off: number, len: number, endStream: boolean): void {
    const link = us.user as Link;
    if (this.f.down.write(link.down, buf.subarray(off, off + len), endStream)) this.f.up.consumed(us, len);
    else link.heldUp += len;
  }

  onTrailers(us: H2Stream, fields: HeaderList): void {
    this.f.down.trailers((us.user as Link).down, fields);
  }

  onReset(us: H2Stream, code: number): void {
    this.f.down.reset((us.user as Link).down, code);
  }

  onWritable(us: H2Stream): void {
    const link = us.user as Link;
    const n = link.heldDown;
    link.heldDown = 0;
    this.f.down.consumed(link.down, n);
  }

  onCapacity(): void {
    this.f.openWaiting();
  }

  onReady(): void {
    this.f.openWaiting();
  }

  onClose(): void {
    this.f.down.close();
  }
}
