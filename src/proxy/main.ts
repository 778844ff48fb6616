// The one place that wires a validated config into listeners, the admin server and shutdown.
import type http from 'node:http';
import type net from 'node:net';
import type { Logger } from '../core/log.js';
import { formatAddr, type SocketAddr } from '../core/addr.js';
import { GrpcChannel } from '../api/grpc/channel.js';
import { controlTls, identitySettings, type ProxyConfig } from './config.js';
import { internalError } from '../core/errors.js';
import { ProxyIdentity } from './identity/identity.js';
import { TrustFile, fixedTrust, parseTrustBundle, type TrustSource } from './identity/bundle.js';
import { MeshTls } from './transport/mtls.js';
import { ProxyMetrics } from './metrics.js';
import { UpstreamPool } from './http1/pool.js';
import { Listener } from './transport/listen.js';
import { checkOrigDstAddon } from './transport/origdst.js';
import { createAdminServer, listenAdmin } from './admin/server.js';
import { Discovery } from './discover/discover.js';
import { PolicyWatch } from './inbound/policy/watch.js';
import { readFileSync } from 'node:fs';
import { Observer } from './observe/observer.js';
import { TapHub } from './observe/tap.js';
import { Tracer } from './observe/trace.js';
import { AccessLog } from './observe/access-log.js';

export interface RunningProxy {
  readonly outbound: SocketAddr;
  readonly inbound: SocketAddr;
  readonly admin: SocketAddr;
  readonly metrics: ProxyMetrics;
  /** Graceful: stop accepting, let work in flight finish (up to the drain timeout), then close. */
  shutdown(): Promise<void>;
  /** Resolves when the proxy has shut down. */
  readonly closed: Promise<void>;
  /** The identity it speaks for (with mTLS), and whether it holds a certificate (so a private key) now. */
  readonly identity: { readonly id: string; holdsKey(): boolean } | undefined;
  /** Listening, holding its certificate and its pod's first policy answer: what /ready says. */
  ready(): boolean;
}

/** Listening sockets opened elsewhere (the per-host data plane's, inside a pod's network namespace),
 *  used instead of binding the configured addresses and ports. */
export interface HandedListeners {
  readonly outbound: net.Server;
  readonly inbound: net.Server;
  readonly admin: net.Server;
}

