// The daemon: the local mesh's control process (started in the background by `up`; not the control
// plane, which it hosts). It owns the network and the pods, hosts the control plane the proxies talk to,
// scrapes the proxies' metrics, writes its pid, and serves JSON over HTTP on a unix socket in the state
// directory (status, version, observe, apply, shutdown); client.ts is its client.
import type { DataPlaneSettings } from '../runtime/dataplane/index.js';
import http from 'node:http';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ManifestError } from '../manifests/errors.js';
import type { DefaultInboundPolicy } from '../control/store/store.js';
import { versionView } from '../core/version.js';
import { MetricsHistory } from '../observe/history.js';
import { MetricsScraper } from '../observe/scrape.js';
import { aggregate, type ObserveSnapshot } from '../observe/stats.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';
import { Mesh, type ControlPlaneHost, type ManifestFile } from '../runtime/mesh.js';
import { ensureStateDir, statePaths } from '../runtime/state.js';
import { MAX_WINDOW_SEC, METRICS_RETENTION_MS, SCRAPE_INTERVAL_MS, readTapToken } from './client.js';
import { TrustRotationError, type TrustManager } from './trust.js';

export interface DaemonOptions {
  readonly stateDir: string;
  readonly files: readonly string[];
  /** Take over the running mesh a killed control process left (Mesh.resume) instead of starting one. */
  readonly resume?: boolean;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  /** What serves the proxies (destination, identity): control-plane.ts assembles it from src/control. */
  readonly controlPlane?: ControlPlaneHost & { metricsText?(): Promise<string>; readonly rotation?: TrustManager };
  readonly readyTimeoutMs?: number;
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
  /** An OTLP/HTTP collector for every proxy's spans. */
  readonly traceCollector?: string;
  /** Files no container may see besides the state directory (a CA key given with --issuer-key). */
  readonly hide?: readonly string[];
  /** Sidecars (default) or the per-host data plane. */
  readonly dataPlane?: DataPlaneSettings;
}

/** The most a request body (manifests sent by `apply`) may be. */
const MAX_BODY = 8 << 20;

/** How long a failed mesh keeps answering (so that `up` can read why) before it exits on its own. */
const FAILED_LINGER_MS = 30_000;

