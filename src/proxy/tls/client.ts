// The outbound side of mesh TLS: originates TLS 1.3 to a peer proxy's inbound port with our current
// certificate as the client certificate, verifies the server's chain against the trust anchor, and
// accepts the server only if its URI SAN is exactly the identity discovery gave us for it: any other
// certificate from the same CA is refused. The ALPN id says what the connection carries. No SNI is
// sent (./alpn.ts says why).
import net from 'node:net';
import tls from 'node:tls';
import type { SpiffeId } from '../../api/identity.js';
import type { MeshAlpn } from './alpn.js';
import { MeshTlsError, TlsCodes } from './errors.js';
import { identityFromSan, type IdentitySource } from './server.js';

export interface MeshTlsConnectOptions {
  readonly identity: IdentitySource;
  /** Who the server must be (from discovery). */
  readonly serverId: SpiffeId;
  readonly alpn: MeshAlpn;
  /** A connected (or connecting) socket to the peer proxy; or give host and port. */
  readonly socket?: net.Socket;
  readonly host?: string;
  readonly port?: number;
  /** The handshake must finish within this (ms); default 10000. */
  readonly timeoutMs?: number;
}

/** The checkServerIdentity of mesh TLS: the only SAN must be exactly `expected`. */
export function checkMeshServerIdentity(
  expected: SpiffeId,
): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const got = identityFromSan(cert.subjectaltname);
    if (got === expected) return undefined;
    const what = got ?? (cert.subjectaltname ? `"${cert.subjectaltname}"` : 'no identity');
    return new MeshTlsError(TlsCodes.PEER_IDENTITY, `mesh tls: server presented ${what}, expected ${expected}`);
  };
}

/** Connects and resolves with the TLS socket once the server is verified; rejects with a MeshTlsError. */
export function connectMeshTls(opts: MeshTlsConnectOptions): Promise<tls.TLSSocket> {
  const cert = opts.identity.current();
  if (cert === undefined) {
    opts.socket?.destroy();
    return Promise.reject(new MeshTlsError(TlsCodes.NO_IDENTITY, `mesh tls to ${opts.serverId}: no certificate yet`));
  }
  return new Promise((resolve, reject) => {
    const target =
      opts.socket === undefined
        ? `${opts.host ?? '?'}:${opts.port ?? '?'}`
        : `${opts.socket.remoteAddress ?? '?'}:${opts.socket.remotePort ?? '?'}`;
    const socket = tls.connect({
      ...(opts.socket !== undefined ? { socket: opts.socket } : { host: opts.host, port: opts.port }),
      // The context of the certificate held now: a rotation later does not touch this connection.
      secureContext: cert.secureContext,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: [opts.alpn],
      rejectUnauthorized: true,
      checkServerIdentity: checkMeshServerIdentity(opts.serverId),
    });
    const timer = setTimeout(() => {
      socket.destroy(
        new MeshTlsError(
          TlsCodes.HANDSHAKE,
          `mesh tls to ${opts.serverId} at ${target}: handshake timed out after ${opts.timeoutMs ?? 10_000}ms`,
        ),
      );
    }, opts.timeoutMs ?? 10_000);
    const onError = (err: Error) => {
      clearTimeout(timer);
      if (err instanceof MeshTlsError) {
        reject(err);
        return;
      }
      const reason = (err as NodeJS.ErrnoException).code ?? err.message;
      reject(
        new MeshTlsError(TlsCodes.HANDSHAKE, `mesh tls to ${opts.serverId} at ${target}: handshake failed: ${reason}`, {
          cause: err,
          reason,
        }),
      );
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      if (socket.alpnProtocol !== opts.alpn) {
        socket.destroy();
        reject(
          new MeshTlsError(
            TlsCodes.HANDSHAKE,
            `mesh tls to ${opts.serverId} at ${target}: server did not agree to ${opts.alpn}`,
          ),
        );
        return;
      }
      resolve(socket);
    });
  });
}