export async function startProxy(cfg: ProxyConfig, log: Logger, handed?: HandedListeners): Promise<RunningProxy> {
  if (!cfg.staticDestination) checkOrigDstAddon();
  const ids = identitySettings(cfg);
  const self = {
    key: `${cfg.podNamespace}\0${cfg.podWorkload}\0${cfg.podName}\0`,
    namespace: cfg.podNamespace,
    workload: cfg.podWorkload,
    pod: cfg.podName,
    service: '',
  };
  const metrics = new ProxyMetrics({ tls: ids !== undefined, self });
  const obs = startObservers(cfg, log);
  metrics.watchObservers(obs);
  const pool = new UpstreamPool(cfg.maxIdlePerUpstream, cfg.upstreamIdleTimeoutMs);
  let draining = false;
  let ready = false;
  const ports: number[] = [];
  // One connection to each control plane address (usually one for all three services), shared by
  // identity, discovery and policy, and closed last. TLS only: the control plane proves its identity
  // before anything is sent, and once the proxy holds a certificate the channel presents it.
  const channels = new Map<string, GrpcChannel>();
  let anchorsProblem: string | undefined;
  const tls = controlTls(cfg, (problem) => {
    if (problem === anchorsProblem) return;
    anchorsProblem = problem;
    log.warn({ problem }, 'trust anchors file: cannot use it now; keeping the anchors read before');
  });
  const channelTo = (addr: SocketAddr): GrpcChannel => {
    const target = formatAddr(addr);
    let c = channels.get(target);
    if (c === undefined) {
      if (tls === undefined) throw internalError('a control plane address without trust anchors passed the config');
      c = new GrpcChannel(target, { tls });
      channels.set(target, c);
    }
    return c;
  };
  // mTLS: the key is made in memory and a certificate asked for at once; the proxy is ready only once
  // it holds one. Without identity settings, plaintext everywhere as before.
  let identity: ProxyIdentity | undefined;
  let mtls: MeshTls | undefined;
  // The anchors peers are checked against: those the control plane's are (loadProxyConfig checked
  // them); a file is watched, and a new bundle in it is used by new connections at once.
  let trust: TrustSource | undefined;
  if (ids !== undefined) {
    trust =
      cfg.trustAnchorsFile !== undefined
        ? await TrustFile.open(cfg.trustAnchorsFile, { log: log.child({ component: 'trust' }) })
        : fixedTrust(parseTrustBundle(cfg.trustAnchors ?? '', '--trust-anchors'));
    identity = ProxyIdentity.start({
      controlAddr: formatAddr(ids.addr),
      channel: channelTo(ids.addr),
      trust,
      tokenPath: ids.tokenFile,
      identity: ids.identity,
      log: log.child({ component: 'identity' }),
    });
    const file = trust instanceof TrustFile ? trust : undefined;
    const id = identity;
    metrics.watchIdentity({
      get metrics() {
        return id.metrics;
      },
      ...(file !== undefined ? { trustReadFailures: () => file.readFailures } : {}),
    });
    // Every connection to the control plane presents the newest certificate (policy needs it).
    identity.onRotate((c) => {
      for (const ch of channels.values())
        ch.setClientCertificate({ keyPem: c.keyPem, certChainPem: c.leafPem + c.chainPem });
    });
    mtls = new MeshTls({
      identity,
      metrics,
      log: log.child({ component: 'mtls' }),
      handshakeTimeoutMs: cfg.detectTimeoutMs,
      sessionResumption: cfg.meshTlsSessionResumption,
    });
  }
  const deps = {
    cfg,
    metrics,
    obs: obs.observer,
    pool,
    log,
    draining: () => draining,
    ownPorts: () => ports,
    ...(mtls ? { mtls } : {}),
  };
  // Outbound destinations are looked up in the control plane when there is one: Services are balanced
  // per request; what it does not know goes to the original address.
  const discovery =
    cfg.destinationAddr !== undefined
      ? new Discovery({
          addr: cfg.destinationAddr,
          channel: channelTo(cfg.destinationAddr),
          log: log.child({ component: 'discovery' }),
          breakers: { consecutiveFailures: cfg.breakerFailures },
          limit: { maxInFlight: cfg.maxInFlightRequests, maxQueued: cfg.maxQueuedRequests },
        })
      : undefined;
  if (discovery !== undefined) metrics.watchDiscovery(discovery.stats);
  const outboundL = new Listener(discovery !== undefined ? { ...deps, resolver: discovery } : deps, 'outbound');
  // Inbound, the pod's policy (authorization, rate limits) when there is a policy service: one watch of
  // this pod; the proxy is ready once the first answer came, so no request meets only the default.
  let policy: PolicyWatch | undefined;
  if (cfg.policyAddr !== undefined && cfg.pod !== undefined) {
    const [namespace = '', pod = ''] = cfg.pod.split('/');
    policy = new PolicyWatch({
      addr: cfg.policyAddr,
      channel: channelTo(cfg.policyAddr),
      namespace,
      pod,
      defaultPolicy: cfg.defaultInboundPolicy,
      log: log.child({ component: 'policy' }),
    });
  }
  const inboundPolicy =
    policy !== undefined ? { policy: { source: policy, metrics: metrics.enablePolicy(policy.stats) } } : {};
  // Inbound, discovery tells whether a client is a meshed pod (for server-first apps on opaque ports).
  const inboundL = new Listener(
    discovery !== undefined ? { ...deps, ...inboundPolicy, peers: discovery } : { ...deps, ...inboundPolicy },
    'inbound',
  );
  let shuttingDown: Promise<void> | undefined;
  let closing = false;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const certificate = identity !== undefined ? () => identity.current() : undefined;
  const isReady = () =>
    ready &&
    !draining &&
    (identity === undefined || identity.current() !== undefined) &&
    (policy === undefined || policy.answered);
  const admin: http.Server = createAdminServer({
    metrics,
    ...(obs.tap !== undefined ? { tap: obs.tap } : {}),
    ready: isReady,
    shutdown: () => void shutdown(),
    ...(certificate ? { certificate } : {}),
    ...(mtls !== undefined ? { keyExchange: () => (mtls as MeshTls).keyExchange() } : {}),
    ...(policy !== undefined ? { policy: () => ({ answered: policy.answered, policy: policy.raw }) } : {}),
    ...(cfg.appProbes !== undefined ? { appProbes: cfg.appProbes } : {}),
    ...(obs.token !== undefined ? { token: obs.token } : {}),
  });
  const listeners = [outboundL, inboundL];

  const shutdown = (): Promise<void> => {
    if (shuttingDown) return shuttingDown;
    draining = true;
    log.info({ drainTimeoutMs: cfg.drainTimeoutMs }, 'shutting down: draining connections');
    shuttingDown = (async () => {
      const drained = Promise.all(listeners.map((l) => l.drain()));
      const open = () => listeners.reduce((n, l) => n + l.sockets.size, 0);
      const deadline = Date.now() + cfg.drainTimeoutMs;
      // A peer that never closes its connection must not hold shutdown past the drain timeout.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((r) => (timer = setTimeout(r, cfg.drainTimeoutMs)))]);
      clearTimeout(timer);
      while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const left = open();
      if (left > 0) log.warn({ connections: left }, 'drain timeout reached: closing the connections still open');
      for (const l of listeners) l.destroyAll();
      obs.close();
      discovery?.close();
      policy?.close();
      pool.close();
      mtls?.close();
      closing = true;
      await identity?.close();
      trust?.close();
      for (const c of channels.values()) c.close();
      await new Promise<void>((r) => {
        admin.close(() => r());
        admin.closeAllConnections();
      });
      log.info('proxy stopped');
      resolveClosed();
    })();
    return shuttingDown;
  };

  try {
    const outbound = await outboundL.listen(cfg.outboundPort, cfg.outboundAddr, handed?.outbound);
    const inbound = await inboundL.listen(cfg.inboundPort, cfg.inboundAddr, handed?.inbound);
    const a = await listenAdmin(admin, cfg.adminPort, cfg.adminAddr, handed?.admin);
    const adminAddr = { host: a.address, port: a.port } as SocketAddr;
    ports.push(outbound.port, inbound.port, adminAddr.port);
    ready = true;
    const where = { outbound: outbound.port, inbound: inbound.port, admin: adminAddr.port };
    if (identity === undefined) log.info(where, 'proxy ready');
    else {
      log.info({ ...where, identity: identity.identity }, 'proxy listening; ready once it holds a certificate');
      identity.whenReady().then(
        (c) => log.info({ ...where, identity: c.identity, notAfter: c.notAfter.toISOString() }, 'proxy ready'),
        () => undefined,
      );
    }
    const held =
      identity !== undefined
        ? { id: identity.identity as string, holdsKey: () => !closing && identity.current() !== undefined }
        : undefined;
    return { outbound, inbound, admin: adminAddr, metrics, shutdown, closed, identity: held, ready: isReady };
  } catch (err) {
    for (const l of listeners) l.server.close();
    obs.close();
    admin.close();
    discovery?.close();
    policy?.close();
    pool.close();
    mtls?.close();
    void identity?.close();
    trust?.close();
    for (const c of channels.values()) c.close();
    throw err;
  }
}

