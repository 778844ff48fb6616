// Outrigger's annotations (`outrigger.io/inject`, `config.outrigger.io/*-ports`): where each may be
// written, how its value is parsed, and how a pod's settings combine with its namespace's (the names
// themselves are contract values: contract.ts).
import { parsePortList, type PortList } from '../core/ports.js';
import { ANNOTATION } from './contract.js';
import { DEFAULT_INBOUND_POLICIES, type DefaultInboundPolicy } from './policy.js';

export { ANNOTATION };

const KNOWN = Object.values(ANNOTATION) as string[];
/** The annotations that configure a pod's proxy (and may be set on its namespace). */
const PROXY = [
  ANNOTATION.inject,
  ANNOTATION.opaquePorts,
  ANNOTATION.skipInboundPorts,
  ANNOTATION.skipOutboundPorts,
  ANNOTATION.defaultInboundPolicy,
] as string[];
/** The annotations that configure a route; their values are read by routes.ts. */
export const ROUTE_ANNOTATIONS: readonly string[] = [ANNOTATION.retryOn, ANNOTATION.retryAttempts];

/** The mesh settings an object's annotations state; absent fields were not set there. */
export interface MeshAnnotations {
  /** `outrigger.io/inject: enabled|disabled`; locally every pod is meshed unless it says disabled. */
  readonly inject?: boolean;
  /** Ports whose traffic the proxy forwards as opaque TCP without protocol detection. */
  readonly opaquePorts?: PortList;
  /** Inbound ports not redirected to the proxy. */
  readonly skipInboundPorts?: PortList;
  /** Outbound destination ports not redirected to the proxy. */
  readonly skipOutboundPorts?: PortList;
  /** config.outrigger.io/default-inbound-policy. */
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
}

/** What a pod runs with: its own annotations over its namespace's, over the defaults. */
export interface MeshSettings {
  readonly inject: boolean;
  readonly opaquePorts: PortList;
  readonly skipInboundPorts: PortList;
  readonly skipOutboundPorts: PortList;
  /** Absent: neither the pod nor its namespace says; the mesh's default applies. */
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
}

/** Where an annotation is written decides which of ours are meaningful there. */
export type AnnotationSite = 'namespace' | 'pod' | 'service' | 'deployment' | 'serviceaccount' | 'route' | 'policy';

const ALLOWED: Record<AnnotationSite, readonly string[]> = {
  namespace: PROXY,
  pod: PROXY,
  // As in Linkerd, a Service may mark its ports opaque for every client.
  service: [ANNOTATION.opaquePorts],
  deployment: [],
  serviceaccount: [],
  route: ROUTE_ANNOTATIONS,
  policy: [],
};

const SITE_HINT: Record<AnnotationSite, string> = {
  namespace: '',
  pod: '',
  service:
    'on a Service only config.outrigger.io/opaque-ports is meaningful; put the others on the pod template or the namespace',
  // The classic mistake: on the Deployment's own metadata it would silently do nothing in a cluster.
  deployment: 'put it on spec.template.metadata.annotations, where it applies to the pods',
  serviceaccount: 'put it on the pod or its namespace',
  route: 'on a route only retry.outrigger.io/on and retry.outrigger.io/attempts are meaningful',
  policy: 'put it on the pod or its namespace',
};

export interface AnnotationIssue {
  readonly key: string;
  readonly message: string;
}

function isOurs(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash === -1) return false;
  const prefix = key.slice(0, slash);
  return prefix === 'outrigger.io' || prefix.endsWith('.outrigger.io');
}

/** Parses and checks our annotations on one object; other annotations are left alone. */
export function readMeshAnnotations(
  annotations: Readonly<Record<string, string>>,
  site: AnnotationSite,
): { mesh: MeshAnnotations; issues: AnnotationIssue[] } {
  const issues: AnnotationIssue[] = [];
  const mesh: { -readonly [K in keyof MeshAnnotations]: MeshAnnotations[K] } = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (!isOurs(key)) continue;
    if (!KNOWN.includes(key)) {
      const near = KNOWN.find((k) => editDistance(k, key) <= 3);
      issues.push({
        key,
        message: `unknown outrigger annotation${near !== undefined ? `; did you mean "${near}"?` : `; known: ${KNOWN.join(', ')}`}`,
      });
      continue;
    }
    if (!ALLOWED[site].includes(key)) {
      const hint = ROUTE_ANNOTATIONS.includes(key) ? 'put it on an HTTPRoute or GRPCRoute' : SITE_HINT[site];
      issues.push({ key, message: `has no effect here; ${hint}` });
      continue;
    }
    if (ROUTE_ANNOTATIONS.includes(key)) continue; // values checked by routes.ts, which knows the route's kind
    if (key === ANNOTATION.inject) {
      if (value === 'enabled') mesh.inject = true;
      else if (value === 'disabled') mesh.inject = false;
      else issues.push({ key, message: `must be "enabled" or "disabled", got ${JSON.stringify(value)}` });
      continue;
    }
    if (key === ANNOTATION.defaultInboundPolicy) {
      if ((DEFAULT_INBOUND_POLICIES as readonly string[]).includes(value))
        mesh.defaultInboundPolicy = value as DefaultInboundPolicy;
      else
        issues.push({
          key,
          message: `must be one of ${DEFAULT_INBOUND_POLICIES.join(', ')}, got ${JSON.stringify(value)}`,
        });
      continue;
    }
    const parsed = parsePortList(value);
    if (!parsed.ok) {
      issues.push({ key, message: parsed.message });
      continue;
    }
    if (key === ANNOTATION.opaquePorts) mesh.opaquePorts = parsed.ports;
    else if (key === ANNOTATION.skipInboundPorts) mesh.skipInboundPorts = parsed.ports;
    else mesh.skipOutboundPorts = parsed.ports;
  }
  return { mesh, issues };
}

/** A pod's annotation wins over its namespace's, field by field (Linkerd's rule). */
export function meshSettings(pod: MeshAnnotations, namespace: MeshAnnotations): MeshSettings {
  return {
    inject: pod.inject ?? namespace.inject ?? true,
    opaquePorts: pod.opaquePorts ?? namespace.opaquePorts ?? [],
    skipInboundPorts: pod.skipInboundPorts ?? namespace.skipInboundPorts ?? [],
    skipOutboundPorts: pod.skipOutboundPorts ?? namespace.skipOutboundPorts ?? [],
    ...((pod.defaultInboundPolicy ?? namespace.defaultInboundPolicy) !== undefined
      ? { defaultInboundPolicy: (pod.defaultInboundPolicy ?? namespace.defaultInboundPolicy) as DefaultInboundPolicy }
      : {}),
  };
}

/** Levenshtein distance, for "did you mean" suggestions on short strings. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}
