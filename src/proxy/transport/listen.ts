// A listener (inbound or outbound): accepts redirected connections, finds where each was going,
// refuses loops, detects the protocol and hands the connection to HTTP/1, HTTP/2 or opaque TCP.
import net, { type Socket } from 'node:net';
import os from 'node:os';
import type { Logger } from '../../core/log.js';
import { formatAddr, normalizeHost, type SocketAddr } from '../../core/addr.js';
import { portListHas } from '../../core/ports.js';
import type { ProxyConfig } from '../config.js';
import type { Direction, ProxyMetrics } from '../metrics.js';
import { detect } from '../detect/detect.js';
import { ClientConn, type Http1Context } from '../http1/server.js';
import type { UpstreamPool } from '../http1/pool.js';
import { H2Proxy } from '../http2/server.js';
import { connectUpstream } from './connect.js';
import { originalDst } from './origdst.js';
import { joinSockets } from './tcp.js';
import type { Balancer, Endpoint } from '../balance/balancer.js';

/** What the outbound side needs from discovery (src/proxy/discover): for an original destination,
 *  whether the mesh knows it and, if so, a balancer over its ready endpoints. */
export interface Resolved {
  readonly known: boolean;
  readonly balancer: Balancer;
}
export interface Resolver {
  /** Synchronous when the destination is already watched; a promise for the first lookup. */
  resolve(dst: SocketAddr): Resolved | Promise<Resolved>;
}

export interface ListenerDeps {
  /** Outbound only: absent, every connection goes to its original destination. */
  readonly resolver?: Resolver;
  readonly cfg: ProxyConfig;
  readonly metrics: ProxyMetrics;
  readonly pool: UpstreamPool;
  readonly log: Logger;
  readonly draining: () => boolean;
  /** The proxy's own listening ports: a connection originally meant for one of them is a loop. */
  readonly ownPorts: () => readonly number[];
}

const LOCAL = /^(127\.|::1$|0\.0\.0\.0$|::$)/;

/** Whether `host` is an address of this host (network namespace): loopback, unspecified, or an interface's. */
function isLocalAddress(host: string): boolean {
  if (LOCAL.test(host)) return true;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.address === host) return true;
  }
  return false;
}

