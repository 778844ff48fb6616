// The shapes of the Kubernetes kinds outrigger reads (the local runtime, the kubernetes store), as zod (v4) schemas in strict mode
// (unknown fields are errors, like `kubectl apply --validate=strict`), with Kubernetes' defaults.
// Rules that span fields or documents live in check.ts; turning zod issues into messages lives here.
import * as z from 'zod';
import { POLICY_API_VERSION, POLICY_KINDS } from './policy.js';

// ---- messages -------------------------------------------------------------------------------

/** Remembers, per input object that had unknown fields, which fields were allowed, so the message
 *  can suggest the closest one. Keyed by the input object itself (zod reports it with `reportInput`). */
const allowedFieldsOf = new WeakMap<object, readonly string[]>();

export function allowedFields(input: unknown): readonly string[] | undefined {
  return typeof input === 'object' && input !== null ? allowedFieldsOf.get(input) : undefined;
}

/** The fields `schema` allows at `path` (list indexes and map keys included), read from the schema
 *  itself: for objects not made with strict() below (the policy kinds' in policy.ts), whose unknown
 *  fields otherwise came with an empty "allowed here" list. Undefined where it cannot tell. */
export function fieldsAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): readonly string[] | undefined {
  let node: z.core.$ZodType | undefined = schema;
  let i = 0;
  while (node !== undefined) {
    const def = node._zod.def as z.core.$ZodTypeDef & {
      shape?: Record<string, z.core.$ZodType>;
      innerType?: z.core.$ZodType;
      element?: z.core.$ZodType;
      valueType?: z.core.$ZodType;
      in?: z.core.$ZodType;
    };
    if (def.type === 'optional' || def.type === 'nullable' || def.type === 'default' || def.type === 'prefault') {
      node = def.innerType;
    } else if (def.type === 'pipe') {
      node = def.in;
    } else if (i === path.length) {
      return def.type === 'object' && def.shape !== undefined ? Object.keys(def.shape) : undefined;
    } else if (def.type === 'object') {
      node = def.shape?.[String(path[i++])];
    } else if (def.type === 'array') {
      node = def.element;
      i++;
    } else if (def.type === 'record') {
      node = def.valueType;
      i++;
    } else {
      return undefined;
    }
  }
  return undefined;
}

/** A strict object: unknown fields are reported, and the allowed ones remembered for suggestions. */
function strict<S extends z.core.$ZodLooseShape>(shape: S) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys' && typeof iss.input === 'object' && iss.input !== null) {
        allowedFieldsOf.set(iss.input, allowed);
        return 'unknown field';
      }
      return undefined; // the parse-wide map below
    },
  });
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/** The parse-wide error map: plain lower-case messages without the value; the formatter in load.ts
 *  appends ", got <value>". Schemas with a domain rule (ports, names) carry their own message. */
