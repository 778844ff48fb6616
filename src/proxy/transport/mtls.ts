// Mesh TLS on the data path: the proxy's side of ../tls with its identity, metrics and typed errors.
// Outbound, `originate` starts TLS to a peer proxy and gives the TLS socket back at once (writes are
// held, corked, until the server is verified, so that not one byte reaches a peer that is not who
// discovery said), resuming a TLS 1.3 session with that peer when it holds a ticket for it;
// inbound, `terminate` accepts a mesh ClientHello the listener recognised.
import type net from 'node:net';
import tls from 'node:tls';
import type { SpiffeId } from '../../api/identity.js';
import type { Logger } from '../../core/log.js';
import type { IdentityCert } from '../identity/identity.js';
import type { MeshAlpn } from '../tls/alpn.js';
import { checkMeshServerIdentity } from '../tls/client.js';
import { MESH_GROUPS, negotiatedGroup } from '../tls/groups.js';
import { MeshTlsError, TlsCodes } from '../tls/errors.js';
import { MeshTlsServer, type IdentitySource, type MeshTlsConnection } from '../tls/server.js';
import { SESSION_LIFETIME_S, SessionCache, sessionKey } from '../tls/sessions.js';
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

/** tls_handshakes_total's inbound label sets: a server-side socket cannot tell the group (./groups.ts). */
const INBOUND_FULL = { direction: 'inbound', resumed: 'false', group: 'unknown' } as const;
const INBOUND_RESUMED = { direction: 'inbound', resumed: 'true', group: 'unknown' } as const;

/** TLSSocket's own isSessionReused (originate shadows it on some sockets). */
const sessionReused = (socket: tls.TLSSocket): boolean => tls.TLSSocket.prototype.isSessionReused.call(socket);

function noAlpn(serverId: SpiffeId, alpn: MeshAlpn, resumed: boolean): MeshTlsError {
  return new MeshTlsError(
    TlsCodes.HANDSHAKE,
    `mesh tls to ${serverId}: ${resumed ? 'resumed session: ' : ''}server did not agree to ${alpn}`,
  );
}

export interface MeshTlsOptions {
  readonly identity: IdentitySource;
  readonly metrics: ProxyMetrics;
  readonly log: Logger;
  /** A peer that has not finished its handshake after this long is dropped (ms). */
  readonly handshakeTimeoutMs: number;
  /** Resume TLS sessions between proxies: outbound, offer the tickets peers sent; inbound, issue
   *  tickets and accept them. Default true. */
  readonly sessionResumption?: boolean;
}

export class MeshTls {
  readonly identity: IdentitySource;
  readonly #server: MeshTlsServer;
  readonly #metrics: ProxyMetrics;
  readonly #log: Logger;
  /** Tickets from peer proxies (undefined: resumption is off). */
  readonly #sessions: SessionCache | undefined;
  /** One number per certificate of ours, for the session keys. */
  readonly #certIds = new WeakMap<IdentityCert, number>();
  #lastCertId = 0;
  readonly #stopRotate: () => void;
  #warned = false;
  /** The key exchange group of the last outbound handshake (what `outrigger identity` shows). */
  #lastGroup: string | undefined;

