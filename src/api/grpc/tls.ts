// How the API's gRPC client reaches the control plane: TLS 1.3 only, the server's certificate verified
// against the mesh's trust anchors and its identity (the certificate's one URI SAN) checked to be exactly
// the one expected, all before the TLS socket is handed to HTTP/2, so nothing (a token least of all) is
// sent to a server that is not the control plane. Once the caller holds a certificate of its own it is
// presented as the client certificate (the policy service answers only a client that presents one).
import { isIP } from 'node:net';
import tls from 'node:tls';
import { OutriggerError } from '../../core/errors.js';

export const ChannelTlsCodes = {
  /** The server's certificate does not chain to the trust anchors (an unknown CA, an expired certificate). */
  UNTRUSTED: 'OUTR_ERR_CONTROL_TLS_UNTRUSTED',
  /** The server's certificate chains to the trust anchors but is for another identity. */
  IDENTITY: 'OUTR_ERR_CONTROL_TLS_IDENTITY',
} as const;

export type ChannelTlsCode = (typeof ChannelTlsCodes)[keyof typeof ChannelTlsCodes];

export class ChannelTlsError extends OutriggerError {
  declare readonly code: ChannelTlsCode;
  constructor(code: ChannelTlsCode, message: string) {
    super(code, message);
    this.name = 'ChannelTlsError';
  }
}

export interface ChannelTls {
  /** The trust anchors (PEM). A function is called again for every new connection, so that anchors
   *  read from a file follow the file. */
  readonly trustAnchors: string | (() => string);
  /** The identity the server must present: its certificate's URI SAN, e.g.
   *  spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane. */
  readonly serverIdentity: string;
}

/** A certificate the client presents: its key (PEM, in memory only) and its chain (leaf first). */
export interface ClientCertificate {
  readonly keyPem: string;
  readonly certChainPem: string;
}

/** The URI SANs of a certificate as node:tls reports them (`URI:a, DNS:b`). */
export function uriSans(subjectaltname: string | undefined): string[] {
  if (subjectaltname === undefined) return [];
  return subjectaltname
    .split(', ')
    .filter((n) => n.startsWith('URI:'))
    .map((n) => n.slice(4));
}

/** What a peer certificate claims, for messages: its URI SANs, else its subject, else "no certificate". */
function presentedIdentity(cert: tls.PeerCertificate | undefined): string {
  if (cert === undefined || cert.raw === undefined) return 'no certificate';
  const uris = uriSans(cert.subjectaltname);
  if (uris.length > 0) return uris.join(', ');
  const cn = cert.subject?.CN;
  return cn !== undefined && cn !== ''
    ? `a certificate without a uri san (cn ${String(cn)})`
    : 'a certificate without a uri san';
}

/** OpenSSL's verification failures (X509_V_ERR_*, as node names them): the chain is not trusted. */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
]);

/** A TLS connection to `host:port` that is handed on (its 'secureConnect') only once the server proved
 *  to be `o.serverIdentity` under the trust anchors. `describe` turns the error the socket failed with
 *  into a ChannelTlsError for an untrusted or wrong server, naming the identity expected and the one
 *  presented (other errors are returned as they are). */
export function connectTls(
  host: string,
  port: number,
  o: ChannelTls,
  clientCertificate: ClientCertificate | undefined,
): { socket: tls.TLSSocket; describe(err: Error): Error } {
  const anchors = typeof o.trustAnchors === 'function' ? o.trustAnchors() : o.trustAnchors;
  const expected = o.serverIdentity;
  let presented: string | undefined;
  const socket = tls.connect({
    host,
    port,
    // SNI only carries host names (RFC 6066 section 3); the identity checked is the URI SAN.
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ca: anchors,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    ALPNProtocols: ['h2'],
    ...(clientCertificate !== undefined ? { key: clientCertificate.keyPem, cert: clientCertificate.certChainPem } : {}),
    // Called only when the chain verified against `ca`: the exact identity, and nothing else, is accepted
    // (a host name plays no part: the control plane is named by its identity).
    checkServerIdentity: (_host, cert) => {
      const uris = uriSans(cert.subjectaltname);
      if (uris.length === 1 && uris[0] === expected) return undefined;
      return new ChannelTlsError(
        ChannelTlsCodes.IDENTITY,
        `the server presents the identity ${presentedIdentity(cert)}, expected ${expected} (refused before sending anything)`,
      );
    },
  });
  // node:tls verifies the chain before 'secureConnect' and destroys the socket with OpenSSL's error when
  // it fails; what the server presented is read here first, for that error's message only (the
  // decision is OpenSSL's and checkServerIdentity's above).
  socket.prependOnceListener('secure', () => {
    try {
      presented = presentedIdentity(socket.getPeerCertificate());
    } catch {
      presented = undefined;
    }
  });
  return { socket, describe: (err) => describe(err, expected, presented) };
}

function describe(err: Error & { code?: string }, expected: string, presented: string | undefined): Error {
  if (err instanceof ChannelTlsError || err.code === undefined || !VERIFY_CODES.has(err.code)) return err;
  return new ChannelTlsError(
    ChannelTlsCodes.UNTRUSTED,
    `the server's certificate is not trusted (${err.code}: ${err.message}): it presents ${presented ?? 'an unreadable certificate'}, expected ${expected} under the mesh's trust anchor (refused before sending anything)`,
  );
}
