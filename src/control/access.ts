// Who is calling the control plane: the mesh identity of a call's client certificate, when it presented
// one that verified against the trust anchor (TLS asks every client; ./tls.ts). What each service needs:
// - identity (Certify): nothing; the ServiceAccount token in the request is the proof (a proxy has no
//   certificate before its first Certify);
// - destination: nothing; it answers what cluster DNS answers any pod (a Service's endpoints), plus the
//   identities proxies need to check their peers, which are no secret;
// - policy: a client certificate, and only about pods whose identity is the certificate's (a pod cannot
//   read another identity's authorizations, routes and rate limits).
import grpc from '@grpc/grpc-js';
import { parseSpiffeId, type SpiffeId } from '../api/identity.js';
import { OutriggerError } from '../core/errors.js';

export const AccessCodes = {
  /** A call that needs a client certificate came without one the mesh's trust anchor verifies. */
  UNAUTHENTICATED: 'OUTR_ERR_CONTROL_UNAUTHENTICATED',
  /** The client's identity may not ask about what it asked about. */
  PERMISSION_DENIED: 'OUTR_ERR_CONTROL_PERMISSION_DENIED',
} as const;

export type AccessCode = (typeof AccessCodes)[keyof typeof AccessCodes];

/** A refusal of a call, with the gRPC status it ends with. */
export class AccessError extends OutriggerError {
  declare readonly code: AccessCode;
  readonly status: grpc.status;
  constructor(code: AccessCode, message: string) {
    super(code, message);
    this.name = 'AccessError';
    this.status = code === AccessCodes.UNAUTHENTICATED ? grpc.status.UNAUTHENTICATED : grpc.status.PERMISSION_DENIED;
  }
}

/** The identity of the call's verified client certificate (its one URI SAN, a workload identity), or
 *  undefined without one. grpc-js reports a peer certificate only when it verified (`authorized`). */
export function clientIdentity(call: {
  getAuthContext(): { sslPeerCertificate?: { subjectaltname?: string } };
}): SpiffeId | undefined {
  const san = call.getAuthContext().sslPeerCertificate?.subjectaltname;
  if (san === undefined) return undefined;
  const uris = san
    .split(', ')
    .filter((n: string) => n.startsWith('URI:'))
    .map((n: string) => n.slice(4));
  if (uris.length !== 1) return undefined;
  return parseSpiffeId(uris[0] as string)?.id;
}
