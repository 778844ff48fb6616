// RequestMirror for HTTP/1: a copy of a request without a body, sent fire and forget to an endpoint of
// the mirror backend (mesh TLS when it is meshed); its answer is read and dropped. Off the hot path
// (only rules with a mirror filter), bounded (MAX_MIRRORS in flight, the rest dropped and counted).
import http from 'node:http';
import net from 'node:net';
import type { SpiffeId } from '../../api/identity.js';
import type { Direction, ProxyMetrics } from '../metrics.js';
import type { BackendTarget } from '../route/router.js';
import { MESH_ALPN } from '../tls/alpn.js';
import type { MeshTls } from '../transport/mtls.js';

/** Mirrored requests in flight at most, per proxy. */
export const MAX_MIRRORS = 64;
/** A mirror that has not finished by then is cut (ms). */
const MIRROR_TIMEOUT_MS = 10_000;

let inFlight = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 16, maxFreeSockets: 4 });

export interface MirrorContext {
  readonly metrics: ProxyMetrics;
  readonly direction: Direction;
  readonly mtls?: MeshTls;
}

/** Sends a copy of a body-less request (`fields`: alternating name, value, as forwarded) to `backend`. */
export function mirrorHttp1(
  ctx: MirrorContext,
  targetKey: string,
  backend: BackendTarget,
  method: string,
  target: string,
  fields: readonly string[],
): void {
  const count = (result: string) =>
    ctx.metrics.mirrorTotal.inc({ direction: ctx.direction, target_addr: targetKey, result });
  const ep = backend.balancer.pick();
  if (ep === undefined || inFlight >= MAX_MIRRORS) {
    count('dropped');
    return;
  }
  inFlight++;
  const start = ep.begin();
  let done = false;
  const finish = (ok: boolean) => {
    if (done) return;
    done = true;
    inFlight--;
    ep.end(start, ok);
    count(ok ? 'sent' : 'failed');
  };
  const headers: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = (fields[i] as string).toLowerCase();
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
    headers.push(fields[i] as string, fields[i + 1] as string);
  }
  const mtls = ctx.mtls;
  const serverId = ep.identity !== undefined && mtls !== undefined ? (ep.identity as SpiffeId) : undefined;
  const opts: http.RequestOptions = {
    host: ep.addr.host,
    port: ep.addr.port,
    method,
    path: target,
    headers,
    ...(serverId !== undefined && mtls !== undefined
      ? {
          createConnection: () =>
            mtls.originate(
              net.connect({ host: ep.addr.host, port: ep.addr.port, noDelay: true }),
              ep.key,
              serverId,
              MESH_ALPN.http1,
            ),
        }
      : { agent }),
  };
  try {
    const req = http.request(opts, (res) => {
      res.on('error', () => finish(false));
      res.on('end', () => finish(true));
      res.resume();
    });
    req.setTimeout(MIRROR_TIMEOUT_MS, () => req.destroy());
    req.on('error', () => finish(false));
    req.on('close', () => finish(false));
    req.end();
  } catch {
    finish(false);
  }
}