export function errorMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'is required';
      return `must be ${EXPECTED[iss.expected] ?? iss.expected}`;
    case 'invalid_value':
      return `must be one of ${iss.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      if (iss.origin === 'array') return `must have at least ${iss.minimum} item${iss.minimum === 1 ? '' : 's'}`;
      if (iss.origin === 'string')
        return iss.minimum === 1 ? 'must not be empty' : `must be at least ${iss.minimum} characters`;
      return `must be at least ${iss.minimum}`;
    case 'too_big':
      if (iss.origin === 'string') return `must be at most ${iss.maximum} characters`;
      if (iss.origin === 'array') return `must have at most ${iss.maximum} items`;
      return `must be at most ${iss.maximum}`;
    case 'unrecognized_keys':
      return 'unknown field';
    case 'invalid_union':
      return 'does not match any allowed form';
    default:
      return undefined;
  }
}

// ---- building blocks ------------------------------------------------------------------------

/** A schema's own message for a domain rule, except that a missing value is "is required". */
function rule(message: string) {
  return { error: (iss: z.core.$ZodRawIssue) => (iss.input === undefined ? 'is required' : message) };
}

const PORT_MESSAGE = 'must be an integer from 1 to 65535';
export const port = z.int(rule(PORT_MESSAGE)).min(1, rule(PORT_MESSAGE)).max(65535, rule(PORT_MESSAGE));

const nonNegativeInt = z.int(rule('must be an integer of 0 or more')).min(0, rule('must be an integer of 0 or more'));
const positiveInt = z.int(rule('must be an integer of 1 or more')).min(1, rule('must be an integer of 1 or more'));

// Kubernetes' name rules (apimachinery validation): RFC 1123 labels and subdomains, RFC 1035 labels.
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const LABEL_MESSAGE =
  "must be a DNS label: at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
export const dnsLabel = z.string().regex(DNS1123_LABEL, rule(LABEL_MESSAGE)).max(63, rule(LABEL_MESSAGE));

const SERVICE_NAME_MESSAGE =
  "must be a DNS-1035 label: at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
export const dns1035Label = z
  .string()
  .regex(DNS1035_LABEL, rule(SERVICE_NAME_MESSAGE))
  .max(63, rule(SERVICE_NAME_MESSAGE));

const SUBDOMAIN_MESSAGE =
  "must be a DNS subdomain: at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";
export const dnsSubdomain = z
  .string()
  .regex(DNS1123_SUBDOMAIN, rule(SUBDOMAIN_MESSAGE))
  .max(253, rule(SUBDOMAIN_MESSAGE));

/** IANA_SVC_NAME (RFC 6335): what a container port name and a named targetPort must be. */
const IANA_SVC_NAME_MESSAGE =
  "must be a port name: at most 15 lowercase letters, digits and '-', with at least one letter, no '--', not starting or ending with '-'";
export const portName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, rule(IANA_SVC_NAME_MESSAGE))
  .max(15, rule(IANA_SVC_NAME_MESSAGE))
  .refine((s) => /[a-z]/.test(s) && !s.includes('--'), rule(IANA_SVC_NAME_MESSAGE));

const portOrName = z.union([port, portName], rule('must be a port number from 1 to 65535 or a port name'));

/** Label and annotation maps: string to string. Key syntax is checked in check.ts. */
const stringMap = z.record(z.string(), z.string());

const restartPolicy = z.enum(['Always', 'OnFailure', 'Never']);
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);

/** ObjectMeta fields that tools (kubectl, Helm, kustomize, `get -o yaml`) write and that we accept and
 *  ignore, so a manifest exported from a cluster still loads. */
const ignoredMeta = {
  uid: z.unknown().optional(),
  resourceVersion: z.unknown().optional(),
  generation: z.unknown().optional(),
  creationTimestamp: z.unknown().optional(),
  deletionTimestamp: z.unknown().optional(),
  deletionGracePeriodSeconds: z.unknown().optional(),
  ownerReferences: z.unknown().optional(),
  finalizers: z.unknown().optional(),
  managedFields: z.unknown().optional(),
  generateName: z.unknown().optional(),
  selfLink: z.unknown().optional(),
};

function objectMeta<N extends z.ZodType<string>>(name: N) {
  return strict({
    name,
    /** Every namespaced object without one lives in `default`, as with kubectl. */
    namespace: dnsLabel.default('default'),
    labels: stringMap.default({}),
    annotations: stringMap.default({}),
    ...ignoredMeta,
  });
}

/** A pod template's metadata: no name of its own (pods are named after their Deployment). */
const templateMeta = strict({
  name: z.string().optional(),
  namespace: z.string().optional(),
  labels: stringMap.default({}),
  annotations: stringMap.default({}),
  ...ignoredMeta,
});

// ---- containers and pods --------------------------------------------------------------------

const envVar = strict({
  name: z
    .string()
    .min(1)
    .refine((s) => !s.includes('='), { error: "must not contain '='" }),
  value: z.string().optional(),
  valueFrom: strict({
    fieldRef: strict({
      fieldPath: z.enum([
        'metadata.name',
        'metadata.namespace',
        'metadata.uid',
        'spec.serviceAccountName',
        'spec.nodeName',
        'status.podIP',
        'status.hostIP',
      ]),
      apiVersion: z.string().optional(),
    }),
  }).optional(),
});

const containerPort = strict({
  containerPort: port,
  name: portName.optional(),
  protocol: protocol.default('TCP'),
});

const probe = strict({
  httpGet: strict({
    path: z.string().default('/'),
    port: portOrName,
    host: z.string().optional(),
    scheme: z.enum(['HTTP', 'HTTPS']).default('HTTP'),
    httpHeaders: z.array(strict({ name: z.string().min(1), value: z.string() })).default([]),
  }).optional(),
  tcpSocket: strict({ port: portOrName, host: z.string().optional() }).optional(),
  exec: strict({ command: z.array(z.string()).min(1) }).optional(),
  initialDelaySeconds: nonNegativeInt.default(0),
  periodSeconds: positiveInt.default(10),
  timeoutSeconds: positiveInt.default(1),
  successThreshold: positiveInt.default(1),
  failureThreshold: positiveInt.default(3),
});

/** Resource requests and limits: cpu and memory are applied by the local runtime (the pod's cgroup;
 *  their syntax is checked in check.ts), any other resource is accepted and ignored. */
const resources = strict({
  limits: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  requests: z.record(z.string(), z.union([z.string(), z.number()])).optional(),
  claims: z.unknown().optional(),
});

/** The Linux capabilities a securityContext may add or drop: Kubernetes' names, without `CAP_`. */
const capabilityName = z
  .string()
  .regex(/^(ALL|[A-Z][A-Z_]*)$/, { error: 'must be a capability name such as NET_ADMIN (without CAP_), or ALL' });

/** The securityContext fields the local runtime honours (the rest of Kubernetes' are refused, so that
 *  nothing is silently ignored): who the process runs as, its capabilities, and a read-only root. */
const containerSecurityContext = strict({
  runAsUser: nonNegativeInt.optional(),
  runAsGroup: nonNegativeInt.optional(),
  runAsNonRoot: z.boolean().optional(),
  readOnlyRootFilesystem: z.boolean().optional(),
  /** no_new_privs is always set by the local runtime: only `false` is meaningful, and it is the default. */
  allowPrivilegeEscalation: z.boolean().optional(),
  capabilities: strict({
    add: z.array(capabilityName).default([]),
    drop: z.array(capabilityName).default([]),
  }).optional(),
});

const podSecurityContext = strict({
  runAsUser: nonNegativeInt.optional(),
  runAsGroup: nonNegativeInt.optional(),
  runAsNonRoot: z.boolean().optional(),
});

const volumeMount = strict({
  name: dnsLabel,
  mountPath: z.string().regex(/^\//, { error: 'must be an absolute path' }),
  readOnly: z.boolean().default(false),
});

/** Volumes: emptyDir only (a directory per pod, shared by its containers, removed with the pod). */
const volume = strict({
  name: dnsLabel,
  emptyDir: strict({
    medium: z.enum(['', 'Memory']).optional(),
    sizeLimit: z.union([z.string(), z.number()]).optional(),
  }),
});

const container = strict({
  name: dnsLabel,
  /** Accepted and ignored locally unless it is one of LoadOptions.images; `command` is what runs. */
  image: z.string().min(1).optional(),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  /** Must not be empty: checked in check.ts, so an empty one does not hide the pod's other problems. */
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).default([]),
  env: z.array(envVar).default([]),
  workingDir: z.string().min(1).optional(),
  ports: z.array(containerPort).default([]),
  readinessProbe: probe.optional(),
  /** Validated like readinessProbe; not acted on yet. */
  livenessProbe: probe.optional(),
  /** A local extension: overrides the pod's restartPolicy for this container. */
  restartPolicy: restartPolicy.optional(),
  resources: resources.optional(),
  securityContext: containerSecurityContext.optional(),
  volumeMounts: z.array(volumeMount).default([]),
});

const podSpec = strict({
  containers: z.array(container).min(1),
  restartPolicy: restartPolicy.default('Always'),
  serviceAccountName: dnsSubdomain.default('default'),
  terminationGracePeriodSeconds: nonNegativeInt.default(30),
  hostname: dnsLabel.optional(),
  /** The node the pod runs on: in the local runtime's per-host data plane, node-1..node-N places it
   *  there (any other name: spread like a pod without one); otherwise it only feeds the downward API. */
  nodeName: dnsSubdomain.optional(),
  automountServiceAccountToken: z.boolean().optional(),
  /** One PID namespace for all of the pod's containers: refused by the local runtime for now (check.ts). */
  shareProcessNamespace: z.boolean().optional(),
  securityContext: podSecurityContext.optional(),
  volumes: z.array(volume).default([]),
});

const labelSelector = strict({
  matchLabels: stringMap.default({}),
  matchExpressions: z
    .array(
      strict({
        key: z.string().min(1),
        operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
        values: z.array(z.string()).default([]),
      }),
    )
    .default([]),
});

const servicePort = strict({
  name: dnsLabel.optional(),
  port,
  targetPort: portOrName.optional(),
  protocol: protocol.default('TCP'),
  appProtocol: z.string().min(1).optional(),
  /** Accepted and ignored: locally every Service is reached through its cluster IP. */
  nodePort: port.optional(),
});

// ---- kinds ----------------------------------------------------------------------------------

// apiVersion is checked once, against the kind, by the loader (load.ts), which can say what it must
// be; a schema check as well told a user of a missing one twice.
const top = { apiVersion: z.unknown().optional(), status: z.unknown().optional() };

/** A Namespace is cluster-scoped: like the API server, we ignore a metadata.namespace on it. */
const clusterMeta = strict({
  name: dnsLabel,
  namespace: z.unknown().optional(),
  labels: stringMap.default({}),
  annotations: stringMap.default({}),
  ...ignoredMeta,
});

export const namespaceSchema = strict({
  ...top,
  kind: z.literal('Namespace'),
  metadata: clusterMeta,
  spec: z.unknown().optional(),
});

export const podSchema = strict({
  ...top,
  kind: z.literal('Pod'),
  metadata: objectMeta(dnsSubdomain),
  spec: podSpec,
});

export const deploymentSchema = strict({
  ...top,
  kind: z.literal('Deployment'),
  metadata: objectMeta(dnsSubdomain),
  spec: strict({
    replicas: nonNegativeInt.default(1),
    selector: labelSelector,
    template: strict({ metadata: templateMeta.default({ labels: {}, annotations: {} }), spec: podSpec }),
    // Rollout tuning: accepted and ignored (the local runtime replaces pods one at a time).
    strategy: z.unknown().optional(),
    minReadySeconds: nonNegativeInt.optional(),
    revisionHistoryLimit: nonNegativeInt.optional(),
    progressDeadlineSeconds: positiveInt.optional(),
  }),
});

export const serviceSchema = strict({
  ...top,
  kind: z.literal('Service'),
  metadata: objectMeta(dns1035Label),
  spec: strict({
    selector: stringMap.optional(),
    ports: z.array(servicePort).min(1),
    /** Every type is served as ClusterIP locally. */
    type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).default('ClusterIP'),
    clusterIP: z.string().optional(),
    sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
  }),
});

export const serviceAccountSchema = strict({
  ...top,
  kind: z.literal('ServiceAccount'),
  metadata: objectMeta(dnsSubdomain),
  automountServiceAccountToken: z.boolean().optional(),
});

// ---- Gateway API routes (gateway.networking.k8s.io/v1), as meshes use them (GAMMA) --------------
// The field names, limits and defaults are Gateway API v1's (standard channel); rules that span fields
// (a parent Service that must exist, a rewrite that conflicts with a redirect, regexes) are in routes.ts.

/** Gateway API's HTTPHeaderName and the names of query parameters: an RFC 7230 token. */
const TOKEN_MESSAGE = "must be a header name: letters, digits and !#$%&'*+-.^_`|~, at most 256 characters";
export const headerName = z
  .string()
  .regex(/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/, rule(TOKEN_MESSAGE))
  .max(256, rule(TOKEN_MESSAGE));

