// The inbound side of mesh TLS: terminates TLS 1.3 with the proxy's current certificate, requires a
// client certificate that verifies to the trust anchor, and tells the caller who the client is (the
// SPIFFE ID in its URI SAN) and what the connection carries (ALPN). A rotation changes the certificate
// of new connections only; open ones keep the one they were made with.
//
// Clients may resume: the server issues TLS 1.3 session tickets (two after each full handshake) and
// accepts them for SESSION_LIFETIME_S. A resumed session carries the client certificate verified when
// it was made, so the client's identity is known the same way. The tickets are sealed with keys of the
// secure context, and a rotation makes a new context with new random keys: tickets issued before it are
// no longer accepted, and those clients make a full handshake with the new certificate (and trust anchor).
import { MESH_ECDH_CURVE } from './groups.js';
import { constants } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { parseSpiffeId, type SpiffeId } from '../../api/identity.js';
import type { IdentityCert } from '../identity/identity.js';
import { MESH_ALPN_LIST, isMeshAlpn, type MeshAlpn } from './alpn.js';
import { MeshTlsError, TlsCodes } from './errors.js';
import { SESSION_LIFETIME_S } from './sessions.js';

/** What mesh TLS needs from the proxy's identity (ProxyIdentity provides it). */
export interface IdentitySource {
  current(): IdentityCert | undefined;
  onRotate(fn: (c: IdentityCert) => void): () => void;
}

export interface MeshTlsServerOptions {
  readonly identity: IdentitySource;
  /** A client that has not finished its handshake after this long is dropped (ms); default 10000. */
  readonly handshakeTimeoutMs?: number;
  /** ALPN ids accepted; default all three. */
  readonly alpn?: readonly MeshAlpn[];
  /** Issue session tickets and let clients resume with them; default true. */
  readonly sessionResumption?: boolean;
}

export interface MeshTlsConnection {
  readonly socket: tls.TLSSocket;
  /** The client's identity, from the only URI SAN of its verified certificate. */
  readonly clientId: SpiffeId;
  readonly alpn: MeshAlpn;
  /** The client resumed a session (a ticket this server issued): no certificate was sent this time. */
  readonly resumed: boolean;
}

interface Pending {
  resolve(c: MeshTlsConnection): void;
  reject(e: MeshTlsError): void;
  done: boolean;
}

/** Our certificates carry exactly one SAN, the identity: `URI:spiffe://...`. */
export function identityFromSan(san: string | undefined): SpiffeId | undefined {
  if (san === undefined || !san.startsWith('URI:') || san.includes(', ')) return undefined;
  return parseSpiffeId(san.slice(4))?.id;
}

/**
 * Accepts mesh TLS on sockets the inbound listener already has (after it recognised the ClientHello).
 * Node's tls.Server does the handshake and the chain verification (it never listens itself); this
 * class adds the identity checks and turns its events into one promise per connection.
 */
export class MeshTlsServer {
  readonly #opts: MeshTlsServerOptions;
  readonly #pending = new WeakMap<net.Socket, Pending>();
  #server: tls.Server | undefined;
  #trustDomain: string | undefined;
  readonly #stopRotate: () => void;

  constructor(opts: MeshTlsServerOptions) {
    this.#opts = opts;
    const cur = opts.identity.current();
    if (cur !== undefined) this.#use(cur);
    this.#stopRotate = opts.identity.onRotate((c) => this.#use(c));
  }

