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

export interface ListenerDeps {
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
    const { cfg, metrics } = this.deps;
    const key = formatAddr(target);
    metrics.tcpFor(this.direction, key).track(s);
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    if (portListHas(cfg.opaquePorts, target.port)) {
      this.opaque(s, target, key, Buffer.alloc(0), false);
      return;
    }
    s.resume();
    detect(s, { timeoutMs: cfg.detectTimeoutMs, maxBytes: cfg.detectMaxBytes }, (r) => {
      if (r.timedOut) metrics.detectTimeoutTotal.inc({ direction: this.direction });
      switch (r.protocol) {
        case 'http1':
          new ClientConn(this.h1, s, target, r.initial, r.ended);
          break;
        case 'h2':
          this.h2.handle(s, target, r.initial);
          break;
        default:
          // TLS that the app started, and everything else: bytes as they are.
          this.opaque(s, target, key, r.initial, r.ended);
      }
    });
  }

  private opaque(s: Socket, target: SocketAddr, key: string, initial: Buffer, ended: boolean): void {
    s.pause();
    const c = connectUpstream(
      target,
      key,
      this.deps.cfg.connectTimeoutMs,
      (up) => {
        s.off('close', onEarlyClose);
        if (initial.length) up.write(initial);
        joinSockets(s, up, { aEnded: ended });
      },
      (err) => {
        this.deps.log.debug({ target: key, err: err.message }, 'opaque connection failed; client reset');
        s.resetAndDestroy();
      },
    );
    const onEarlyClose = () => {
      c.cancel();
      c.socket.destroy();
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