/** A header value the proxy may write or compare: no CR, LF or NUL (they would split the message). */
const HEADER_VALUE_MESSAGE = 'must be 1 to 4096 characters without CR, LF or NUL';
const headerValue = z
  .string()
  .min(1, rule(HEADER_VALUE_MESSAGE))
  .max(4096, rule(HEADER_VALUE_MESSAGE))
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  .regex(/^[^\r\n\x00]*$/, rule(HEADER_VALUE_MESSAGE));

/** Gateway API's Duration (GEP-2257): `500ms`, `10s`, `1m30s`, `1h`; `0s` means no timeout. */
export const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
const duration = z
  .string()
  .regex(DURATION, rule('must be a duration such as "500ms", "10s", "1m30s" or "1h" (units h, m, s, ms)'));

/** RFC 1123 host name without a wildcard, for redirects and rewrites. */
const preciseHostname = dnsSubdomain;

const parentRef = strict({
  /** "" (or "core") for a Service; Gateway API's default is the Gateway group, so it must be written. */
  group: z.string().optional(),
  /** Must be Service (Gateway API's default is Gateway). */
  kind: z.string().optional(),
  namespace: dnsLabel.optional(),
  name: dns1035Label,
  /** A port name of the Service (GAMMA). */
  sectionName: dnsLabel.optional(),
  /** The Service port the route applies to; all its ports when absent. */
  port: port.optional(),
});

