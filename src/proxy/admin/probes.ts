// The app's kubelet probes, forwarded by the admin server. In a cluster the kubelet probes a container
// from the node, so an httpGet or tcpSocket probe on an app port would enter through the proxy's
// inbound side and meet the pod's inbound policy (`deny`, `all-authenticated`, a Server without an
// authorization for the node would fail it). The injector points such probes at the admin port
// instead (`/app-probe/<name>`, which proxy-init never redirects), and gives the proxy the original
// target of each; the admin server probes the app over loopback as the kubelet would have and answers
// with the result. Only the probes named here are forwarded, GET only: nothing else of the app is
// reachable through the admin port.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { z } from 'zod';

export const APP_PROBE_PATH = '/app-probe/';

const target = z.strictObject({
  /** The app's port (the injector resolved a named one). */
  port: z.int().min(1).max(65535),
  /** HTTP and HTTPS: GET this path (with its query); TCP: a connection that opens passes. */
  scheme: z.enum(['HTTP', 'HTTPS', 'TCP']),
  path: z.string().startsWith('/').optional(),
  headers: z.array(z.strictObject({ name: z.string().min(1), value: z.string() })).max(32).optional(),
});
export type AppProbeTarget = z.infer<typeof target>;

/** `{"<name>": {port, scheme, path?, headers?}, ...}`, as the injector writes it. */
export const appProbesSchema = z.record(z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/), target);

/** The kubelet's own timeout bounds the wait anyway; this only keeps a hung app from holding sockets. */
const PROBE_TIMEOUT_MS = 10_000;

function tcpProbe(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Answers a GET /app-probe/<name> from the kubelet with the app's own answer (its status; 503 when it
 *  cannot be reached), as the kubelet would have seen it: 200-399 passes, anything else fails. */
export function forwardAppProbe(probes: ReadonlyMap<string, AppProbeTarget>, name: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  const text = (status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(body);
  };
  const t = probes.get(name);
  if (t === undefined) return text(404, `no app probe named ${JSON.stringify(name)}\n`);
  if (req.method !== 'GET') return text(405, 'method not allowed\n');
  if (t.scheme === 'TCP') {
    void tcpProbe(t.port, PROBE_TIMEOUT_MS).then((ok) => (ok ? text(200, `port ${t.port} open\n`) : text(503, `port ${t.port}: connection refused or timed out\n`)));
    return;
  }
  const headers: Record<string, string> = { 'user-agent': req.headers['user-agent'] ?? 'kube-probe', accept: '*/*' };
  for (const h of t.headers ?? []) headers[h.name.toLowerCase()] = h.value;
  // The kubelet does not verify the app's certificate either.
  const options = { host: '127.0.0.1', port: t.port, path: t.path ?? '/', method: 'GET', headers, timeout: PROBE_TIMEOUT_MS, ...(t.scheme === 'HTTPS' ? { rejectUnauthorized: false } : {}) };
  const up = (t.scheme === 'HTTPS' ? https : http).request(options, (r) => {
    r.resume();
    r.once('end', () => text(r.statusCode ?? 502, `app answered ${r.statusCode ?? 0}\n`));
    r.once('error', () => text(503, 'app response failed\n'));
  });
  up.once('timeout', () => up.destroy(new Error('timed out')));
  up.once('error', (err) => {
    if (!res.headersSent && !res.destroyed) text(503, `app probe failed: ${err.message}\n`);
  });
  // The kubelet gave up (its timeoutSeconds): so do we.
  res.once('close', () => {
    if (!res.writableFinished) up.destroy();
  });
  up.end();
}