/** The observers the config asks for: tap (with a token), tracing (with a collector), the access log. */
function startObservers(
  cfg: ProxyConfig,
  log: Logger,
): { observer: Observer; tap: TapHub | undefined; token: string | undefined; close(): void } {
  let token: string | undefined;
  if (cfg.tapTokenFile !== undefined) {
    // Read once: the runtime writes it before it starts the proxy. Never logged.
    try {
      token = readFileSync(cfg.tapTokenFile, 'utf8').trim();
    } catch (err) {
      log.warn(
        { file: cfg.tapTokenFile, err: (err as NodeJS.ErrnoException).code },
        'tap token unreadable: tap is off',
      );
    }
  }
  const tracer =
    cfg.traceCollector !== undefined
      ? new Tracer({
          collector: cfg.traceCollector,
          sampleRatio: cfg.traceSampleRatio,
          log: log.child({ component: 'trace' }),
          resource: {
            'service.name':
              cfg.podWorkload !== '' ? cfg.podWorkload : cfg.podName !== '' ? cfg.podName : 'outrigger-proxy',
            'k8s.namespace.name': cfg.podNamespace,
            'k8s.pod.name': cfg.podName,
            'k8s.deployment.name': cfg.podWorkload,
            'service.namespace': cfg.podNamespace,
          },
        })
      : undefined;
  const accessLog = cfg.accessLog !== undefined ? new AccessLog(cfg.accessLog, log) : undefined;
  const observer = new Observer(tracer, accessLog);
  const tap = token !== undefined && token !== '' ? new TapHub(token, () => observer.refresh()) : undefined;
  if (tap !== undefined) observer.attachTap(tap);
  return {
    observer,
    tap,
    token: token !== '' ? token : undefined,
    close() {
      tap?.close();
      tracer?.close();
      accessLog?.close();
    },
  };
}
