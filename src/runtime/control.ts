// The control process of a local mesh (started in the background by `up`) and its client: it owns the
// network and the pods, hosts the control plane the proxies talk to, writes its pid, and serves JSON
// over HTTP on a unix socket in the state directory (status, version, apply, shutdown). Also the cleanup `down`
// does from the records when the control process is gone.
import http from 'node:http';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ManifestError } from './manifests/index.js';
import type { DefaultInboundPolicy } from '../control/store/store.js';
import { versionView, type VersionView } from '../core/version.js';
import { MetricsHistory } from '../observe/history.js';
import { MetricsScraper } from '../observe/scrape.js';
import { aggregate, type ObserveSnapshot } from '../observe/stats.js';
import { DEFAULT_PROXY_ADMIN_PORT } from './supervisor/pod.js';
import { parseNetRecord, teardownNetwork, type TeardownReport } from './net/index.js';
import { killNetnsProcesses, killRecordedProcesses } from './supervisor/index.js';
import { Mesh, type ApplyResult, type ControlPlaneHost, type ManifestFile, type MeshStatus } from './mesh.js';
import { ensureStateDir, readJson, removeStateFiles, statePaths } from './state.js';

export interface ControlOptions {
  readonly stateDir: string;
  readonly files: readonly string[];
  /** Take over the running mesh a killed control process left (Mesh.resume) instead of starting one. */
  readonly resume?: boolean;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  /** What serves the proxies (destination, identity): the CLI assembles it from src/control. */
  readonly controlPlane?: ControlPlaneHost;
  readonly readyTimeoutMs?: number;
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
  /** An OTLP/HTTP collector for every proxy's spans. */
  readonly traceCollector?: string;
}

/** The most a request body (manifests sent by `apply`) may be. */
const MAX_BODY = 8 << 20;

/** How often the control process scrapes every proxy's metrics, and how far back it keeps them. */
export const SCRAPE_INTERVAL_MS = 3000;
const METRICS_RETENTION_MS = 15 * 60_000;
/** The longest window GET /observe computes (the retention). */
export const MAX_WINDOW_SEC = METRICS_RETENTION_MS / 1000;

/** How long a failed mesh keeps answering (so that `up` can read why) before it exits on its own. */
const FAILED_LINGER_MS = 30_000;

/** Runs the control process until it is asked to stop; resolves with the exit code. */
export async function runControl(o: ControlOptions): Promise<number> {
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
        .map((p) => ({ key: `${p.namespace}/${p.name}`, url: `http://${p.ip}:${DEFAULT_PROXY_ADMIN_PORT}/metrics` })),
  });

  let exit!: (code: number) => void;
  const exited = new Promise<number>((r) => (exit = r));
  let shuttingDown = false;
  const shutdown = async (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    await scraper.stop();
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

  const server = http.createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/status') return send(200, mesh.status());
    if (req.method === 'GET' && req.url === '/version') return send(200, versionView());
    if (req.method === 'GET' && (req.url === '/observe' || req.url?.startsWith('/observe?') === true)) {
      const window = Number(new URL(req.url, 'http://control').searchParams.get('window') ?? '60');
      if (!Number.isFinite(window) || window <= 0 || window > MAX_WINDOW_SEC) return send(400, { error: `window must be from 1 to ${MAX_WINDOW_SEC} seconds` });
      const snap: ObserveSnapshot = aggregate(mesh.status(), history, { now: Date.now(), windowSec: window, scrapeIntervalSec: SCRAPE_INTERVAL_MS / 1000, scrapeErrors: scraper.errors() });
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
      files = await Promise.all(o.files.map(async (f) => ({ path: resolve(f), name: f, text: await readFile(f, 'utf8') })));
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
    if (typeof x.path !== 'string' || !x.path.startsWith('/') || typeof x.name !== 'string' || typeof x.text !== 'string') {
      return 'apply: each file needs an absolute "path", a "name" and its "text"';
    }
  }
  return files as ManifestFile[];
}

/** Sends manifests to the running mesh; resolves when they are in force (new pods ready). */
export function applyManifests(stateDir: string, files: readonly ManifestFile[], timeoutMs: number): Promise<ApplyResult> {
  return controlRequest<ApplyResult>(stateDir, 'POST', '/apply', timeoutMs, JSON.stringify({ files }));
}

/** A request to the control process's API; rejects if it is not answering. */
export function controlRequest<T>(stateDir: string, method: 'GET' | 'POST', path: string, timeoutMs = 5000, body?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const headers = body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {};
    const req = http.request({ socketPath: statePaths(stateDir).socket, method, path, timeout: timeoutMs, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 500) >= 300) {
          let why = text;
          try {
            why = (JSON.parse(text) as { error?: string }).error ?? text;
          } catch {
            // not JSON: keep the text
          }
          return reject(new ControlError(res.statusCode ?? 500, why));
        }
        try {
          resolve(JSON.parse(text) as T);
        } catch (err) {
          reject(err as Error);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`control process did not answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The control process answered with an error status; `message` is its explanation. */
export class ControlError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

/** The mesh's golden metrics over the last `windowSec` seconds. */
export function meshObserve(stateDir: string, windowSec: number): Promise<ObserveSnapshot> {
  return controlRequest<ObserveSnapshot>(stateDir, 'GET', `/observe?window=${windowSec}`);
}

/** The version of Outrigger (and of Node.js) the running control process is. */
export function controlVersion(stateDir: string): Promise<VersionView> {
  return controlRequest<VersionView>(stateDir, 'GET', '/version');
}

export function meshStatus(stateDir: string): Promise<MeshStatus> {
  return controlRequest<MeshStatus>(stateDir, 'GET', '/status');
}

/** The last status the control process wrote (for when it is gone). */
export async function savedStatus(stateDir: string): Promise<MeshStatus | undefined> {
  return (await readJson(statePaths(stateDir).state)) as MeshStatus | undefined;
}

export interface CleanupReport {
  readonly found: boolean;
  readonly killed: string[];
  readonly removed: string[];
  readonly warnings: string[];
}

/** `down` without a control process (it was killed, or crashed): kills every recorded process group
 *  and everything left in the pods' namespaces, then removes the network from its record, then the
 *  state files. Throws (TeardownError) if something could not be removed; the records stay for a retry. */
export async function cleanupFromRecords(stateDir: string): Promise<CleanupReport> {
  const paths = statePaths(stateDir);
  const procs = await killRecordedProcesses(stateDir);
  const warnings = [...procs.problems];
  const raw = await readJson(paths.net);
  let net: TeardownReport = { removed: [], warnings: [] };
  if (raw !== undefined) {
    const rec = parseNetRecord(raw);
    for (const p of rec.pods) {
      const pids = await killNetnsProcesses(p.netns).catch((e: unknown) => void warnings.push((e as Error).message));
      if (pids !== undefined && pids.length > 0) procs.killed.push(`${p.pod}: pids ${pids.join(', ')}`);
    }
    net = await teardownNetwork(rec);
  }
  const found = raw !== undefined || procs.killed.length > 0 || (await readFile(paths.pid, 'utf8').then(() => true, () => false));
  await removeStateFiles(stateDir);
  return { found, killed: procs.killed, removed: net.removed, warnings: [...warnings, ...net.warnings] };
}