/** Runs the daemon until it is asked to stop; resolves with the exit code. */
export async function runDaemon(o: DaemonOptions): Promise<number> {
  const paths = statePaths(o.stateDir);
  await ensureStateDir(o.stateDir);
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const mesh = new Mesh({
    stateDir: o.stateDir,
    ...(o.bridge !== undefined ? { bridge: o.bridge } : {}),
    ...(o.podCidr !== undefined ? { podCidr: o.podCidr } : {}),
    ...(o.serviceCidr !== undefined ? { serviceCidr: o.serviceCidr } : {}),
    ...(o.readyTimeoutMs !== undefined ? { readyTimeoutMs: o.readyTimeoutMs } : {}),
    ...(o.defaultInboundPolicy !== undefined ? { defaultInboundPolicy: o.defaultInboundPolicy } : {}),
    ...(o.controlPlane !== undefined ? { controlPlane: o.controlPlane } : {}),
    ...(o.traceCollector !== undefined ? { traceCollector: o.traceCollector } : {}),
    ...(o.hide !== undefined ? { hide: o.hide } : {}),
    ...(o.dataPlane !== undefined ? { dataPlane: o.dataPlane } : {}),
    onProgress: log,
  });

  // The mesh's golden metrics: every proxy scraped into a bounded history (see src/observe).
  const history = new MetricsHistory(METRICS_RETENTION_MS);
  const scraper = new MetricsScraper({
    history,
    intervalMs: SCRAPE_INTERVAL_MS,
    targets: () =>
      mesh
        .status()
        .pods.filter((p) => p.meshed && p.ip !== '' && p.phase === 'Running')
        .map((p) => ({ key: `${p.namespace}/${p.name}`, url: `http://${p.ip}:${PROXY_ADMIN_PORT}/metrics` })),
  });

  let exit!: (code: number) => void;
  const exited = new Promise<number>((r) => (exit = r));
  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    await scraper.stop();
    // A rotation stops at its stage (recorded): the next daemon's `trust rotate` resumes it.
    await rotation?.stop();
    let rc = code;
    try {
      await mesh.stop();
    } catch (err) {
      log(`stop failed: ${(err as Error).message}`);
      rc = 1;
    }
    server.close();
    await rm(paths.socket, { force: true });
    await rm(paths.pid, { force: true });
    log(`control process exiting (${rc})`);
    exit(rc);
  };

  // The trust rotation reads the proxies' /identity and writes the bundle they watch.
  const rotation = o.controlPlane?.rotation;
  rotation?.attach({
    proxies: () =>
      mesh
        .status()
        .pods.filter((p) => p.meshed && p.ip !== '' && p.phase === 'Running' && p.terminating !== true)
        .map((p) => ({ pod: `${p.namespace}/${p.name}`, ip: p.ip })),
    token: () => readTapToken(o.stateDir).catch(() => undefined),
    publish: (text) => mesh.publishTrust(text),
    log,
  });

  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/trust' || req.url?.startsWith('/trust/') === true) {
      if (rotation === undefined) return send(404, { error: 'this mesh has no control plane: no trust to rotate' });
      return void trustRoute(rotation, req, send);
    }
    if (req.method === 'GET' && req.url === '/status') return send(200, mesh.status());
    if (req.method === 'GET' && req.url === '/version') return send(200, versionView());
    if (req.method === 'GET' && req.url === '/metrics') {
      // The control plane's own metrics (the issuer's expiry): Prometheus text.
      const text = o.controlPlane?.metricsText?.() ?? Promise.resolve('');
      void text.then(
        (t) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(t),
        (err: unknown) => send(500, { error: (err as Error).message }),
      );
      return;
    }
    if (req.method === 'GET' && (req.url === '/observe' || req.url?.startsWith('/observe?') === true)) {
      const window = Number(new URL(req.url, 'http://control').searchParams.get('window') ?? '60');
      if (!Number.isFinite(window) || window <= 0 || window > MAX_WINDOW_SEC)
        return send(400, { error: `window must be from 1 to ${MAX_WINDOW_SEC} seconds` });
      const snap: ObserveSnapshot = aggregate(mesh.status(), history, {
        now: Date.now(),
        windowSec: window,
        scrapeIntervalSec: SCRAPE_INTERVAL_MS / 1000,
        scrapeErrors: scraper.errors(),
      });
      return send(200, snap);
    }
    if (req.method === 'POST' && req.url === '/apply') {
      void readBody(req).then(
        async (body) => {
          const files = parseApplyBody(body);
          if (typeof files === 'string') return send(400, { error: files });
          try {
            send(200, await mesh.apply(files));
          } catch (err) {
            send(err instanceof ManifestError ? 422 : 409, { error: (err as Error).message });
          }
        },
        (err: unknown) => send(413, { error: (err as Error).message }),
      );
      return;
    }
    if (req.method === 'POST' && req.url === '/shutdown') {
      send(202, { stopping: true });
      void shutdown(mesh.status().phase === 'Failed' ? 1 : 0);
      return;
    }
    send(404, { error: `no route ${req.method ?? ''} ${req.url ?? ''}` });
  });
  // An apply waits for its pods to become ready, which can take minutes.
  server.requestTimeout = 0;
  await rm(paths.socket, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(paths.socket, () => resolve());
  });
  await chmod(paths.socket, 0o600); // the API can stop the mesh: root only
  await writeFile(paths.pid, `${process.pid}\n`, { mode: 0o644 });
  process.once('SIGTERM', () => void shutdown(0));
  process.once('SIGINT', () => void shutdown(0));
  process.on('SIGHUP', () => undefined);
  // A bug here must not leave pods running with nobody in charge: stop everything and exit.
  process.on('uncaughtException', (err) => {
    log(`internal error: ${err.stack ?? err.message}`);
    void shutdown(1);
  });
  log(`control process ${process.pid} serving ${paths.socket}`);

  void (async () => {
    if (o.resume === true) {
      try {
        await mesh.resume();
      } catch (err) {
        log(`resume failed: ${(err as Error).message}`);
        await mesh.stop().catch((e: unknown) => log(`stop failed: ${(e as Error).message}`));
        setTimeout(() => void shutdown(1), FAILED_LINGER_MS).unref();
      }
      return;
    }
    let files: ManifestFile[];
    try {
      files = await Promise.all(
        o.files.map(async (f) => ({ path: resolve(f), name: f, text: await readFile(f, 'utf8') })),
      );
    } catch (err) {
      log(`manifests: ${(err as Error).message}`);
      return void shutdown(1);
    }
    scraper.start();
    try {
      await mesh.start(files);
    } catch (err) {
      log(`failed: ${(err as Error).message}`);
      // Tear down now, but keep answering for a while so that `up` can tell the user why.
      await mesh.stop().catch((e: unknown) => log(`stop failed: ${(e as Error).message}`));
      setTimeout(() => void shutdown(1), FAILED_LINGER_MS).unref();
    }
  })();
  return exited;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`request body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `{ files: [{ path, name, text }] }`, or what is wrong with it. */
function parseApplyBody(body: string): ManifestFile[] | string {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return 'apply: the body is not JSON';
  }
  const files = (v as { files?: unknown }).files;
  if (!Array.isArray(files) || files.length === 0) return 'apply: expected {"files": [{"path", "name", "text"}, ...]}';
  for (const f of files as unknown[]) {
    const x = f as Record<string, unknown>;
    if (
      typeof x.path !== 'string' ||
      !x.path.startsWith('/') ||
      typeof x.name !== 'string' ||
      typeof x.text !== 'string'
    ) {
      return 'apply: each file needs an absolute "path", a "name" and its "text"';
    }
  }
  return files as ManifestFile[];
}

/** GET /trust (the stage, every proxy's state), POST /trust/rotate {anchor, anchorKeyPem?, timeoutMs},
 *  POST /trust/rollback {timeoutMs}: the rotation runs in the daemon; the CLI follows GET /trust. */
async function trustRoute(
  rotation: TrustManager,
  req: http.IncomingMessage,
  send: (status: number, body: unknown) => void,
): Promise<void> {
  try {
    if (req.method === 'GET' && req.url === '/trust') return send(200, await rotation.status());
    if (req.method !== 'POST') return send(405, { error: `no route ${req.method ?? ''} ${req.url ?? ''}` });
    const body = JSON.parse((await readBody(req)) || '{}') as {
      anchor?: unknown;
      anchorKeyPem?: unknown;
      timeoutMs?: unknown;
    };
    const timeoutMs = typeof body.timeoutMs === 'number' && body.timeoutMs > 0 ? body.timeoutMs : 300_000;
    if (req.url === '/trust/rotate') {
      const stage = await rotation.rotate({
        anchor: body.anchor === true,
        ...(typeof body.anchorKeyPem === 'string' ? { anchorKeyPem: body.anchorKeyPem } : {}),
        timeoutMs,
      });
      return send(202, { stage });
    }
    if (req.url === '/trust/rollback') return send(202, { stage: rotation.rollback({ timeoutMs }) });
    send(404, { error: `no route ${req.method} ${req.url ?? ''}` });
  } catch (err) {
    send(err instanceof TrustRotationError ? err.status : 500, { error: (err as Error).message });
  }
}