  /**
   * Runs the server handshake on `raw`. `initial` is what the caller already read from it (the
   * ClientHello bytes seen by detection); they are put back first. Resolves once the client is verified;
   * rejects with a MeshTlsError (the socket is then destroyed).
   */
  accept(raw: net.Socket, initial?: Buffer): Promise<MeshTlsConnection> {
    const server = this.#server;
    if (server === undefined) {
      raw.destroy();
      return Promise.reject(new MeshTlsError(TlsCodes.NO_IDENTITY, 'inbound mesh tls: no certificate yet'));
    }
    return new Promise((resolve, reject) => {
      const p: Pending = { resolve, reject, done: false };
      this.#pending.set(raw, p);
      // If the TLS socket dies before a verdict, its raw socket closes: never leave the caller waiting.
      // (Deferred: the tls.Server reports the reason, if any, just after the close.)
      raw.once('close', () =>
        setImmediate(() =>
          this.#fail(
            p,
            new MeshTlsError(TlsCodes.HANDSHAKE, 'inbound mesh tls: connection closed during the handshake'),
          ),
        ),
      );
      if (initial !== undefined && initial.length > 0) raw.unshift(initial);
      server.emit('connection', raw);
    });
  }

  close(): void {
    this.#stopRotate();
  }

  #use(c: IdentityCert): void {
    const options: tls.SecureContextOptions = {
      key: c.keyPem,
      cert: c.leafPem + c.chainPem,
      ca: c.trustAnchorPem,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      // The server picks the first of the client's groups it has too (./groups.ts).
      ecdhCurve: MESH_ECDH_CURVE,
      // Set, not left to the default: Node documents 300 s, but unset it leaves OpenSSL's 7200 s in force.
      sessionTimeout: SESSION_LIFETIME_S,
      // Off: the tickets sent are stateful (session ids), and as the server keeps no session cache, none
      // of them ever resumes.
      ...(this.#opts.sessionResumption === false ? { secureOptions: constants.SSL_OP_NO_TICKET } : {}),
    };
    this.#trustDomain = parseSpiffeId(c.identity)?.trustDomain;
    if (this.#server !== undefined) {
      this.#server.setSecureContext(options);
      return;
    }
    const server = tls.createServer({
      ...options,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [...(this.#opts.alpn ?? MESH_ALPN_LIST)],
      handshakeTimeout: this.#opts.handshakeTimeoutMs ?? 10_000,
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => this.#onSecure(socket));
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => this.#onError(err, socket));
    this.#server = server;
  }

  /** The raw socket a tls.Server wrapped: Node keeps it as `_parent` on the TLS socket it creates. */
  #pendingOf(socket: tls.TLSSocket): Pending | undefined {
    const raw = (socket as unknown as { _parent?: net.Socket })._parent;
    return raw === undefined ? undefined : this.#pending.get(raw);
  }

  #onSecure(socket: tls.TLSSocket): void {
    const p = this.#pendingOf(socket);
    if (p === undefined || p.done) {
      socket.destroy();
      return;
    }
    const alpn = socket.alpnProtocol;
    const resumed = socket.isSessionReused();
    // Resumed: the certificate verified when the session was made (OpenSSL keeps it in the session).
    const peer = socket.getPeerX509Certificate();
    const san = peer?.subjectAltName;
    const clientId = identityFromSan(san);
    if (!isMeshAlpn(alpn)) {
      socket.destroy();
      this.#fail(
        p,
        new MeshTlsError(
          TlsCodes.HANDSHAKE,
          `inbound mesh tls from ${socket.remoteAddress ?? '?'}: no mesh alpn agreed`,
        ),
      );
      return;
    }
    if (clientId === undefined || parseSpiffeId(clientId)?.trustDomain !== this.#trustDomain) {
      socket.destroy();
      const got = san === undefined ? 'no subject alternative name' : san;
      this.#fail(
        p,
        new MeshTlsError(
          TlsCodes.PEER_IDENTITY,
          `inbound mesh tls from ${socket.remoteAddress ?? '?'}: client certificate has no identity of trust domain ${this.#trustDomain ?? '?'} (${got})`,
        ),
      );
      return;
    }
    // A resumption verifies no certificate: one that expired since the full handshake (at most
    // SESSION_LIFETIME_S ago) is refused here, as that handshake would refuse it now.
    if (resumed && !(Date.parse(peer?.validTo ?? '') > Date.now())) {
      socket.destroy();
      this.#fail(
        p,
        new MeshTlsError(
          TlsCodes.HANDSHAKE,
          `inbound mesh tls from ${socket.remoteAddress ?? '?'}: resumed session of ${clientId}: its certificate expired`,
        ),
      );
      return;
    }
    p.done = true;
    p.resolve({ socket, clientId, alpn, resumed });
  }

  #onError(err: Error, socket: tls.TLSSocket): void {
    const p = this.#pendingOf(socket);
    if (p === undefined) return;
    // A client certificate that does not verify ends in a reset whose message hides why; OpenSSL's
    // reason is kept in authorizationError.
    const reason =
      (socket.authorizationError as unknown as string | undefined) ??
      (err as NodeJS.ErrnoException).code ??
      err.message;
    this.#fail(
      p,
      new MeshTlsError(TlsCodes.HANDSHAKE, `inbound mesh tls: handshake failed: ${reason}`, { cause: err, reason }),
    );
  }

  #fail(p: Pending, e: MeshTlsError): void {
    if (p.done) return;
    p.done = true;
    p.reject(e);
  }
}
