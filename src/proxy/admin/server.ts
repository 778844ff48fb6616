// The admin server: liveness, readiness, Prometheus metrics, the version, the certificate held (never the key) and
// the inbound policy in force, the app's forwarded kubelet probes, and a graceful shutdown, on its own port so that probes and scrapes never queue behind application traffic.
// Other pods may read only the probes, metrics and version; the rest needs the mesh's admin token or loopback.
import { timingSafeEqual, X509Certificate } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { versionView } from '../../core/version.js';
import type { ProxyMetrics } from '../metrics.js';
import type { TapHub } from '../observe/tap.js';
import type { TrustAnchorView } from '../identity/bundle.js';
import { APP_PROBE_PATH, forwardAppProbe, type AppProbeTarget } from './probes.js';

export interface AdminHooks {
  readonly metrics: ProxyMetrics;
  ready(): boolean;
  shutdown(): void;
  /** mTLS on: the certificate held now (undefined before the first). Absent: mTLS is off. */
  readonly certificate?: () =>
    | {
        readonly leafPem: string;
        readonly trust?: { readonly generation: number; readonly views: readonly TrustAnchorView[] };
        readonly issuer?: { readonly subject: string; readonly fingerprint: string };
        readonly anchorFingerprint?: string;
      }
    | undefined;
  /** mTLS on: the key exchange groups offered, and the one the last outbound handshake agreed on. */
  readonly keyExchange?: () => KeyExchangeView;
  /** With a policy service: the inbound policy in force (the policy API's message, as received), and
   *  whether it came from the control plane. Absent: no policy service. */
  readonly policy?: () => { readonly answered: boolean; readonly policy: unknown };
  /** Tap sessions (GET /tap); absent: no tap token, tap is off. */
  readonly tap?: TapHub;
  /** The app's kubelet probes this admin server forwards (GET /app-probe/<name>; probes.ts). */
  readonly appProbes?: ReadonlyMap<string, AppProbeTarget>;
  /** The mesh's admin token (the tap token): /identity and /policy from another address need it as a
   *  bearer. Absent: they answer loopback only. */
  readonly token?: string;
}

/** The key exchange of mesh TLS: the groups offered, most preferred first, and the last one agreed. */
export interface KeyExchangeView {
  readonly offered: readonly string[];
  readonly lastNegotiated: string | undefined;
}

/** What GET /identity answers (`outrigger identity` prints it). */
export interface IdentityView {
  readonly identity: string;
  readonly issuer: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly serial: string;
  /** Absent from proxies older than the post-quantum key exchange. */
  readonly keyExchange?: KeyExchangeView;
  /** The certificate that signed the leaf (SHA-256 fingerprint), and the anchor of the bundle it chains
   *  to ('' when the bundle no longer holds it). Absent from proxies older than trust bundles. */
  readonly issuerFingerprint?: string;
  readonly anchorFingerprint?: string;
  /** The trust bundle: what peers (and the control plane) are checked against now. */
  readonly trust?: { readonly generation: number; readonly anchors: readonly TrustAnchorView[] };
}

/** The public facts of a certificate, from its PEM (the key is never looked at). */
export function identityView(leafPem: string): IdentityView {
  const c = new X509Certificate(leafPem);
  const uri = /(?:^|, )URI:([^,]+)/.exec(c.subjectAltName ?? '');
  return {
    identity: uri?.[1] ?? '',
    issuer: c.issuer.split('\n').join(', '),
    notBefore: new Date(c.validFrom).toISOString(),
    notAfter: new Date(c.validTo).toISOString(),
    serial: c.serialNumber.toLowerCase(),
  };
}

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/** Whether a peer address is the pod itself (IPv4 loopback, IPv6 loopback, or IPv4 loopback mapped). */
export function isLoopback(addr: string | undefined): boolean {
  return LOOPBACK.test(addr ?? '');
}

/**
 * Whether a request may read the proxy's state (/identity, /policy): from loopback always (the pod
 * itself, `kubectl port-forward`), from elsewhere with `Authorization: Bearer <token>`, compared in
 * constant time so that the answer's timing does not tell how much of a guess was right.
 */
