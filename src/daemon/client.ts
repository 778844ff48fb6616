// The daemon's client: requests to the local mesh's control process over its unix socket (status,
// observe, apply), the status it last saved for when it is gone, the limits of its API, and the mesh's
// tap token (for the tap client in src/observe).
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import type { VersionView } from '../core/version.js';
import type { ObserveSnapshot } from '../observe/stats.js';
import type { ApplyResult, ManifestFile, MeshStatus } from '../runtime/mesh.js';
import { readJson, statePaths } from '../runtime/state.js';

/** How often the control process scrapes every proxy's metrics, and how far back it keeps them. */
export const SCRAPE_INTERVAL_MS = 3000;
export const METRICS_RETENTION_MS = 15 * 60_000;
/** The longest window GET /observe computes (the retention). */
export const MAX_WINDOW_SEC = METRICS_RETENTION_MS / 1000;

/** Sends manifests to the running mesh; resolves when they are in force (new pods ready). */
export function applyManifests(
  stateDir: string,
  files: readonly ManifestFile[],
  timeoutMs: number,
): Promise<ApplyResult> {
  return controlRequest<ApplyResult>(stateDir, 'POST', '/apply', timeoutMs, JSON.stringify({ files }));
}

/** A request to the control process's API; rejects if it is not answering. */
export function controlRequest<T>(
  stateDir: string,
  method: 'GET' | 'POST',
  path: string,
  timeoutMs = 5000,
  body?: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const headers =
      body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {};
    const req = http.request(
      { socketPath: statePaths(stateDir).socket, method, path, timeout: timeoutMs, headers },
      (res) => {
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
      },
    );
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

/** The local mesh's tap token, from `<stateDir>/tap-token` (0600, root). */
export async function readTapToken(stateDir: string): Promise<string> {
  return (await readFile(statePaths(stateDir).tapToken, 'utf8')).trim();
}
