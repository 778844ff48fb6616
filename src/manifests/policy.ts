// The policy kinds (policy.outrigger.io/v1beta1) as zod (v4) schemas: who may call which port and route
// of which pods, and how fast. Self-contained on purpose (only zod is imported, and the policy names
// from api/policy-names.ts, which imports nothing): the Kubernetes CRD schemas are generated from these
// with z.toJSONSchema, and the local loader validates with the same ones. The model follows Gateway API
// policy attachment and the server/authorization split of existing meshes (Linkerd's policy.linkerd.io):
// a Server selects pods and a port; an AuthorizationPolicy attaches to a Server, an inbound route on it
// or a whole Namespace, and names the authentications a client must pass (all of them);
// MeshTLSAuthentication and NetworkAuthentication say who clients are.
// Rules that span documents (a targetRef that must exist) are checked in policy-check.ts.
import * as z from 'zod';

export const POLICY_GROUP = 'policy.outrigger.io';
export const POLICY_API_VERSION = 'policy.outrigger.io/v1beta1';

/** The default inbound policies, for traffic no Server covers (mesh flag, namespace and pod annotation). */
export {
  DEFAULT_POLICY_NAMES as DEFAULT_INBOUND_POLICIES,
  type DefaultPolicyName as DefaultInboundPolicy,
} from '../api/policy-names.js';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const label = z
  .string()
  .max(63)
  .regex(DNS1123_LABEL, { error: "must be a DNS label: lowercase letters, digits and '-'" });
const name = z
  .string()
  .max(253)
  .regex(DNS1123_SUBDOMAIN, { error: "must be a DNS subdomain: lowercase letters, digits, '-' and '.'" });
const portNumber = z
  .int()
  .min(1, { error: 'must be an integer from 1 to 65535' })
  .max(65535, { error: 'must be an integer from 1 to 65535' });
const portName = z
  .string()
  .max(15)
  .regex(IANA_SVC_NAME, { error: 'must be a container port name (IANA_SVC_NAME)' })
  .refine((s) => /[a-z]/.test(s) && !s.includes('--'), { error: 'must be a container port name (IANA_SVC_NAME)' });
const stringMap = z.record(z.string(), z.string());

/** ObjectMeta as the local loader accepts it (tools' read-only fields are accepted and ignored). */
const metadata = z.strictObject({
  name,
  namespace: label.default('default'),
  labels: stringMap.default({}),
  annotations: stringMap.default({}),
  uid: z.unknown().optional(),
  resourceVersion: z.unknown().optional(),
  generation: z.unknown().optional(),
  creationTimestamp: z.unknown().optional(),
  managedFields: z.unknown().optional(),
});

const labelSelector = z.strictObject({
  matchLabels: stringMap.default({}),
  matchExpressions: z
    .array(
      z.strictObject({
        key: z.string().min(1),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(z.string()).default([]),
      }),
    )
    .default([]),
});

/** IPv4 CIDR (a.b.c.d/n) or a single address (taken as /32). IPv6 is not supported yet. */
const CIDR =
  /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}(\/([0-9]|[12][0-9]|3[0-2]))?$/;
export const cidr = z.string().regex(CIDR, { error: 'must be an IPv4 CIDR such as "10.0.0.0/8" (or one address)' });

/** A SPIFFE id with `*` wildcards (each `*` stands for one path segment or part of one), or `*` alone
 *  for any authenticated client. */
const IDENTITY = /^(\*|spiffe:\/\/[A-Za-z0-9.*-]+(\/[A-Za-z0-9._*-]+)*)$/;
const identity = z.string().regex(IDENTITY, {
  error: 'must be "*" or a SPIFFE id such as "spiffe://cluster.local/ns/prod/sa/web", with "*" wildcards',
});

const rps = z
  .int({ error: 'must be a whole number of requests per second' })
  .min(1, { error: 'must be at least 1' })
  .max(1_000_000, { error: 'must be at most 1000000' });