const backendRefBase = {
  group: z.string().default(''),
  kind: z.string().default('Service'),
  name: dns1035Label,
  namespace: dnsLabel.optional(),
  /** Required for a Service backend: which of its ports receives the requests. */
  port: port.optional(),
};

const headerMatch = strict({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: headerName,
  value: z.string().min(1).max(4096),
});

const headerModifier = strict({
  set: z
    .array(strict({ name: headerName, value: headerValue }))
    .max(16)
    .default([]),
  add: z
    .array(strict({ name: headerName, value: headerValue }))
    .max(16)
    .default([]),
  remove: z.array(headerName).max(16).default([]),
});

const mirror = strict({
  backendRef: strict(backendRefBase),
  /** Share of requests mirrored, 0 to 100 (default: all). */
  percent: z.int().min(0).max(100).optional(),
  fraction: strict({ numerator: z.int().min(0), denominator: z.int().min(1).default(100) }).optional(),
});

const pathModifier = strict({
  type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
  replaceFullPath: z.string().max(1024).optional(),
  replacePrefixMatch: z.string().max(1024).optional(),
});

const redirect = strict({
  scheme: z.enum(['http', 'https']).optional(),
  hostname: preciseHostname.optional(),
  path: pathModifier.optional(),
  port: port.optional(),
  statusCode: z
    .union(
      [z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)],
      rule('must be one of 301, 302, 303, 307, 308'),
    )
    .default(302),
});

