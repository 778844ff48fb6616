// Hosts the Identity gRPC service on the control plane's server: decodes Certify, calls the Certifier,
// and is the one rescue point that turns identity errors into gRPC status codes. Unexpected errors
// become INTERNAL without details (they are logged, never sent).
import grpc from '@grpc/grpc-js';
import type { CertifyRequest, CertifyResponse } from '../../api/identity.js';
import { identityServiceDefinition } from '../../api/load.js';
import type { Logger } from '../../core/log.js';
import type { Certifier } from './certify.js';
import { IdentityCodes, IdentityError, type IdentityCode } from './errors.js';

export interface IdentityServiceDeps {
  readonly certifier: Certifier;
  readonly log?: Logger;
}

const STATUS: Record<IdentityCode, grpc.status> = {
  [IdentityCodes.UNAUTHENTICATED]: grpc.status.UNAUTHENTICATED,
  [IdentityCodes.PERMISSION_DENIED]: grpc.status.PERMISSION_DENIED,
  [IdentityCodes.INVALID_ARGUMENT]: grpc.status.INVALID_ARGUMENT,
};

/** The gRPC status for an error thrown by Certify (INTERNAL, without details, for anything untyped). */
export function toStatus(err: unknown): { code: grpc.status; details: string } {
  if (err instanceof IdentityError) return { code: STATUS[err.code], details: err.message };
  return { code: grpc.status.INTERNAL, details: 'internal error' };
}

export function addIdentityService(server: grpc.Server, deps: IdentityServiceDeps): void {
  const impl: grpc.UntypedServiceImplementation = {
    Certify: (
      call: grpc.ServerUnaryCall<CertifyRequest, CertifyResponse>,
      callback: grpc.sendUnaryData<CertifyResponse>,
    ) => {
      const req = call.request;
      deps.certifier.certify(req.token ?? '', req.csr_pem ?? '').then(
        (c) => {
          deps.log?.info(
            {
              identity: c.identity,
              pod: `${c.subject.namespace}/${c.subject.pod.name}`,
              serial: c.serial,
              notAfter: c.notAfter.toISOString(),
            },
            'certified',
          );
          callback(null, {
            leaf_pem: c.leafPem,
            chain_pem: c.chainPem,
            trust_anchor_pem: c.trustAnchorPem,
            not_after_unix_seconds: Math.floor(c.notAfter.getTime() / 1000),
            identity: c.identity,
          });
        },
        (err: unknown) => {
          const s = toStatus(err);
          if (s.code === grpc.status.INTERNAL) deps.log?.error({ err }, 'certify failed');
          else deps.log?.warn({ code: (err as IdentityError).code, reason: s.details }, 'certify refused');
          callback({ code: s.code, details: s.details, metadata: new grpc.Metadata() });
        },
      );
    },
  };
  server.addService(identityServiceDefinition(), impl);
}
