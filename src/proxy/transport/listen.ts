// A listener (inbound or outbound): accepts redirected connections, finds where each was going,
// refuses loops, detects the protocol and hands the connection to HTTP/1, HTTP/2 or opaque TCP. With
// mTLS on, the inbound side terminates mesh TLS first (the ALPN says which of the three is inside) and
// passes any other TLS through; the outbound side's HTTP and opaque handlers originate it.
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
import type { Observer } from '../observe/observer.js';
import { OwnH2Proxy } from '../http2/own.js';
import type { H2Engine } from '../http2/common.js';
import { connectUpstream } from './connect.js';
import { originalDst } from './origdst.js';
import { joinSockets } from './tcp.js';
import type { Endpoint } from '../balance/balancer.js';
import { pickAvailable } from '../route/breaker.js';
import { abandonBreaker, feedBreaker, type BackendTarget, type Router } from '../route/router.js';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from '../tls/alpn.js';
import { MAX_CLIENT_HELLO_BYTES, classifyClientHello } from '../tls/clienthello.js';
import type { MeshTls } from './mtls.js';
import { InboundGate, type InboundPolicyDeps } from '../inbound/admit.js';

/** What the outbound side needs from discovery (src/proxy/discover): for an original destination,
 *  whether the mesh knows it and, if so, its router (a balancer over its ready endpoints, its routes
 *  and their backends). */
export interface Resolved extends Router {
  readonly known: boolean;
}
export interface Resolver {
  /** Synchronous when the destination is already watched; a promise for the first lookup. */
  resolve(dst: SocketAddr): Resolved | Promise<Resolved>;
}

export interface ListenerDeps {
  /** Outbound only: absent, every connection goes to its original destination. */
  readonly resolver?: Resolver;
  /** Inbound only: discovery, asked whether a client's address is a meshed pod (see inboundOpaque). */
  readonly peers?: Resolver;
  readonly cfg: ProxyConfig;
  readonly metrics: ProxyMetrics;
  readonly pool: UpstreamPool;
  readonly log: Logger;
  readonly draining: () => boolean;
  /** The proxy's own listening ports: a connection originally meant for one of them is a loop. */
  readonly ownPorts: () => readonly number[];
  /** mTLS is on (the proxy has an identity). */
  readonly mtls?: MeshTls;
  /** Inbound only: the pod's policy (authorization, rate limits, opaque Servers). */
  readonly policy?: InboundPolicyDeps;
  /** Tap, tracing, the access log. */
  readonly obs?: Observer;
}

/** Bytes of TLS record headers a ClientHello of MAX_CLIENT_HELLO_BYTES may come with (one per record). */
const MAX_HELLO_READ = MAX_CLIENT_HELLO_BYTES + 5 * 8;

const LOCAL = /^(127\.|::1$|0\.0\.0\.0$|::$)/;
const LOOPBACK = /^(127\.|::1$)/;

/** Whether `host` is an address of this host (network namespace): loopback, unspecified, or an interface's. */
function isLocalAddress(host: string): boolean {
  if (LOCAL.test(host)) return true;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.address === host) return true;
  }
  return false;
}

/** Inbound, opaque port, mTLS on: how long what the app says first waits for the client's first bytes
 *  (a meshed client's ClientHello comes at once; an unmeshed client of a server-first protocol then
 *  gets the app's greeting this much later). */
const SERVER_FIRST_GRACE_MS = 1000;