const urlRewrite = strict({ hostname: preciseHostname.optional(), path: pathModifier.optional() });

const HTTP_FILTER_TYPES = [
  'RequestHeaderModifier',
  'ResponseHeaderModifier',
  'RequestMirror',
  'RequestRedirect',
  'URLRewrite',
] as const;
const GRPC_FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror'] as const;

const httpFilter = strict({
  type: z.enum(HTTP_FILTER_TYPES),
  requestHeaderModifier: headerModifier.optional(),
  responseHeaderModifier: headerModifier.optional(),
  requestMirror: mirror.optional(),
  requestRedirect: redirect.optional(),
  urlRewrite: urlRewrite.optional(),
});

const grpcFilter = strict({
  type: z.enum(GRPC_FILTER_TYPES),
  requestHeaderModifier: headerModifier.optional(),
  responseHeaderModifier: headerModifier.optional(),
  requestMirror: mirror.optional(),
});

const weight = z
  .int(rule('must be an integer from 0 to 1000000'))
  .min(0, rule('must be an integer from 0 to 1000000'))
  .max(1_000_000, rule('must be an integer from 0 to 1000000'));

const backendRef = strict({
  ...backendRefBase,
  /** Relative share of the rule's requests; 0 sends none (Gateway API: 0 to 1,000,000, default 1). */
  weight: weight.default(1),
  /** Accepted by the schema so the message can say it is not supported (see routes.ts). */
  filters: z.array(z.unknown()).optional(),
});

const httpPathMatch = strict({
  type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
  value: z.string().min(1).max(1024).default('/'),
});

const httpMatch = strict({
  path: httpPathMatch.optional(),
  headers: z.array(headerMatch).max(16).default([]),
  queryParams: z
    .array(
      strict({
        type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
        name: headerName,
        value: z.string().min(1).max(1024),
      }),
    )
    .max(16)
    .default([]),
  method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']).optional(),
});

const grpcMatch = strict({
  method: strict({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    service: z.string().min(1).max(1024).optional(),
    method: z.string().min(1).max(1024).optional(),
  }).optional(),
  headers: z.array(headerMatch).max(16).default([]),
});

const routeTimeouts = strict({
  /** The whole request, retries included; `0s` disables it. */
  request: duration.optional(),
  /** Each attempt to a backend; must not exceed `request`. */
  backendRequest: duration.optional(),
});

const ruleName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, rule(LABEL_MESSAGE))
  .max(63, rule(LABEL_MESSAGE));

const httpRouteRule = strict({
  name: ruleName.optional(),
  matches: z.array(httpMatch).max(64).optional(),
  filters: z.array(httpFilter).max(16).default([]),
  backendRefs: z.array(backendRef).max(16).default([]),
  timeouts: routeTimeouts.optional(),
  /** Gateway API's experimental retry (GEP-1731): accepted by the schema so that the message can point
   *  to the annotations (routes.ts). */
  retry: z.unknown().optional(),
});

const grpcRouteRule = strict({
  name: ruleName.optional(),
  matches: z.array(grpcMatch).max(64).optional(),
  filters: z.array(grpcFilter).max(16).default([]),
  backendRefs: z.array(backendRef).max(16).default([]),
});

