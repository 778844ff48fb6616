// Mesh TLS on the data path: the proxy's side of ../tls with its identity, metrics and typed errors.
// Outbound, `originate` starts TLS to a peer proxy and gives the TLS socket back at once (writes are
// held, corked, until the server is verified, so that not one byte reaches a peer that is not who
// discovery said); inbound, `terminate` accepts a mesh ClientHello the listener recognised.
import type net from 'node:net';
import tls from 'node:tls';
import type { SpiffeId } from '../../api/identity.js';
import type { Logger } from '../../core/log.js';
import type { MeshAlpn } from '../tls/alpn.js';
import { checkMeshServerIdentity } from '../tls/client.js';
import { MeshTlsError, TlsCodes } from '../tls/errors.js';
import { MeshTlsServer, type IdentitySource, type MeshTlsConnection } from '../tls/server.js';
import { Codes, ProxyError } from '../errors/errors.js';
import type { Direction, ProxyMetrics } from '../metrics.js';

/** Why a handshake failed, as the tls_handshake_errors_total reason label says it. */
export type TlsFailureReason = 'handshake' | 'peer_identity' | 'no_identity' | 'timeout';

/** The proxy's errors for TLS failures on sockets `originate` made, keyed by the error the socket
 *  emitted: HTTP/2 sees that error only as the cause of its cancelled streams. */
const upstreamErrors = new WeakMap<object, ProxyError>();

/** The proxy error for an error emitted by a socket from `originate` (undefined for any other error). */
export function meshUpstreamError(err: unknown): ProxyError | undefined {
  return typeof err === 'object' && err !== null ? upstreamErrors.get(err) : undefined;
}

export interface MeshTlsOptions {
  readonly identity: IdentitySource;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  /** A peer that has not finished its handshake after this long is dropped (ms). */
  readonly handshakeTimeoutMs: number;
}

export class MeshTls {
  readonly identity: IdentitySource;
  readonly #server: MeshTlsServer;
  readonly #metrics: ProxyMetrics;
  readonly #log: Logger;
  #warned = false;

  constructor(opts: MeshTlsOptions) {
    this.identity = opts.identity;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    this.#server = new MeshTlsServer({ identity: opts.identity, handshakeTimeoutMs: opts.handshakeTimeoutMs });
  }

  /** Counts a failed handshake; the first one is logged at warn (a degraded mode logs once). */
  failed(direction: Direction, reason: TlsFailureReason, message: string): void {
    this.#metrics.tlsHandshakeErrors?.inc({ direction, reason });
    const level = this.#warned ? 'debug' : 'warn';
    this.#warned = true;
    this.#log[level]({ direction, reason, err: message }, 'mesh tls handshake failed (first one logged at warn, then debug)');
  }

  /**
   * Starts mesh TLS over `raw` (connected or still connecting) to the proxy that must be `serverId`,
   * with `alpn` saying what is carried. Returns the TLS socket at once; it emits 'secureConnect' once
   * the server is verified, or 'error' with an error `meshUpstreamError` maps (and counts) otherwise.
   * `label` names the endpoint in messages.
   */
  originate(raw: net.Socket, label: string, serverId: SpiffeId, alpn: MeshAlpn): tls.TLSSocket {
    const cert = this.identity.current();
    let rawConnected = !raw.connecting;
    if (!rawConnected) raw.once('connect', () => (rawConnected = true));
    const checkIdentity = checkMeshServerIdentity(serverId);
    const socket: tls.TLSSocket = tls.connect({
      socket: raw,
      // The context of the certificate held now: a rotation later does not touch this connection. No
      // certificate yet: the handshake is refused below before anything is sent.
      ...(cert !== undefined ? { secureContext: cert.secureContext } : {}),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: [alpn],
      rejectUnauthorized: true,
      // Runs once the chain verified, before 'secureConnect': the exact identity, and the ALPN agreed.
      checkServerIdentity: (host, peer): Error | undefined =>
        checkIdentity(host, peer) ??
        (socket.alpnProtocol !== alpn ? new MeshTlsError(TlsCodes.HANDSHAKE, `mesh tls to ${serverId}: server did not agree to ${alpn}`) : undefined),
    });
    // Held until verified (callers may write at once; a corked socket passes nothing down).
    socket.cork();
    socket.once('secureConnect', () => socket.uncork());
    const onError = (err: Error) => {
      if (upstreamErrors.has(err)) return;
      const e = this.#classify(err, label, serverId, rawConnected);
      if (e !== undefined) upstreamErrors.set(err, e);
    };
    socket.on('error', onError);
    socket.once('secureConnect', () => socket.off('error', onError));
    if (cert === undefined) {
      const err = new MeshTlsError(TlsCodes.NO_IDENTITY, `upstream ${label}: mesh tls to ${serverId}: this proxy holds no certificate yet`);
      // Nothing was sent yet (the connection is still being made); 'error' is emitted on a later tick.
      socket.destroy(err);
      raw.destroy();
    }
    return socket;
  }

  /** Destroys a socket from `originate` whose handshake took too long; returns the (counted) error. */
  timeout(socket: tls.TLSSocket, label: string, serverId: SpiffeId, ms: number): ProxyError {
    const err = new MeshTlsError(TlsCodes.HANDSHAKE, `upstream ${label}: mesh tls to ${serverId}: handshake timed out after ${ms}ms`);
    const e = new ProxyError(Codes.UPSTREAM_TLS, err.message, { cause: err });
    upstreamErrors.set(err, e);
    this.failed('outbound', 'timeout', err.message);
    socket.destroy(err);
    return e;
  }

  #classify(err: Error, label: string, serverId: SpiffeId, rawConnected: boolean): ProxyError | undefined {
    if (err instanceof MeshTlsError) {
      if (err.code === TlsCodes.NO_IDENTITY) {
        this.failed('outbound', 'no_identity', err.message);
        return new ProxyError(Codes.NO_IDENTITY, err.message, { cause: err });
      }
      const message = `upstream ${label}: ${err.message}`;
      if (err.code === TlsCodes.PEER_IDENTITY) {
        this.failed('outbound', 'peer_identity', message);
        return new ProxyError(Codes.UPSTREAM_IDENTITY, message, { cause: err });
      }
      this.failed('outbound', 'handshake', message);
      return new ProxyError(Codes.UPSTREAM_TLS, message, { cause: err });
    }
    // A TCP failure before the connection was up is a connect error, not a TLS one (the caller maps it).
    if (!rawConnected && (err as NodeJS.ErrnoException).syscall !== undefined) return undefined;
    const reason = (err as NodeJS.ErrnoException).code ?? err.message;
    const message = `upstream ${label}: mesh tls to ${serverId}: handshake failed: ${reason}`;
    this.failed('outbound', 'handshake', message);
    return new ProxyError(Codes.UPSTREAM_TLS, message, { cause: err });
  }

  /**
   * Inbound: terminates mesh TLS on `raw`, whose first bytes (`initial`, already read) are a mesh
   * ClientHello. Resolves with the decrypted socket, the client's identity and the ALPN; undefined when
   * the handshake failed (counted, and the socket is gone).
   */
  async terminate(raw: net.Socket, initial: Buffer): Promise<MeshTlsConnection | undefined> {
    try {
      return await this.#server.accept(raw, initial);
    } catch (err) {
      const e = err as MeshTlsError;
      this.failed('inbound', e.code === TlsCodes.PEER_IDENTITY ? 'peer_identity' : e.code === TlsCodes.NO_IDENTITY ? 'no_identity' : 'handshake', e.message);
      raw.destroy();
      return undefined;
    }
  }

  close(): void {
    this.#server.close();
  }
}