export class Listener {
  readonly server: net.Server;
  readonly h2: H2Engine;
  readonly h1: Http1Context;
  /** Every accepted connection still open, whatever its protocol (for draining). */
  readonly sockets = new Set<Socket>();
  private warnedNoDst = false;
  private warnedForeign = false;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly deps: ListenerDeps,
    readonly direction: Direction,
  ) {
    const { cfg, metrics, log, mtls, obs } = deps;
    const policy = direction === 'inbound' && deps.policy !== undefined ? { policy: deps.policy } : {};
    this.h1 = {
      cfg,
      metrics,
      pool: deps.pool,
      direction,
      log,
      draining: deps.draining,
      conns: new Set(),
      ...(mtls ? { mtls } : {}),
      ...policy,
      ...(obs ? { obs } : {}),
    };
    const h2ctx = {
      cfg,
      metrics,
      direction,
      log,
      ...(mtls ? { mtls } : {}),
      ...policy,
      ...(obs ? { obs } : {}),
    };
    this.h2 = new OwnH2Proxy(h2ctx);
    // Idle keep-alive HTTP/1 connections are closed by a sweep, not by per-socket timers.
    this.sweeper = setInterval(
      () => {
        const limit = performance.now() - cfg.idleTimeoutMs;
        for (const c of this.h1.conns) c.closeIfIdleSince(limit);
      },
      Math.max(100, Math.min(1000, cfg.idleTimeoutMs / 4)),
    );
    this.sweeper.unref();
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (s) => this.accept(s));
    this.server.on('error', (err) => log.error({ direction, err: err.message }, 'listener error'));
  }

  /** Listens on `port` and `host`, or on `handed`: a listening socket opened elsewhere (the per-host
   *  data plane's, inside a pod's network namespace), whose handle this listener's server takes over. */
  listen(port: number, host: string, handed?: net.Server): Promise<SocketAddr> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const done = () => {
        this.server.off('error', reject);
        const a = this.server.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port } as SocketAddr);
      };
      // net.Server.listen(handle) takes the other server's handle as its own (its accepts come here).
      if (handed !== undefined) this.server.listen(handed, done);
      else this.server.listen(port, host, done);
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
    if (
      (dst.host === local && dst.port === s.localPort) ||
      (own.includes(dst.port) && (dst.host === local || isLocalAddress(dst.host)))
    ) {
      metrics.refusedTotal.inc({ direction: this.direction, reason: 'loop' });
      log.debug({ direction: this.direction, dst: formatAddr(dst) }, 'connection to the proxy itself refused (loop)');
      return undefined;
    }
    return dst;
  }

  /** The per-host data plane's guard against a confused deputy: its outbound listener in a pod's
   *  namespace speaks with that pod's identity, so only that pod may use it. A connection from any other
   *  source (another pod's address taken by a pod that could set one) is refused and counted. A sidecar
   *  (no --outbound-sources) accepts any source, as its listener is on loopback in its own pod. */
  private foreignSource(s: Socket): boolean {
    const allowed = this.deps.cfg.outboundSources;
    if (allowed === undefined || this.direction !== 'outbound') return false;
    const peer = normalizeHost(s.remoteAddress ?? '');
    if (LOOPBACK.test(peer) || allowed.includes(peer)) return false;
    this.deps.metrics.refusedTotal.inc({ direction: this.direction, reason: 'source_not_pod' });
    // Once at warn (a pod that tries it may try it a million times), then at debug.
    const level = this.warnedForeign ? 'debug' : 'warn';
    this.warnedForeign = true;
    this.deps.log[level](
      { direction: this.direction, source: peer, allowed },
      'outbound connection from an address not the pod\'s own refused (confused deputy); counted in tcp_refused_total{reason="source_not_pod"}',
    );
    return true;
  }

  private accept(s: Socket): void {
    s.on('error', () => {}); // each protocol handler deals with failures; never crash on a peer's reset
    if (this.foreignSource(s)) {
      s.resetAndDestroy();
      return;
    }
    const target = this.destination(s);
    if (!target || this.deps.draining()) {
      s.resetAndDestroy();
      return;
    }
    const { metrics, resolver } = this.deps;
    const key = formatAddr(target);
    // With mTLS, a connection is counted once its TLS labels are known (see tracked()).
    if (this.deps.mtls === undefined) metrics.tcpFor(this.direction, key).track(s);
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    if (resolver === undefined || this.direction !== 'outbound') {
      this.serve(s, target, key, undefined);
      return;
    }
    const r = resolver.resolve(target);
    if (!(r instanceof Promise)) {
      this.serve(s, target, key, r.known ? r : undefined);
      return;
    }
    // The first connection to a destination waits (paused) for discovery's first answer.
    r.then(
      (d) => {
        if (!s.destroyed) this.serve(s, target, key, d.known ? d : undefined);
      },
      () => {
        if (!s.destroyed) this.serve(s, target, key, undefined);
      },
    );
  }

  /** With mTLS on, counts the connection in the TCP metrics with the peer identity mesh TLS proved
   *  (inbound: the client's, outbound opaque: the server's); without, accept() already did. */
  private tracked(s: Socket, key: string, peer: SpiffeId | undefined): void {
    if (this.deps.mtls !== undefined) this.deps.metrics.tcpFor(this.direction, key, peer).track(s);
  }

  /** Serves a connection: with a router (a destination the mesh knows), HTTP requests go where its
   *  routes and balancers say and opaque connections to the endpoints its balancer picks; without, to
   *  the original destination. */
  private serve(s: Socket, target: SocketAddr, key: string, router: Router | undefined): void {
    const { cfg, metrics, mtls } = this.deps;
    const balancer = router?.balancer;
    const own = router?.own;
    // Opaque when this proxy's list says so, when the server's pod says so (discovery's hint), or
    // (inbound) when the Server covering the port says proxyProtocol: opaque.
    if (
      portListHas(cfg.opaquePorts, target.port) ||
      (balancer !== undefined && balancer.endpoints.some((e) => e.protocolHint === 'OPAQUE')) ||
      (this.direction === 'inbound' && this.deps.policy?.source.current().ports.get(target.port)?.opaque === true)
    ) {
      if (mtls !== undefined && this.direction === 'inbound') this.inboundOpaque(s, target, key, mtls);
      else this.opaque(s, target, key, Buffer.alloc(0), false, own);
      return;
    }
    s.resume();
    detect(s, { timeoutMs: cfg.detectTimeoutMs, maxBytes: cfg.detectMaxBytes }, (r) => {
      if (r.timedOut) metrics.detectTimeoutTotal.inc({ direction: this.direction });
      switch (r.protocol) {
        case 'http1':
          this.tracked(s, key, undefined);
          new ClientConn(this.h1, s, target, r.initial, r.ended, router);
          break;
        case 'h2':
          this.tracked(s, key, undefined);
          this.h2.handle(s, target, r.initial, router);
          break;
        case 'tls':
          if (mtls !== undefined && this.direction === 'inbound' && !r.ended) {
            this.inboundTls(s, target, key, r.initial, mtls);
            break;
          }
          this.opaque(s, target, key, r.initial, r.ended, own);
          break;
        default:
          // TLS that the app started, and everything else: bytes as they are.
          this.opaque(s, target, key, r.initial, r.ended, own);
      }
    });
  }

  /**
   * Inbound TLS (mTLS on): reads the whole ClientHello. Ours (a mesh ALPN) is terminated and what is
   * inside goes to HTTP/1, HTTP/2 or opaque forwarding as the ALPN says, with the client's identity;
   * any other TLS (the app's own) passes through untouched.
   */
  private inboundTls(s: Socket, target: SocketAddr, key: string, initial: Buffer, mtls: MeshTls): void {
    readClientHello(s, initial, this.deps.cfg.detectTimeoutMs, (kind, buf, ended) => {
      if (kind === 'mesh') this.terminate(s, target, key, buf, mtls);
      else this.opaque(s, target, key, buf, ended);
    });
  }

  private terminate(
    s: Socket,
    target: SocketAddr,
    key: string,
    hello: Buffer,
    mtls: MeshTls,
    onReady?: (tlsSocket: Socket, clientId: SpiffeId) => void,
  ): void {
    void mtls.terminate(s, hello).then((c) => {
      if (c === undefined || s.destroyed) {
        c?.socket.destroy();
        return;
      }
      this.tracked(s, key, c.clientId);
      c.socket.on('error', () => {}); // handled by each protocol's close; never crash on a peer's reset
      if (onReady !== undefined) {
        onReady(c.socket, c.clientId);
        return;
      }
      switch (c.alpn) {
        case MESH_ALPN.http1:
          new ClientConn(this.h1, c.socket, target, Buffer.alloc(0), false, undefined, c.clientId, s.remoteAddress);
          break;
        case MESH_ALPN.h2:
          this.h2.handle(c.socket, target, Buffer.alloc(0), undefined, c.clientId, s.remoteAddress);
          break;
        default:
          if (!this.admitTcp(c.socket, target, c.clientId, s.remoteAddress)) return;
          this.opaque(c.socket, target, key, Buffer.alloc(0), false, undefined, true);
      }
    });
  }

  /**
   * Inbound to an opaque port with mTLS on: no protocol detection, but mesh TLS must still be told from
   * plaintext. A meshed client sends its ClientHello at once; an unmeshed client of a server-first
   * protocol (SMTP, MySQL) waits for the app. So the app is connected at once, and the client's first
   * bytes decide: a mesh ClientHello is terminated, anything else goes as it is. What the app says
   * before that must not reach a meshed client in clear (nor break its handshake), so discovery is
   * asked whether the client's address is a meshed pod: if so, the app's greeting waits for the
   * ClientHello (up to the detection timeout); if not, it goes at once. Without discovery, or until it
   * answers, the greeting waits SERVER_FIRST_GRACE_MS for the client to speak.
   */
  private inboundOpaque(s: Socket, target: SocketAddr, key: string, mtls: MeshTls): void {
    let buf: Buffer = Buffer.alloc(0);
    /** What the app said before the client's first bytes. */
    let held: Buffer[] = [];
    let grace: NodeJS.Timeout | undefined;
    let decided = false;
    let joined = false;
    let up: Socket | undefined;
    let clientEnded = false;
    /** The app half-closed before the client spoke (a greeting, then FIN). */
    let appEnded = false;
    /** What to do with the app's connection once it is up (set when the decision came first). */
    let onUp: ((u: Socket) => void) | undefined;
    const whenUp = (fn: (u: Socket) => void) => {
      if (up !== undefined) fn(up);
      else onUp = fn;
    };
    const join = (client: Socket, u: Socket, aEnded: boolean) => {
      joined = true;
      s.off('close', onEarlyClose);
      u.off('end', onUpEnd);
      for (const b of held) client.write(b);
      held = [];
      joinSockets(client, u, { aEnded, bEnded: appEnded });
    };
    const stop = () => {
      decided = true;
      clearTimeout(grace);
      s.off('data', onData);
      s.off('end', onEnd);
      s.pause();
      up?.off('data', onUpData);
      // Not 'end': a paused socket with nothing buffered still emits it when the app's FIN comes,
      // and a FIN nobody heard would leave the client waiting forever. join() takes it over.
      up?.pause();
    };
    const plain = () => {
      stop();
      this.tracked(s, key, undefined);
      if (!this.admitTcp(s, target, undefined, s.remoteAddress)) return;
      whenUp((u) => {
        if (buf.length) u.write(buf);
        join(s, u, clientEnded);
      });
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const kind = buf[0] === 0x16 && buf.length < MAX_HELLO_READ ? classifyClientHello(buf) : 'other';
      if (kind === undefined) return;
      if (kind === 'other') {
        plain();
        return;
      }
      stop();
      this.terminate(s, target, key, buf, mtls, (tlsSocket, clientId) => {
        if (this.admitTcp(tlsSocket, target, clientId, s.remoteAddress)) whenUp((u) => join(tlsSocket, u, false));
      });
    };
    const onEnd = () => {
      clientEnded = true;
      plain();
    };
    // Whether the client is a meshed pod: undefined until discovery says (or without discovery).
    let peerMeshed: boolean | undefined;
    const holdGreeting = () => {
      if (decided || grace !== undefined) return;
      if (peerMeshed === false) plain();
      else grace = setTimeout(plain, peerMeshed === true ? this.deps.cfg.detectTimeoutMs : SERVER_FIRST_GRACE_MS);
    };
    const peer = this.deps.peers?.resolve({
      host: normalizeHost(s.remoteAddress ?? ''),
      port: target.port,
    } as SocketAddr);
    const learn = (d: Resolved) => {
      peerMeshed = d.known && d.balancer.endpoints.some((e) => e.meshed);
      if (decided || (held.length === 0 && !appEnded)) return;
      // The greeting is waiting: now that the client is known, hold it for a ClientHello or let it go.
      clearTimeout(grace);
      grace = undefined;
      holdGreeting();
    };
    if (peer instanceof Promise) peer.then(learn, () => undefined);
    else if (peer !== undefined) learn(peer);
    const onUpData = (chunk: Buffer) => {
      if (decided) return;
      held.push(chunk);
      holdGreeting();
    };
    const onUpEnd = () => {
      appEnded = true;
      if (!decided) holdGreeting();
    };
    const c = connectUpstream(
      target,
      key,
      this.deps.cfg.connectTimeoutMs,
      (u) => {
        up = u;
        u.on('error', () => {}); // until joined; then joinSockets handles it
        u.once('close', () => {
          if (!joined) {
            clearTimeout(grace);
            s.destroy();
          }
        });
        u.on('end', onUpEnd);
        if (onUp !== undefined) onUp(u);
        else if (!decided) u.on('data', onUpData);
        else u.pause();
      },
      (err) => {
        this.deps.log.debug({ target: key, err: err.message }, 'opaque connection failed; client reset');
        s.resetAndDestroy();
      },
      undefined,
      { cfg: this.deps.cfg, direction: this.direction },
    );
    // The client left (or its handshake failed) before the two were joined: let the app go too.
    const onEarlyClose = () => {
      clearTimeout(grace);
      c.cancel();
      c.socket.destroy();
    };
    s.once('close', onEarlyClose);
    s.on('data', onData);
    s.on('end', onEnd);
    s.resume();
  }

  /** Opaque TCP: balanced per connection over `own` (the Service's endpoints) when the destination
   *  has endpoints, skipping those its breakers eject; a connect is what they learn from. `counted`:
   *  the TCP metrics have it already (inbound mesh TLS). */
  private opaque(
    s: Socket,
    target: SocketAddr,
    key: string,
    initial: Buffer,
    ended: boolean,
    own?: BackendTarget,
    counted = false,
  ): void {
    s.pause();
    // Inbound plaintext (or the app's own TLS): authorized by address alone. Mesh TLS was checked in
    // terminate(), with the client's identity.
    if (!counted && !this.admitTcp(s, target, undefined, s.remoteAddress)) return;
    let ep: Endpoint | undefined;
    if (own !== undefined) {
      ep = pickAvailable(own.balancer, own.breakers);
      if (ep === undefined) {
        this.deps.log.debug(
          { target: key, ejected: own.balancer.endpoints.length > 0 },
          'no ready endpoints (or all ejected); client reset',
        );
        s.resetAndDestroy();
        return;
      }
    }
    const upAddr = ep?.addr ?? target;
    const upKey = ep?.key ?? key;
    const start = ep?.begin() ?? 0;
    const mtls = this.deps.mtls;
    // A meshed endpoint gets mesh TLS carrying opaque bytes (an app's own TLS rides inside untouched).
    const serverId = ep?.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
    if (!counted) this.tracked(s, key, serverId);
    const c = connectUpstream(
      upAddr,
      upKey,
      this.deps.cfg.connectTimeoutMs,
      (up) => {
        s.off('close', onEarlyClose);
        // Per connection, what the balancer learns from is the connect time (a connection's lifetime
        // says nothing about the endpoint).
        ep?.end(start, true);
        if (ep !== undefined) this.feed(own as BackendTarget, ep.key, key, false);
        if (initial.length) up.write(initial);
        joinSockets(s, up, { aEnded: ended });
      },
      (err) => {
        ep?.end(start, false);
        if (ep !== undefined) this.feed(own as BackendTarget, ep.key, key, true);
        this.deps.log.debug({ target: upKey, err: err.message }, 'opaque connection failed; client reset');
        s.resetAndDestroy();
      },
      serverId !== undefined && mtls !== undefined ? { tls: mtls, serverId, alpn: MESH_ALPN.opaque } : undefined,
      { cfg: this.deps.cfg, direction: this.direction },
    );
    const onEarlyClose = () => {
      c.cancel();
      c.socket.destroy();
      ep?.end(start, true);
      if (ep !== undefined) abandonBreaker(own as BackendTarget, ep.key);
    };
    s.once('close', onEarlyClose);
  }

  /** Inbound with a policy: whether the pod's policy lets this opaque connection through; a denied
   *  one is closed at once (reset), and counted. Outbound, or without a policy: always. */
  private admitTcp(
    s: Socket,
    target: SocketAddr,
    clientId: SpiffeId | undefined,
    peerAddr: string | undefined,
  ): boolean {
    const policy = this.deps.policy;
    if (this.direction !== 'inbound' || policy === undefined) return true;
    if (new InboundGate(policy, target.port, clientId, peerAddr).tcp()) return true;
    this.deps.log.debug(
      { target: formatAddr(target), client: clientId ?? peerAddr },
      'inbound tcp connection not authorized; closed',
    );
    if (s.destroyed) return false;
    if ('resetAndDestroy' in s && typeof s.resetAndDestroy === 'function' && !(s as { encrypted?: boolean }).encrypted)
      s.resetAndDestroy();
    else s.destroy();
    return false;
  }

  private feed(own: BackendTarget, epKey: string, key: string, failed: boolean): void {
    if (feedBreaker(own, epKey, failed))
      this.deps.metrics.endpointEjectionsTotal.inc({
        direction: this.direction,
        target_addr: key,
        backend: own.service,
      });
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

/**
 * Reads until the bytes hold a whole ClientHello (or are not one), at most MAX_HELLO_READ bytes or
 * `timeoutMs`; then calls back once with the kind, every byte read and whether the client half-closed.
 * The socket is left paused. Never calls back if the socket fails first.
 */
function readClientHello(
  s: Socket,
  initial: Buffer,
  timeoutMs: number,
  done: (kind: 'mesh' | 'other', buf: Buffer, ended: boolean) => void,
): void {
  let buf = initial;
  const finish = (kind: 'mesh' | 'other', ended: boolean) => {
    clearTimeout(timer);
    s.off('data', onData);
    s.off('end', onEnd);
    s.off('close', onClose);
    s.pause();
    done(kind, buf, ended);
  };
  const check = () => {
    const kind = buf.length >= MAX_HELLO_READ ? 'other' : classifyClientHello(buf);
    if (kind !== undefined) finish(kind, false);
  };
  const onData = (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    check();
  };
  const onEnd = () => finish('other', true);
  const onClose = () => {
    clearTimeout(timer);
    s.off('data', onData);
    s.off('end', onEnd);
  };
  const timer = setTimeout(() => finish('other', false), timeoutMs);
  s.on('data', onData);
  s.on('end', onEnd);
  s.once('close', onClose);
  const kind = classifyClientHello(buf);
  if (kind !== undefined) {
    finish(kind, false);
    return;
  }
  s.resume();
}