export class Listener {
  readonly server: net.Server;
  readonly h2: H2Proxy;
  readonly h1: Http1Context;
  /** Every accepted connection still open, whatever its protocol (for draining). */
  readonly sockets = new Set<Socket>();
  private warnedNoDst = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly deps: ListenerDeps,
    readonly direction: Direction,
  ) {
    const { cfg, metrics, log } = deps;
    this.h1 = { cfg, metrics, pool: deps.pool, direction, log, draining: deps.draining, conns: new Set() };
    this.h2 = new H2Proxy({ cfg, metrics, direction, log });
    // Idle keep-alive HTTP/1 connections are closed by a sweep, not by per-socket timers.
    this.sweeper = setInterval(() => {
      const limit = performance.now() - cfg.idleTimeoutMs;
      for (const c of this.h1.conns) c.closeIfIdleSince(limit);
    }, Math.max(100, Math.min(1000, cfg.idleTimeoutMs / 4)));
    this.sweeper.unref();
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (s) => this.accept(s));
    this.server.on('error', (err) => log.error({ direction, err: err.message }, 'listener error'));
  }

  listen(port: number, host: string): Promise<SocketAddr> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port } as SocketAddr);
      });
    });
  }

  private destination(s: Socket): SocketAddr | undefined {
    const { cfg, metrics, log } = this.deps;
    if (cfg.staticDestination) return cfg.staticDestination;
    let dst: SocketAddr;
    try {
      dst = originalDst(s);
    } catch (err) {
      if (!this.warnedNoDst) {
        this.warnedNoDst = true;
        log.warn(
          { direction: this.direction, err: (err as Error).message },
          'connection without an original destination (not redirected by iptables) refused; logged once',
        );
      }
      metrics.refusedTotal.inc({ direction: this.direction, reason: 'no_destination' });
      return undefined;
    }
    const own = this.deps.ownPorts();
    const local = normalizeHost(s.localAddress ?? '');
    // A loop: the connection was meant for one of the proxy's own ports on one of this pod's addresses.
    // The interface lookup runs only for connections to a proxy port, so the normal path pays nothing.
    if ((dst.host === local && dst.port === s.localPort) || (own.includes(dst.port) && (dst.host === local || isLocalAddress(dst.host)))) {
      metrics.refusedTotal.inc({ direction: this.direction, reason: 'loop' });
      log.debug({ direction: this.direction, dst: formatAddr(dst) }, 'connection to the proxy itself refused (loop)');
      return undefined;
    }
    return dst;
  }

  private accept(s: Socket): void {
    s.on('error', () => {}); // each protocol handler deals with failures; never crash on a peer's reset
    const target = this.destination(s);
    if (!target || this.deps.draining()) {
      s.resetAndDestroy();
      return;
    }
    const { metrics, resolver } = this.deps;
    const key = formatAddr(target);
    metrics.tcpFor(this.direction, key).track(s);
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    if (resolver === undefined || this.direction !== 'outbound') {
      this.serve(s, target, key, undefined);
      return;
    }
    const r = resolver.resolve(target);
    if (!(r instanceof Promise)) {
      this.serve(s, target, key, r.known ? r.balancer : undefined);
      return;
    }
    // The first connection to a destination waits (paused) for discovery's first answer.
    r.then(
      (d) => {
        if (!s.destroyed) this.serve(s, target, key, d.known ? d.balancer : undefined);
      },
      () => {
        if (!s.destroyed) this.serve(s, target, key, undefined);
      },
    );
  }

  /** Serves a connection: with a balancer (a destination the mesh knows), HTTP requests and opaque
   *  connections go to the endpoints it picks; without, to the original destination. */
  private serve(s: Socket, target: SocketAddr, key: string, balancer: Balancer | undefined): void {
    const { cfg, metrics } = this.deps;
    // Opaque when this proxy's list says so, or when the server's pod says so (discovery's hint).
    if (portListHas(cfg.opaquePorts, target.port) || (balancer !== undefined && balancer.endpoints.some((e) => e.protocolHint === 'OPAQUE'))) {
      this.opaque(s, target, key, Buffer.alloc(0), false, balancer);
      return;
    }
    s.resume();
    detect(s, { timeoutMs: cfg.detectTimeoutMs, maxBytes: cfg.detectMaxBytes }, (r) => {
      if (r.timedOut) metrics.detectTimeoutTotal.inc({ direction: this.direction });
      switch (r.protocol) {
        case 'http1':
          new ClientConn(this.h1, s, target, r.initial, r.ended, balancer);
          break;
        case 'h2':
          this.h2.handle(s, target, r.initial, balancer);
          break;
        default:
          // TLS that the app started, and everything else: bytes as they are.
          this.opaque(s, target, key, r.initial, r.ended, balancer);
      }
    });
  }

  /** Opaque TCP: balanced per connection when the destination has endpoints. */
  private opaque(s: Socket, target: SocketAddr, key: string, initial: Buffer, ended: boolean, balancer?: Balancer): void {
    s.pause();
    let ep: Endpoint | undefined;
    if (balancer !== undefined) {
      ep = balancer.pick();
      if (ep === undefined) {
        this.deps.log.debug({ target: key }, 'no ready endpoints; client reset');
        s.resetAndDestroy();
        return;
      }
    }
    const upAddr = ep?.addr ?? target;
    const upKey = ep?.key ?? key;
    const start = ep?.begin() ?? 0;
    const c = connectUpstream(
      upAddr,
      upKey,
      this.deps.cfg.connectTimeoutMs,
      (up) => {
        s.off('close', onEarlyClose);
        // Per connection, what the balancer learns from is the connect time (a connection's lifetime
        // says nothing about the endpoint).
        ep?.end(start, true);
        if (initial.length) up.write(initial);
        joinSockets(s, up, { aEnded: ended });
      },
      (err) => {
        ep?.end(start, false);
        this.deps.log.debug({ target: upKey, err: err.message }, 'opaque connection failed; client reset');
        s.resetAndDestroy();
      },
    );
    const onEarlyClose = () => {
      c.cancel();
      c.socket.destroy();
      ep?.end(start, true);
    };
    s.once('close', onEarlyClose);
  }

  /** Stops accepting and asks every connection to finish what it is doing. */
  drain(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.h1.conns]) c.drain();
    this.h2.drain();
    return closed;
  }

  /** Cuts whatever is still open. */
  destroyAll(): void {
    clearInterval(this.sweeper);
    for (const s of this.sockets) s.destroy();
    this.h2.close();
  }
}
