// Opening connections to upstreams: TCP_NODELAY always, a connect timeout, and errors turned into
// the proxy's typed errors (refused → 502, timed out → 504).
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Codes, ProxyError, upstreamConnectError } from '../errors/errors.js';
import type { SocketAddr } from '../../core/addr.js';
import type { SpiffeId } from '../../api/identity.js';
import type { MeshAlpn } from '../tls/alpn.js';
import { meshUpstreamError, type MeshTls } from './mtls.js';

/** The source address of a connection the proxy opens: only the inbound side of a per-host data plane
 *  sets one (--inbound-source-addr: the node's address, which the pod's rules let reach the app without
 *  being redirected back to the proxy). Sidecars leave it to the system. */
export function sourceAddr(
  cfg: { readonly inboundSourceAddr: string | undefined },
  direction: 'inbound' | 'outbound',
): string | undefined {
  return direction === 'inbound' ? cfg.inboundSourceAddr : undefined;
}

/** `net.connect` options with the source address when there is one. */
export function dialOptions(
  host: string,
  port: number,
  localAddress: string | undefined,
): { host: string; port: number; noDelay: true; localAddress?: string } {
  return localAddress !== undefined ? { host, port, noDelay: true, localAddress } : { host, port, noDelay: true };
}

/** Mesh TLS to a meshed endpoint: whom it must be, and what the connection carries. */
export interface MeshDial {
  readonly tls: MeshTls;
  readonly serverId: SpiffeId;
  readonly alpn: MeshAlpn;
}

export interface Connecting {
  readonly socket: net.Socket;
  /** Clears the connect timer; call when the connection is no longer wanted. */
  cancel(): void;
}

/**
 * Connects to `addr`; `onReady` or `onError` is called once. Writes made before the connection is up
 * are queued by the socket and sent as soon as it is. With `mesh`, the socket is the TLS socket and it
 * is up once the server is verified (TLS failures are the proxy's UPSTREAM_TLS / UPSTREAM_IDENTITY);
 * the timeout covers the connect and the handshake.
 */
export function connectUpstream(
  addr: SocketAddr,
  label: string,
  timeoutMs: number,
  onReady: (s: net.Socket) => void,
  onError: (e: ProxyError) => void,
  mesh?: MeshDial,
  localAddress?: string,
): Connecting {
  // Half-open allowed: a server's FIN must not end our side while the client still sends (opaque TCP).
  const raw = net.connect({
    host: addr.host,
    port: addr.port,
    noDelay: true,
    allowHalfOpen: true,
    ...(localAddress !== undefined ? { localAddress } : {}),
  });
  const socket = mesh === undefined ? raw : mesh.tls.originate(raw, label, mesh.serverId, mesh.alpn);
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    if (mesh !== undefined && !raw.connecting) {
      onError(mesh.tls.timeout(socket as TLSSocket, label, mesh.serverId, timeoutMs));
      return;
    }
    socket.destroy();
    onError(new ProxyError(Codes.CONNECT_TIMEOUT, `upstream ${label}: connect timed out after ${timeoutMs}ms`));
  }, timeoutMs);
  const onConnErr = (err: NodeJS.ErrnoException) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    onError((mesh !== undefined ? meshUpstreamError(err) : undefined) ?? upstreamConnectError(label, err));
  };
  socket.once('error', onConnErr);
  socket.once(mesh === undefined ? 'connect' : 'secureConnect', () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off('error', onConnErr);
    onReady(socket);
  });
  return {
    socket,
    cancel() {
      settled = true;
      clearTimeout(timer);
    },
  };
}