export function adminAuthorized(remoteAddr: string | undefined, authorization: string | undefined, token?: string) {
  if (isLoopback(remoteAddr)) return true;
  if (token === undefined || token === '') return false;
  const m = /^Bearer (.+)$/.exec(authorization ?? '');
  if (m === null) return false;
  const given = Buffer.from((m[1] as string).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function createAdminServer(hooks: AdminHooks): http.Server {
  const server = http.createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const text = (status: number, body: string, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(body);
    };
    const unauthorized = () =>
      hooks.token !== undefined && hooks.token !== ''
        ? text(401, `${path} needs the mesh admin token from another address: Authorization: Bearer <token>\n`, {
            'www-authenticate': 'Bearer',
          })
        : text(403, `${path} is only answered on loopback (this proxy has no admin token)\n`);
    switch (path) {
      case '/live':
        return text(200, 'live\n');
      case '/ready':
        return hooks.ready() ? text(200, 'ready\n') : text(503, 'not ready\n');
      case '/metrics':
        if (req.method !== 'GET' && req.method !== 'HEAD')
          return text(405, 'method not allowed\n', { allow: 'GET, HEAD' });
        hooks.metrics.registry.metrics().then(
          (body) => text(200, body, { 'content-type': hooks.metrics.registry.contentType }),
          (err: Error) => text(500, `metrics: ${err.message}\n`),
        );
        return;
      case '/version':
        // Which Outrigger and which Node.js this proxy runs (`outrigger version` lists every proxy's).
        if (req.method !== 'GET' && req.method !== 'HEAD')
          return text(405, 'method not allowed\n', { allow: 'GET, HEAD' });
        return text(200, `${JSON.stringify(versionView())}\n`, { 'content-type': 'application/json' });
      case '/identity': {
        if (req.method !== 'GET' && req.method !== 'HEAD')
          return text(405, 'method not allowed\n', { allow: 'GET, HEAD' });
        if (!adminAuthorized(req.socket.remoteAddress, req.headers.authorization, hooks.token)) return unauthorized();
        if (hooks.certificate === undefined) return text(404, 'this proxy has no identity (mTLS is off)\n');
        const cert = hooks.certificate();
        if (cert === undefined) return text(503, 'no certificate yet\n');
        const view: IdentityView = {
          ...identityView(cert.leafPem),
          ...(hooks.keyExchange !== undefined ? { keyExchange: hooks.keyExchange() } : {}),
          ...(cert.issuer !== undefined ? { issuerFingerprint: cert.issuer.fingerprint } : {}),
          ...(cert.anchorFingerprint !== undefined ? { anchorFingerprint: cert.anchorFingerprint } : {}),
          ...(cert.trust !== undefined
            ? { trust: { generation: cert.trust.generation, anchors: cert.trust.views } }
            : {}),
        };
        return text(200, `${JSON.stringify(view)}\n`, { 'content-type': 'application/json' });
      }
      case '/policy': {
        // What `outrigger authz` shows and checks: who may call this pod (no secrets in it).
        if (req.method !== 'GET' && req.method !== 'HEAD')
          return text(405, 'method not allowed\n', { allow: 'GET, HEAD' });
        if (!adminAuthorized(req.socket.remoteAddress, req.headers.authorization, hooks.token)) return unauthorized();
        if (hooks.policy === undefined)
          return text(404, 'this proxy has no policy service (every client is allowed)\n');
        return text(200, `${JSON.stringify(hooks.policy())}\n`, { 'content-type': 'application/json' });
      }
      case '/tap':
        // The tap hub checks the token itself, from loopback too: it streams the traffic's metadata.
        if (hooks.tap === undefined) return text(403, 'tap is off: this proxy has no tap token (--tap-token-file)\n');
        hooks.tap.handle(req, res, new URLSearchParams(q === -1 ? '' : url.slice(q + 1)));
        return;
      case '/shutdown':
        if (req.method !== 'POST') return text(405, 'method not allowed\n', { allow: 'POST' });
        // Only the pod itself may stop its proxy (the admin port listens on every address for probes).
        if (!isLoopback(req.socket.remoteAddress)) return text(403, 'shutdown is only accepted from loopback\n');
        text(202, 'shutting down\n');
        hooks.shutdown();
        return;
      default:
        if (path.startsWith(APP_PROBE_PATH) && hooks.appProbes !== undefined)
          return forwardAppProbe(hooks.appProbes, path.slice(APP_PROBE_PATH.length), req, res);
        return text(404, 'not found\n');
    }
  });
  server.keepAliveTimeout = 5000;
  return server;
}

export function listenAdmin(server: http.Server, port: number, host: string, handed?: NetServer): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    };
    // A listening socket opened elsewhere (the per-host data plane's, in the pod's namespace).
    if (handed !== undefined) server.listen(handed, done);
    else server.listen(port, host, done);
  });
}
