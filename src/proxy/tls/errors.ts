// Typed errors of mesh TLS. The inbound and outbound rescue points map them to a TCP reset or a 502/503
// (and count them); messages name the peer and never contain key material.
import { OutriggerError } from '../../core/errors.js';

export const TlsCodes = {
  /** The proxy holds no certificate yet, so it cannot speak mesh TLS. */
  NO_IDENTITY: 'OUTR_ERR_TLS_NO_IDENTITY',
  /** The handshake failed: the peer's chain does not verify to our trust anchor, is expired, no
   *  client certificate, no common ALPN, timeout, reset. */
  HANDSHAKE: 'OUTR_ERR_TLS_HANDSHAKE',
  /** The chain verified but the peer is not who it must be (server), or has no mesh identity (client). */
  PEER_IDENTITY: 'OUTR_ERR_TLS_PEER_IDENTITY',
} as const;

export type TlsCode = (typeof TlsCodes)[keyof typeof TlsCodes];

export class MeshTlsError extends OutriggerError {
  declare readonly code: TlsCode;
  /** OpenSSL's or Node's reason when there is one, e.g. CERT_HAS_EXPIRED. */
  readonly reason?: string;
  constructor(code: TlsCode, message: string, options?: { cause?: unknown; reason?: string }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeshTlsError';
    if (options?.reason !== undefined) this.reason = options.reason;
  }
}