/** apiVersion must be POLICY_API_VERSION; the loader checks it (with one message for every kind). */
// apiVersion is checked once, against the kind, by the loader (load.ts), which can say what it must
// be; a schema check as well told a user of a missing one twice.
const top = { apiVersion: z.unknown().optional(), status: z.unknown().optional() };

// ---- Server -------------------------------------------------------------------------------------

export const PROXY_PROTOCOLS = ['unknown', 'HTTP/1', 'HTTP/2', 'gRPC', 'opaque', 'TLS'] as const;
export type ProxyProtocol = (typeof PROXY_PROTOCOLS)[number];

export const serverSchema = z.strictObject({
  ...top,
  kind: z.literal('Server'),
  metadata,
  spec: z.strictObject({
    /** The pods of this namespace it covers; `{}` selects every pod of the namespace. */
    podSelector: labelSelector.describe('The pods of this namespace it covers; {} selects every pod of the namespace.'),
    /** A container port number, or the name of a container port of the selected pods. */
    port: z
      .union([portNumber, portName], { error: 'must be a port number from 1 to 65535 or a container port name' })
      .describe('A container port number, or the name of a container port of the selected pods.'),
    /** How the proxy treats the port: `unknown` detects the protocol; `opaque` forwards bytes without
     *  detection (as config.outrigger.io/opaque-ports); the HTTP ones and `TLS` are hints. */
    proxyProtocol: z
      .enum(PROXY_PROTOCOLS)
      .default('unknown')
      .describe('unknown: detect; opaque: forward bytes without detection; HTTP/1, HTTP/2, gRPC, TLS: hints.'),
  }),
});

// ---- AuthorizationPolicy ------------------------------------------------------------------------

const targetRef = z.strictObject({
  /** `policy.outrigger.io` for a Server, `gateway.networking.k8s.io` for a route, `core` or "" for a Namespace. */
  group: z.string().default(POLICY_GROUP),
  kind: z.enum(['Server', 'HTTPRoute', 'GRPCRoute', 'Namespace']),
  name,
  /** Must be the policy's own namespace when given. */
  namespace: label.optional(),
});

const authenticationRef = z.strictObject({
  group: z.string().optional(),
  kind: z.enum(['MeshTLSAuthentication', 'NetworkAuthentication', 'ServiceAccount']),
  name,
  /** MeshTLSAuthentication and NetworkAuthentication: the policy's own namespace when absent.
   *  ServiceAccount: any namespace. */
  namespace: label.optional(),
});

export const authorizationPolicySchema = z.strictObject({
  ...top,
  kind: z.literal('AuthorizationPolicy'),
  metadata,
  spec: z.strictObject({
    /** What it authorizes clients for: a Server, an HTTPRoute or GRPCRoute (attached to a Server), or
     *  every Server of a Namespace (its own). */
    targetRef: targetRef.describe(
      "A Server, an inbound HTTPRoute or GRPCRoute, or the policy's own Namespace (every Server in it).",
    ),
    /** Every one of these must accept the client (AND); an empty list authorizes every client. */
    requiredAuthenticationRefs: z
      .array(authenticationRef)
      .max(16)
      .default([])
      .describe(
        'Every one must accept the client (MeshTLSAuthentication, NetworkAuthentication, ServiceAccount); empty: every client.',
      ),
  }),
});

// ---- MeshTLSAuthentication ----------------------------------------------------------------------

const identityRef = z.strictObject({
  group: z.string().optional(),
  kind: z.enum(['ServiceAccount', 'Namespace']),
  /** `*` with kind Namespace: every namespace. */
  name: z.union([name, z.literal('*')]),
  namespace: label.optional(),
});