  constructor(opts: MeshTlsOptions) {
    this.identity = opts.identity;
    this.#metrics = opts.metrics;
    this.#log = opts.log;
    const resumption = opts.sessionResumption !== false;
    this.#server = new MeshTlsServer({
      identity: opts.identity,
      handshakeTimeoutMs: opts.handshakeTimeoutMs,
      sessionResumption: resumption,
    });
    this.#sessions = resumption ? new SessionCache() : undefined;
    // The tickets of the previous certificate can no longer be offered (their key names it): let them go.
    this.#stopRotate = resumption ? opts.identity.onRotate(() => this.#sessions?.clear()) : () => undefined;
  }

  /** The groups this proxy offers, and the one its last outbound handshake agreed on (none yet: undefined). */
  keyExchange(): { readonly offered: readonly string[]; readonly lastNegotiated: string | undefined } {
    return { offered: MESH_GROUPS, lastNegotiated: this.#lastGroup };
  }

  /** Counts a failed handshake; the first one is logged at warn (a degraded mode logs once). */
  failed(direction: Direction, reason: TlsFailureReason, message: string): void {
    this.#metrics.tlsHandshakeErrors?.inc({ direction, reason });
    const level = this.#warned ? 'debug' : 'warn';
    this.#warned = true;
    this.#log[level](
      { direction, reason, err: message },
      'mesh tls handshake failed (first one logged at warn, then debug)',
    );
  }

  /**
   * Starts mesh TLS over `raw` (connected or still connecting) to the proxy that must be `serverId`,
   * with `alpn` saying what is carried. Returns the TLS socket at once; it emits 'secureConnect' once
   * the server is verified, or 'error' with an error `meshUpstreamError` maps (and counts) otherwise.
   * `label` names the endpoint in messages; it is its host:port, and part of the key of its sessions.
   *
   * Resumption: a ticket is offered only to a connection that expects the same identity as the one
   * the ticket came from (`sessionKey`), and the cache keeps only tickets of connections that passed
   * every check. Resuming, the server proves it holds that session (the ticket is sealed with its
   * keys, the handshake is keyed by the session's secret), so Node does not run checkServerIdentity
   * again; the ALPN is the one thing that check covers that belongs to the connection, not the session.
   */
  originate(raw: net.Socket, label: string, serverId: SpiffeId, alpn: MeshAlpn): tls.TLSSocket {
    const cert = this.identity.current();
    let rawConnected = !raw.connecting;
    if (!rawConnected) raw.once('connect', () => (rawConnected = true));
    const checkIdentity = checkMeshServerIdentity(serverId);
    const key =
      cert !== undefined && this.#sessions !== undefined
        ? sessionKey(this.#certId(cert), serverId, alpn, label)
        : undefined;
    const offered = key !== undefined ? this.#sessions?.offer(key) : undefined;
    // When the tickets of this connection must be dropped at the latest (ms since the epoch): the expiry
    // of the server's certificate, read at a full handshake, or, resumed, that of the ticket used (so
    // that resumptions never stretch trust in a certificate beyond it).
    let notAfter = offered?.expires;
    const socket: tls.TLSSocket = tls.connect({
      socket: raw,
      // The context of the certificate held now: a rotation later does not touch this connection. No
      // certificate yet: the handshake is refused below before anything is sent.
      ...(cert !== undefined ? { secureContext: cert.secureContext } : {}),
      ...(offered !== undefined ? { session: offered.session } : {}),
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      ALPNProtocols: [alpn],
      rejectUnauthorized: true,
      // Runs once the chain verified, before 'secureConnect': the exact identity, and the ALPN agreed.
      // Resumed, it runs only when the ALPN is not ours (see below), and no certificate came.
      checkServerIdentity: (host, peer): Error | undefined => {
        if (offered !== undefined && sessionReused(socket)) return noAlpn(serverId, alpn, true);
        const err =
          checkIdentity(host, peer) ?? (socket.alpnProtocol !== alpn ? noAlpn(serverId, alpn, false) : undefined);
        // valid_to reads like "Mar  4 12:00:00 2026 GMT" (Date.parse takes it; NaN keeps no ticket).
        if (err === undefined) notAfter = Date.parse(peer.valid_to);
        return err;
      },
    });
    if (offered !== undefined) {
      // Node skips checkServerIdentity on a resumed session (onConnectSecure: `!this.isSessionReused()`).
      // A resumption whose ALPN is not ours reads as none here, so Node runs the check above and
      // refuses the connection before 'secureConnect'. (Destroying the socket in a 'secureConnect'
      // listener instead would come too late: HTTP/2 waiting for that event aborts the process.)
      socket.isSessionReused = () => sessionReused(socket) && socket.alpnProtocol === alpn;
    }
    if (key !== undefined && cert !== undefined) {
      // Node emits 'session' only once the connection is verified (after 'secureConnect'); in TLS 1.3
      // the tickets arrive after the handshake (two after a full one, none after a resumption).
      socket.on('session', (session: Buffer) =>
        this.#sessions?.put(
          key,
          session,
          Math.min(Date.now() + SESSION_LIFETIME_S * 1000, notAfter ?? NaN, cert.notAfter.getTime()),
        ),
      );
    }
    // Held until verified (callers may write at once; a corked socket passes nothing down).
    socket.cork();
    const onError = (err: Error) => {
      if (upstreamErrors.has(err)) return;
      const e = this.#classify(err, label, serverId, rawConnected);
      if (e !== undefined) upstreamErrors.set(err, e);
    };
    socket.on('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      const resumed = socket.isSessionReused();
      const group = negotiatedGroup(socket) ?? 'unknown';
      this.#lastGroup = group;
      this.#metrics.tlsHandshakes?.inc({ direction: 'outbound', resumed: resumed ? 'true' : 'false', group });
      // The server did not take the ticket (it restarted, or rotated its certificate and so its
      // ticket keys): the other tickets of the key are no better (RFC 9149 section 3).
      if (offered !== undefined && !resumed && key !== undefined) this.#sessions?.drop(key);
      socket.uncork();
    });
    if (cert === undefined) {
      const err = new MeshTlsError(
        TlsCodes.NO_IDENTITY,
        `upstream ${label}: mesh tls to ${serverId}: this proxy holds no certificate yet`,
      );
      // Nothing was sent yet (the connection is still being made); 'error' is emitted on a later tick.
      socket.destroy(err);
      raw.destroy();
    }
    return socket;
  }

  /** Destroys a socket from `originate` whose handshake took too long; returns the (counted) error. */
  timeout(socket: tls.TLSSocket, label: string, serverId: SpiffeId, ms: number): ProxyError {
    const err = new MeshTlsError(
      TlsCodes.HANDSHAKE,
      `upstream ${label}: mesh tls to ${serverId}: handshake timed out after ${ms}ms`,
    );
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
      const c = await this.#server.accept(raw, initial);
      this.#metrics.tlsHandshakes?.inc(c.resumed ? INBOUND_RESUMED : INBOUND_FULL);
      return c;
    } catch (err) {
      const e = err as MeshTlsError;
      this.failed(
        'inbound',
        e.code === TlsCodes.PEER_IDENTITY
          ? 'peer_identity'
          : e.code === TlsCodes.NO_IDENTITY
            ? 'no_identity'
            : 'handshake',
        e.message,
      );
      raw.destroy();
      return undefined;
    }
  }

  close(): void {
    this.#server.close();
    this.#stopRotate();
    this.#sessions?.clear();
  }

  #certId(c: IdentityCert): number {
    let id = this.#certIds.get(c);
    if (id === undefined) this.#certIds.set(c, (id = ++this.#lastCertId));
    return id;
  }
}
