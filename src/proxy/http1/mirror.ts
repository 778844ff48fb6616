// RequestMirror for HTTP/1: a copy of a request without a body, sent fire and forget to the endpoint of
// a mirror ticket (../request/mirror.ts: the bound and the counts); mesh TLS when it is meshed. Its
// answer is read and dropped.
import http from 'node:http';
import net from 'node:net';
import type { SpiffeId } from '../../api/identity.js';
import { MESH_ALPN } from '../tls/alpn.js';
import type { MeshTls } from '../transport/mtls.js';
import { MIRROR_TIMEOUT_MS, type MirrorTicket } from '../request/mirror.js';

const agent = new http.Agent({ keepAlive: true, maxSockets: 16, maxFreeSockets: 4 });

/** Sends a copy of a body-less request (`fields`: alternating name, value, as forwarded) with `ticket`. */
export function mirrorHttp1(
  mtls: MeshTls | undefined,
  ticket: MirrorTicket,
  method: string,
  target: string,
  fields: readonly string[],
): void {
  const ep = ticket.endpoint;
  const finish = (ok: boolean) => ticket.finish(ok);
  const headers: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = (fields[i] as string).toLowerCase();
    if (name === 'content-length' || name === 'transfer-encoding' || name === 'connection') continue;
    headers.push(fields[i] as string, fields[i + 1] as string);
  }
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