export const httpRouteSchema = strict({
  ...top,
  kind: z.literal('HTTPRoute'),
  metadata: objectMeta(dnsSubdomain),
  spec: strict({
    parentRefs: z.array(parentRef).min(1).max(32),
    /** Accepted by the schema so that the message can say why it is refused (routes.ts). */
    hostnames: z.array(z.string()).optional(),
    rules: z
      .array(httpRouteRule)
      .min(1)
      .max(16)
      .default([{ filters: [], backendRefs: [] }]),
  }),
});

export const grpcRouteSchema = strict({
  ...top,
  kind: z.literal('GRPCRoute'),
  metadata: objectMeta(dnsSubdomain),
  spec: strict({
    parentRefs: z.array(parentRef).min(1).max(32),
    hostnames: z.array(z.string()).optional(),
    rules: z
      .array(grpcRouteRule)
      .min(1)
      .max(16)
      .default([{ filters: [], backendRefs: [] }]),
  }),
});

/** Every kind the local runtime knows, with the apiVersion Kubernetes expects for it. */
export const KINDS = {
  Namespace: { apiVersion: 'v1', namespaced: false, schema: namespaceSchema },
  Pod: { apiVersion: 'v1', namespaced: true, schema: podSchema },
  Deployment: { apiVersion: 'apps/v1', namespaced: true, schema: deploymentSchema },
  Service: { apiVersion: 'v1', namespaced: true, schema: serviceSchema },
  ServiceAccount: { apiVersion: 'v1', namespaced: true, schema: serviceAccountSchema },
  HTTPRoute: { apiVersion: 'gateway.networking.k8s.io/v1', namespaced: true, schema: httpRouteSchema },
  GRPCRoute: { apiVersion: 'gateway.networking.k8s.io/v1', namespaced: true, schema: grpcRouteSchema },
  Server: { apiVersion: POLICY_API_VERSION, namespaced: true, schema: POLICY_KINDS.Server },
  AuthorizationPolicy: { apiVersion: POLICY_API_VERSION, namespaced: true, schema: POLICY_KINDS.AuthorizationPolicy },
  MeshTLSAuthentication: {
    apiVersion: POLICY_API_VERSION,
    namespaced: true,
    schema: POLICY_KINDS.MeshTLSAuthentication,
  },
  NetworkAuthentication: {
    apiVersion: POLICY_API_VERSION,
    namespaced: true,
    schema: POLICY_KINDS.NetworkAuthentication,
  },
  HTTPLocalRateLimitPolicy: {
    apiVersion: POLICY_API_VERSION,
    namespaced: true,
    schema: POLICY_KINDS.HTTPLocalRateLimitPolicy,
  },
} as const;

export type KindName = keyof typeof KINDS;
export const KIND_NAMES = Object.keys(KINDS).sort() as KindName[];

export type Container = z.output<typeof container>;
export type ContainerPort = z.output<typeof containerPort>;
export type EnvVar = z.output<typeof envVar>;
export type Probe = z.output<typeof probe>;
export type ContainerSecurityContext = z.output<typeof containerSecurityContext>;
export type VolumeMount = z.output<typeof volumeMount>;
export type Volume = z.output<typeof volume>;
export type PodSpec = z.output<typeof podSpec>;
export type RestartPolicy = z.output<typeof restartPolicy>;
export type LabelSelector = z.output<typeof labelSelector>;
export type ServicePort = z.output<typeof servicePort>;
export type NamespaceDoc = z.output<typeof namespaceSchema>;
export type PodDoc = z.output<typeof podSchema>;
export type DeploymentDoc = z.output<typeof deploymentSchema>;
export type ServiceDoc = z.output<typeof serviceSchema>;
export type ServiceAccountDoc = z.output<typeof serviceAccountSchema>;
export type HTTPRouteDoc = z.output<typeof httpRouteSchema>;
export type GRPCRouteDoc = z.output<typeof grpcRouteSchema>;
export type ParentRef = z.output<typeof parentRef>;
export type BackendRef = z.output<typeof backendRef>;
export type HeaderMatch = z.output<typeof headerMatch>;
export type HeaderModifier = z.output<typeof headerModifier>;
export type HTTPRouteMatch = z.output<typeof httpMatch>;
export type GRPCRouteMatch = z.output<typeof grpcMatch>;
export type HTTPRouteFilter = z.output<typeof httpFilter>;
export type GRPCRouteFilter = z.output<typeof grpcFilter>;
export type HTTPPathModifier = z.output<typeof pathModifier>;
export type RouteTimeouts = z.output<typeof routeTimeouts>;
