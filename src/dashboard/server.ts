// The dashboard's server: the browser code (plain JS/CSS/SVG from src/dashboard/web, nothing to
// build), a JSON API over the mesh's status and golden metrics (read from the control process, which
// scrapes every proxy), and live tap: the server opens each pod's proxy /tap stream with the mesh's tap
// token and passes the requests on to the browser as server-sent events (the browser never sees the
// token). Binds 127.0.0.1 by default: the dashboard can see every request's path.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { controlRequest, meshObserve, MAX_WINDOW_SEC, readTapToken } from '../daemon/client.js';
import type { MeshStatus } from '../runtime/mesh.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';

/** dist/src/dashboard/ → the project's src/dashboard/web/ (served as they are: there is no build). */
export const WEB_ROOT = fileURLToPath(new URL('../../../src/dashboard/web/', import.meta.url));

export const DEFAULT_DASHBOARD_PORT = 50750;

/** The tap contract of the proxies' admin server:
 *  GET http://<podIP>:<adminPort>/tap?path=&method=&authority=&direction=&max=
 *  with `Authorization: Bearer <the content of <stateDir>/tap-token>`, answering application/x-ndjson,
 *  one finished request per line. */
const TAP_PARAMS = ['path', 'method', 'authority', 'direction', 'max'] as const;
const LOOPBACK = /^(127\.|::1$|localhost$)/;
const LOOPBACK_HOST = /^(localhost|127\.[0-9.]+|\[::1\])(:[0-9]+)?$/i;

/** Most pods one tap stream follows at once. */
const MAX_TAP_PODS = 16;

export interface DashboardOptions {
  readonly stateDir: string;
  /** Default 127.0.0.1. */
  readonly address?: string;
  /** 0 for any free port. */
  readonly port: number;
  /** Where the browser files are (default WEB_ROOT). */
  readonly webRoot?: string;
}

export interface Dashboard {
  readonly url: string;
  close(): Promise<void>;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};
const STATIC = new Set(['/index.html', '/app.js', '/map.js', '/util.js', '/style.css', '/favicon.svg']);

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const webRoot = o.webRoot ?? WEB_ROOT;
  const streams = new Set<http.ServerResponse>();
  const loopbackOnly = LOOPBACK.test(o.address ?? '127.0.0.1');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://dashboard');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    // On loopback, a page from elsewhere must not reach the API through DNS rebinding: the Host must
    // name this machine's loopback.
    if (loopbackOnly && !LOOPBACK_HOST.test(req.headers.host ?? ''))
      return json(403, { error: 'the dashboard answers only to localhost and 127.0.0.1' });
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'method not allowed' });
    if (url.pathname === '/api/overview') {
      const window = Number(url.searchParams.get('window') ?? '60');
      if (!(window >= 1 && window <= MAX_WINDOW_SEC))
        return json(400, { error: `window must be from 1 to ${MAX_WINDOW_SEC} seconds` });
      void Promise.all([
        controlRequest<MeshStatus>(o.stateDir, 'GET', '/status'),
        meshObserve(o.stateDir, window),
      ]).then(
        ([status, observe]) => json(200, { status: { ...status, progress: undefined }, observe }),
        (err: unknown) => json(503, { error: `the mesh does not answer: ${(err as Error).message}` }),
      );
      return;
    }
    if (url.pathname === '/api/tap') return void tap(o.stateDir, url, req, res, streams);
    const path = url.pathname === '/' ? '/index.html' : url.pathname;
    if (!STATIC.has(path)) return json(404, { error: `no ${url.pathname}` });
    void readFile(join(webRoot, path)).then(
      (body) => {
        res.writeHead(200, {
          'content-type': TYPES[extname(path)] ?? 'application/octet-stream',
          'cache-control': 'no-cache',
          'x-content-type-options': 'nosniff',
        });
        res.end(body);
      },
      (err: unknown) => json(500, { error: `${path}: ${(err as Error).message}` }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.address ?? '127.0.0.1', () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of streams) s.end();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** GET /api/tap?namespace=&deploy=|pod=&path=&method=&authority=&direction=&max= → text/event-stream:
 *  `event: request` per tapped request, `event: unavailable` (why there is no tap), `event: error`. */
async function tap(
  stateDir: string,
  url: URL,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  streams: Set<http.ServerResponse>,
): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  streams.add(res);
  const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  const aborts = new AbortController();
  const finish = () => {
    aborts.abort();
    streams.delete(res);
    res.end();
  };
  req.on('close', () => aborts.abort());
  let status: MeshStatus;
  try {
    status = await controlRequest<MeshStatus>(stateDir, 'GET', '/status');
  } catch (err) {
    send('error', { message: `the mesh does not answer: ${(err as Error).message}` });
    return finish();
  }
  const ns = url.searchParams.get('namespace') ?? 'default';
  const deploy = url.searchParams.get('deploy');
  const podName = url.searchParams.get('pod');
  const pods = status.pods
    .filter(
      (p) =>
        p.namespace === ns && p.meshed && p.ready && (deploy !== null ? p.deployment === deploy : p.name === podName),
    )
    .slice(0, MAX_TAP_PODS);
  if (pods.length === 0) {
    send('unavailable', {
      message: `no ready meshed pod of ${deploy !== null ? `deploy/${deploy}` : `pod/${podName ?? ''}`} in namespace ${ns} to tap`,
    });
    return finish();
  }
  let token: string;
  try {
    token = await readTapToken(stateDir);
  } catch {
    send('unavailable', { message: 'the proxies do not offer tap yet: this mesh has no tap token' });
    return finish();
  }
  const q = new URLSearchParams();
  for (const k of TAP_PARAMS) {
    const v = url.searchParams.get(k);
    if (v !== null && v !== '') q.set(k, v);
  }
  let open = 0;
  let unavailable = 0;
  await Promise.all(
    pods.map(async (p) => {
      try {
        const r = await fetch(`http://${p.ip}:${PROXY_ADMIN_PORT}/tap?${q.toString()}`, {
          headers: { authorization: `Bearer ${token}` },
          signal: aborts.signal,
        });
        // 404: a proxy without the tap endpoint; 403 "tap is off": one started without the token.
        if (r.status === 404 || r.status === 403) {
          unavailable++;
          return;
        }
        if (!r.ok || r.body === null) {
          send('error', { message: `${p.name}: the proxy answered ${r.status} to tap` });
          return;
        }
        open++;
        send('open', { pod: p.name });
        const decoder = new TextDecoder();
        let buf = '';
        for await (const chunk of r.body as unknown as AsyncIterable<Uint8Array>) {
          buf += decoder.decode(chunk, { stream: true });
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line === '') continue;
            try {
              send('request', { pod: p.name, ...(JSON.parse(line) as object) });
            } catch {
              // a line that is not JSON is not passed on
            }
          }
        }
      } catch (err) {
        if (!aborts.signal.aborted) send('error', { message: `${p.name}: tap: ${(err as Error).message}` });
      }
    }),
  );
  if (open === 0 && unavailable > 0)
    send('unavailable', {
      message: 'the proxies do not offer tap yet (their admin server has no /tap endpoint, or tap is off)',
    });
  finish();
}
