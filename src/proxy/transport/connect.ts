// Opening connections to upstreams: TCP_NODELAY always, a connect timeout, and errors turned into
// the proxy's typed errors (refused → 502, timed out → 504).
import net from 'node:net';
import { Codes, ProxyError, upstreamConnectError } from '../errors/errors.js';
import type { SocketAddr } from '../../core/addr.js';

export interface Connecting {
  readonly socket: net.Socket;
  /** Clears the connect timer; call when the connection is no longer wanted. */
  cancel(): void;
}

/**
 * Connects to `addr`; `onReady` or `onError` is called once. Writes made before the connection is up
 * are queued by the socket and sent as soon as it is.
 */
export function connectUpstream(
  addr: SocketAddr,
  label: string,
  timeoutMs: number,
  onReady: (s: net.Socket) => void,
  onError: (e: ProxyError) => void,
): Connecting {
  // Half-open allowed: a server's FIN must not end our side while the client still sends (opaque TCP).
  const socket = net.connect({ host: addr.host, port: addr.port, noDelay: true, allowHalfOpen: true });
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    socket.destroy();
    onError(new ProxyError(Codes.CONNECT_TIMEOUT, `upstream ${label}: connect timed out after ${timeoutMs}ms`));
  }, timeoutMs);
  const onConnErr = (err: NodeJS.ErrnoException) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    onError(upstreamConnectError(label, err));
  };
  socket.once('error', onConnErr);
  socket.once('connect', () => {
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
