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

export const APP_PROBE_PATH = '/app-probe/';

/** Where the admin server sends one of the app's probes. */
export interface AppProbeTarget {
  /** The app's port (the injector resolved a named one). */
  readonly port: number;
  /** HTTP and HTTPS: GET this path (with its query); TCP: a connection that opens passes. */
  readonly scheme: 'HTTP' | 'HTTPS' | 'TCP';
  readonly path?: string;
  /** At most 32. */
  readonly headers?: readonly { readonly name: string; readonly value: string }[];
}

const PROBE_NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const SCHEMES: readonly string[] = ['HTTP', 'HTTPS', 'TCP'];
const TARGET_KEYS: readonly string[] = ['port', 'scheme', 'path', 'headers'];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `{"<name>": {port, scheme, path?, headers?}, ...}` as the injector writes it (parsed JSON): the
 *  targets, or every problem, each led by the path of what is wrong (`web-readiness.port: ...`). */
export function parseAppProbes(
  json: unknown,
): { ok: true; probes: Record<string, AppProbeTarget> } | { ok: false; problems: string[] } {
  if (!isObject(json)) return { ok: false, problems: ['must be an object of probes by name'] };
  const problems: string[] = [];
  const bad = (path: string, message: string): void => void problems.push(`${path}: ${message}`);
  for (const [name, t] of Object.entries(json)) {
    if (!PROBE_NAME.test(name)) bad(name, 'a probe name must be lower-case letters, digits, "-" and "."');
    if (!isObject(t)) {
      bad(name, 'must be an object {port, scheme, path?, headers?}');
      continue;
    }
    for (const k of Object.keys(t)) if (!TARGET_KEYS.includes(k)) bad(name, `unknown key "${k}"`);
    if (typeof t['port'] !== 'number' || !Number.isInteger(t['port']) || t['port'] < 1 || t['port'] > 65535)
      bad(`${name}.port`, 'must be an integer from 1 to 65535');
    if (typeof t['scheme'] !== 'string' || !SCHEMES.includes(t['scheme']))
      bad(`${name}.scheme`, `must be one of ${SCHEMES.join(', ')}`);
    if (t['path'] !== undefined && (typeof t['path'] !== 'string' || !t['path'].startsWith('/')))
      bad(`${name}.path`, 'must be a string starting with "/"');
    const headers = t['headers'];
    if (headers === undefined) continue;
    if (!Array.isArray(headers) || headers.length > 32) {
      bad(`${name}.headers`, 'must be a list of at most 32 {name, value}');
      continue;
    }
    headers.forEach((h: unknown, i) => {
      const ok =
        isObject(h) &&
        Object.keys(h).every((k) => k === 'name' || k === 'value') &&
        typeof h['name'] === 'string' &&
        h['name'] !== '' &&
        typeof h['value'] === 'string';
      if (!ok) bad(`${name}.headers.${i}`, 'must be {name, value}, the name not empty');
    });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, probes: json as Record<string, AppProbeTarget> };
}

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
export function forwardAppProbe(
  probes: ReadonlyMap<string, AppProbeTarget>,
  name: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): void {
  const text = (status: number, body: string) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(body);
  };
  const t = probes.get(name);
  if (t === undefined) return text(404, `no app probe named ${JSON.stringify(name)}\n`);
  if (req.method !== 'GET') return text(405, 'method not allowed\n');
  if (t.scheme === 'TCP') {
    void tcpProbe(t.port, PROBE_TIMEOUT_MS).then((ok) =>
      ok ? text(200, `port ${t.port} open\n`) : text(503, `port ${t.port}: connection refused or timed out\n`),
    );
    return;
  }
  const headers: Record<string, string> = { 'user-agent': req.headers['user-agent'] ?? 'kube-probe', accept: '*/*' };
  for (const h of t.headers ?? []) headers[h.name.toLowerCase()] = h.value;
  // The kubelet does not verify the app's certificate either.
  const options = {
    host: '127.0.0.1',
    port: t.port,
    path: t.path ?? '/',
    method: 'GET',
    headers,
    timeout: PROBE_TIMEOUT_MS,
    ...(t.scheme === 'HTTPS' ? { rejectUnauthorized: false } : {}),
  };
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
