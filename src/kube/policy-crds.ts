// The policy kinds' CRDs (policy.outrigger.io/v1beta1): names, plurals and printer columns here; the
// OpenAPI schemas come from the same zod schemas the manifests are validated with
// (src/manifests/policy.ts, through crds.ts).
import type { z } from 'zod';
import { POLICY_API_VERSION, POLICY_GROUP, POLICY_KINDS } from '../manifests/policy.js';
import type { CrdKind, PrinterColumn } from './crds.js';
import { internalError } from '../core/errors.js';

export { POLICY_GROUP };
export const POLICY_VERSION = POLICY_API_VERSION.slice(POLICY_GROUP.length + 1);

interface KindNames {
  readonly plural: string;
  readonly shortNames: readonly string[];
  readonly printerColumns: readonly PrinterColumn[];
  readonly description: string;
}

export const POLICY_KIND_NAMES: Readonly<Record<string, KindNames>> = {
  Server: {
    plural: 'servers',
    shortNames: ['srv'],
    description: 'A port of a set of pods, which authorization policies and rate limits attach to.',
    printerColumns: [
      { name: 'Port', type: 'string', jsonPath: '.spec.port' },
      { name: 'Protocol', type: 'string', jsonPath: '.spec.proxyProtocol' },
    ],
  },
  AuthorizationPolicy: {
    plural: 'authorizationpolicies',
    shortNames: ['authzpolicy'],
    description: 'Which clients may reach a Server, a route on it, or every Server of a namespace.',
    printerColumns: [
      { name: 'Target-Kind', type: 'string', jsonPath: '.spec.targetRef.kind' },
      { name: 'Target-Name', type: 'string', jsonPath: '.spec.targetRef.name' },
    ],
  },
  MeshTLSAuthentication: {
    plural: 'meshtlsauthentications',
    shortNames: ['meshtlsauthn'],
    description: 'Clients known by their mesh identity (mTLS).',
    printerColumns: [{ name: 'Identities', type: 'string', jsonPath: '.spec.identities' }],
  },
  NetworkAuthentication: {
    plural: 'networkauthentications',
    shortNames: ['netauthn'],
    description: 'Clients known by their address.',
    printerColumns: [{ name: 'Networks', type: 'string', jsonPath: '.spec.networks[*].cidr' }],
  },
  HTTPLocalRateLimitPolicy: {
    plural: 'httplocalratelimitpolicies',
    shortNames: ['ratelimit'],
    description: 'Per-pod limits on the HTTP requests a Server accepts.',
    printerColumns: [
      { name: 'Target', type: 'string', jsonPath: '.spec.targetRef.name' },
      { name: 'Total-RPS', type: 'integer', jsonPath: '.spec.total.requestsPerSecond' },
      { name: 'Identity-RPS', type: 'integer', jsonPath: '.spec.identity.requestsPerSecond' },
    ],
  },
};

/** Resource names for RBAC, whether or not the schemas are here yet. */
export const POLICY_RESOURCES: readonly string[] = Object.values(POLICY_KIND_NAMES).map((k) => k.plural);

/** One CrdKind per schema given (kind name → zod schema of the document). A kind without names above
 *  is an error: a new kind needs its plural and columns here. */
export function policyCrdKinds(schemas: Readonly<Record<string, z.ZodType>>): CrdKind[] {
  return Object.entries(schemas).map(([kind, schema]) => {
    const names = POLICY_KIND_NAMES[kind];
    if (names === undefined) throw internalError(`policy kind ${kind} has no CRD names in src/kube/policy-crds.ts`);
    return { group: POLICY_GROUP, version: POLICY_VERSION, kind, schema, ...names };
  });
}

export const POLICY_CRDS: readonly CrdKind[] = policyCrdKinds(POLICY_KINDS);
