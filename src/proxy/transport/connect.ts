// Opening connections to upstreams: TCP_NODELAY always, a connect timeout, and errors turned into
// the proxy's typed errors (refused → 502, timed out → 504).
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Codes, ProxyError, upstreamConnectError } from '../errors/errors.js';
import type { SocketAddr } from '../../core/addr.js';
import type { SpiffeId } from '../../api/identity.js';
import type { MeshAlpn } from '../tls/alpn.js';
import { meshUpstreamError, type MeshTls } from './mtls.js';
import { socketInNetns } from './origdst.js';

/**
 * A TCP connection to the upstream `host:port`. Only the inbound side of a per-host data plane's node
 * proxy differs (--inbound-netns): its socket is made inside the pod's network namespace, so that it
 * reaches the app from inside the pod as a sidecar's does (never crossing the bridge in clear) and,
 * owned by the proxy's uid, is let through by the pod's rules rather than redirected back to the proxy.
 */
export function dial(
  cfg: { readonly inboundNetns: string | undefined },
  direction: 'inbound' | 'outbound',
  host: string,
  port: number,
  allowHalfOpen = false,
): net.Socket {
  const ns = direction === 'inbound' ? cfg.inboundNetns : undefined;
  if (ns === undefined) return net.connect({ host, port, noDelay: true, allowHalfOpen });
  let fd: number;
  try {
    fd = socketInNetns(ns, net.isIPv6(host) ? 6 : 4);
  } catch (err) {
    // As a failed connect: the caller's error handler answers the client (502 or a reset).
    const s = new net.Socket();
    process.nextTick(() => s.destroy(err as Error));
    return s;
  }
  const s = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen });
  s.setNoDelay(true);
  return s.connect({ host, port });
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
  from?: { readonly cfg: { readonly inboundNetns: string | undefined }; readonly direction: 'inbound' | 'outbound' },
): Connecting {
  // Half-open allowed: a server's FIN must not end our side while the client still sends (opaque TCP).
  const raw =
    from !== undefined
      ? dial(from.cfg, from.direction, addr.host, addr.port, true)
      : net.connect({ host: addr.host, port: addr.port, noDelay: true, allowHalfOpen: true });
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
