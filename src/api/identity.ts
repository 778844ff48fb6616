// The identity API shared by the control plane and the proxy: workload identities (SPIFFE IDs), the
// Certify messages of identity.proto as TypeScript types, and the Certify call. The server's
// definition is in load.ts.
import type { GrpcChannel, Method } from './grpc/channel.js';
import { API } from './proto/registry.js';

/** `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`, the identity in a URI SAN. */
export type SpiffeId = string & { readonly __brand: 'SpiffeId' };

export interface WorkloadName {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** SPIFFE ID spec section 2.1: lower-case letters, digits, dots, dashes and underscores. */
const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;
/** A Kubernetes namespace is a DNS-1123 label. */
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A ServiceAccount name is a DNS-1123 subdomain. */
const SERVICE_ACCOUNT = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/** Why a trust domain cannot be used, or undefined when it is fine. */
export function trustDomainProblem(td: string): string | undefined {
  if (!TRUST_DOMAIN.test(td)) {
    return `trust domain "${td}" is not valid (expected 1 to 255 lower-case letters, digits, ".", "-" or "_", like cluster.local)`;
  }
  if (td === '.' || td === '..') return `trust domain "${td}" is not valid`;
  return undefined;
}

/** Builds the identity of a ServiceAccount; throws a RangeError naming the part that is not valid. */
export function spiffeIdFor(w: WorkloadName): SpiffeId {
  const tdProblem = trustDomainProblem(w.trustDomain);
  if (tdProblem !== undefined) throw new RangeError(tdProblem);
  if (!NAMESPACE.test(w.namespace))
    throw new RangeError(`namespace "${w.namespace}" is not a valid kubernetes namespace name`);
  if (!SERVICE_ACCOUNT.test(w.serviceAccount)) {
    throw new RangeError(`service account "${w.serviceAccount}" is not a valid kubernetes service account name`);
  }
  return `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}` as SpiffeId;
}

/** Parses a workload identity of the form above; undefined for anything else (other paths included). */
export function parseSpiffeId(text: string): (WorkloadName & { readonly id: SpiffeId }) | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(text);
  if (!m) return undefined;
  const [, trustDomain, namespace, serviceAccount] = m as unknown as [string, string, string, string];
  if (
    trustDomainProblem(trustDomain) !== undefined ||
    !NAMESPACE.test(namespace) ||
    !SERVICE_ACCOUNT.test(serviceAccount)
  )
    return undefined;
  return { trustDomain, namespace, serviceAccount, id: text as SpiffeId };
}

// Messages, with the field names of identity.proto.

export interface CertifyRequest {
  token: string;
  csr_pem: string;
}

export interface CertifyResponse {
  leaf_pem: string;
  chain_pem: string;
  trust_anchor_pem: string;
  /** int64: a decimal string when received; a number or string when sent. */
  not_after_unix_seconds: string | number;
  identity: string;
}

export const IDENTITY_CERTIFY: Method<CertifyRequest, CertifyResponse> = API.method(
  '/outrigger.identity.v1.Identity/Certify',
);

/** Asks for a certificate; rejects with a GrpcError (`.code`, `.details`) when the server refuses, or
 *  after `timeoutMs` (DEADLINE_EXCEEDED). */
export function certify(channel: GrpcChannel, request: CertifyRequest, timeoutMs = 10_000): Promise<CertifyResponse> {
  return channel.unary(IDENTITY_CERTIFY, request, { timeoutMs });
}