export const meshTLSAuthenticationSchema = z
  .strictObject({
    ...top,
    kind: z.literal('MeshTLSAuthentication'),
    metadata,
    spec: z.strictObject({
      /** Client identities (SPIFFE ids with `*` wildcards); any one of them (or of identityRefs) passes. */
      identities: z
        .array(identity)
        .max(64)
        .optional()
        .describe('SPIFFE ids with * wildcards (one path segment), or * for any mesh identity.'),
      /** ServiceAccounts (namespace: the object's own when absent) and Namespaces whose every account passes. */
      identityRefs: z
        .array(identityRef)
        .max(64)
        .optional()
        .describe('ServiceAccounts, and Namespaces whose every account passes (name * for all).'),
    }),
  })
  .refine((d) => (d.spec.identities?.length ?? 0) + (d.spec.identityRefs?.length ?? 0) > 0, {
    error: 'needs identities or identityRefs (at least one)',
    path: ['spec'],
  });

// ---- NetworkAuthentication ----------------------------------------------------------------------

export const networkAuthenticationSchema = z.strictObject({
  ...top,
  kind: z.literal('NetworkAuthentication'),
  metadata,
  spec: z.strictObject({
    /** A client whose address is in one of these (and in none of its `except`) passes. */
    networks: z
      .array(
        z.strictObject({
          cidr,
          except: z.array(cidr).max(64).default([]).describe('Networks or addresses inside cidr that do not pass.'),
        }),
      )
      .min(1)
      .max(64)
      .describe('A client whose address is in one of these, and in none of its exceptions, passes.'),
  }),
});

// ---- HTTPLocalRateLimitPolicy -------------------------------------------------------------------

export const httpLocalRateLimitPolicySchema = z.strictObject({
  ...top,
  kind: z.literal('HTTPLocalRateLimitPolicy'),
  metadata,
  spec: z.strictObject({
    /** The Server (in this namespace) whose inbound HTTP requests are limited, per pod. */
    targetRef: z.strictObject({
      group: z.string().default(POLICY_GROUP),
      kind: z.literal('Server'),
      name,
    }),
    /** Every request to the server, whoever sends it. */
    total: z
      .strictObject({ requestsPerSecond: rps })
      .optional()
      .describe('Every request to the server, whoever sends it, per pod.'),
    /** Each client identity separately (unmeshed clients: each client address). */
    identity: z
      .strictObject({ requestsPerSecond: rps })
      .optional()
      .describe('Each client identity separately (unmeshed clients: each address), per pod.'),
    /** Clients with a rate of their own instead of `identity`'s. */
    overrides: z
      .array(
        z.strictObject({
          requestsPerSecond: rps,
          clientRefs: z
            .array(
              z.strictObject({
                group: z.string().optional(),
                kind: z.literal('ServiceAccount'),
                name,
                namespace: label.optional(),
              }),
            )
            .min(1)
            .max(64),
        }),
      )
      .max(64)
      .default([])
      .describe("Clients with a rate of their own instead of identity's."),
  }),
});

/** Every policy kind, with its schema. */
export const POLICY_KINDS = {
  Server: serverSchema,
  AuthorizationPolicy: authorizationPolicySchema,
  MeshTLSAuthentication: meshTLSAuthenticationSchema,
  NetworkAuthentication: networkAuthenticationSchema,
  HTTPLocalRateLimitPolicy: httpLocalRateLimitPolicySchema,
} as const;

export type PolicyKindName = keyof typeof POLICY_KINDS;

export type ServerDoc = z.output<typeof serverSchema>;
export type AuthorizationPolicyDoc = z.output<typeof authorizationPolicySchema>;
export type MeshTLSAuthenticationDoc = z.output<typeof meshTLSAuthenticationSchema>;
export type NetworkAuthenticationDoc = z.output<typeof networkAuthenticationSchema>;
export type HTTPLocalRateLimitPolicyDoc = z.output<typeof httpLocalRateLimitPolicySchema>;
export type PolicyDoc =
  | ServerDoc
  | AuthorizationPolicyDoc
  | MeshTLSAuthenticationDoc
  | NetworkAuthenticationDoc
  | HTTPLocalRateLimitPolicyDoc;
