// The injector's decision and patch: whether a pod gets the mesh, and the pod it becomes (the proxy as
// a native sidecar, proxy-init writing the iptables rules, the projected identity token, the app's
// probes sent through the proxy's admin port so that inbound policy never meets the kubelet). Pure
// functions over plain objects, shared by the admission webhook (webhook.ts) and `outrigger inject`.
//
// Native sidecars (an init container with restartPolicy: Always, KEP-753, on by default since
// Kubernetes 1.29): the kubelet starts the proxy before the app containers and waits for its startup
// probe, so the app never runs without its proxy; and the proxy is stopped after the app, so a Job
// completes when its app exits.
import { readMeshAnnotations, type MeshAnnotations } from '../manifests/annotations.js';
import {
  ANNOTATION,
  IDENTITY_TOKEN_AUDIENCE,
  PROXY_ADMIN_PORT,
  PROXY_INBOUND_PORT,
  PROXY_OUTBOUND_PORT,
  PROXY_OWN_PORTS,
} from '../manifests/contract.js';
import { formatPortList, type PortList } from '../core/ports.js';
import { SETTINGS } from '../proxy/env.js';
import { proxyNodeOptionsEnv } from '../proxy/node-options.js';
import { APP_PROBE_PATH, type AppProbeTarget } from '../proxy/admin/probes.js';
import { deploymentOf } from '../control/store/kubernetes/convert.js';
import type { DefaultInboundPolicy } from '../manifests/policy.js';
import {
  INIT_CONTAINER,
  KUBE_ANNOTATION,
  PROXY_CONTAINER,
  PROXY_UID,
  TOKEN_DIR,
  TOKEN_EXPIRATION_SECONDS,
  TOKEN_FILE,
  TOKEN_VOLUME,
  TRUST_BUNDLE_CONFIGMAP,
  TRUST_BUNDLE_DIR,
  TRUST_BUNDLE_KEY,
  TRUST_BUNDLE_VOLUME,
  VERSION,
} from './names.js';
import { internalError } from '../core/errors.js';

/** A JSON object as the API server sends it (only the fields we touch are typed). */
export type Json = Record<string, unknown>;

export interface InjectConfig {
  /** The image the proxy and proxy-init run from. */
  readonly image: string;
  /** HOST:PORT of the control plane's gRPC service (destination, policy and identity; TLS only). */
  readonly controlAddr: string;
  readonly trustDomain: string;
  /** The identity the control plane serves with: spiffe://<td>/ns/<its namespace>/sa/outrigger-control-plane. */
  readonly controlIdentity: string;
  /** Audience of the projected token, which the identity service checks. */
  readonly tokenAudience?: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The mesh's default inbound policy (`install --default-inbound-policy`), for pods whose own and
   *  namespace's annotations say none. Default all-unauthenticated. */
  readonly defaultInboundPolicy?: DefaultInboundPolicy;
}

export type Decision = { readonly inject: true } | { readonly inject: false; readonly reason: string };

/** Who asks: the webhook injects only where a pod or its namespace says `enabled`; `outrigger inject`
 *  was asked by the user, so it injects unless the pod says `disabled`. */
export type InjectMode = 'webhook' | 'offline';

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const obj = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function annotationsOf(o: Json | undefined): Record<string, string> {
  const a = obj(obj(o?.metadata)?.annotations) ?? {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(a)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** Whether a pod (or pod template) is already injected: re-injecting must change nothing. */
export function isInjected(pod: Json): boolean {
  if (annotationsOf(pod)[KUBE_ANNOTATION.injected] !== undefined) return true;
  const spec = obj(pod.spec);
  return [...arr(spec?.initContainers), ...arr(spec?.containers)].some((c) => str(obj(c)?.name) === PROXY_CONTAINER);
}

/** The mesh settings the pod's annotations state, over its namespace's. Bad values are errors: the
 *  webhook then leaves the pod alone (and says why) rather than guess. */
export function podMesh(
  pod: Json,
  namespaceAnnotations: Readonly<Record<string, string>>,
): { mesh: MeshAnnotations & { inject?: boolean }; problems: string[] } {
  const podA = readMeshAnnotations(annotationsOf(pod), 'pod');
  const nsA = readMeshAnnotations(namespaceAnnotations, 'namespace');
  const kubeKeys = Object.values(KUBE_ANNOTATION) as string[];
  const problems = [...podA.issues, ...nsA.issues]
    .filter((i) => !kubeKeys.includes(i.key))
    .map((i) => `${i.key}: ${i.message}`);
  const m = podA.mesh;
  const n = nsA.mesh;
  const mesh: { -readonly [K in keyof MeshAnnotations]: MeshAnnotations[K] } = {};
  const inject = m.inject ?? n.inject;
  if (inject !== undefined) mesh.inject = inject;
  const opaque = m.opaquePorts ?? n.opaquePorts;
  if (opaque !== undefined) mesh.opaquePorts = opaque;
  const skipIn = m.skipInboundPorts ?? n.skipInboundPorts;
  if (skipIn !== undefined) mesh.skipInboundPorts = skipIn;
  const skipOut = m.skipOutboundPorts ?? n.skipOutboundPorts;
  if (skipOut !== undefined) mesh.skipOutboundPorts = skipOut;
  const inboundDefault = m.defaultInboundPolicy ?? n.defaultInboundPolicy;
  if (inboundDefault !== undefined) mesh.defaultInboundPolicy = inboundDefault;
  return { mesh, problems };
}

export function decide(pod: Json, namespaceAnnotations: Readonly<Record<string, string>>, mode: InjectMode): Decision {
  const spec = obj(pod.spec);
  if (spec === undefined) return { inject: false, reason: 'the object has no pod spec' };
  if (spec.hostNetwork === true)
    return { inject: false, reason: "host-network pods are never injected (their iptables rules would be the node's)" };
  if (isInjected(pod)) return { inject: false, reason: 'already injected' };
  const podInject = annotationsOf(pod)[ANNOTATION.inject];
  const nsInject = namespaceAnnotations[ANNOTATION.inject];
  if (podInject === 'disabled') return { inject: false, reason: `the pod says ${ANNOTATION.inject}: disabled` };
  if (podInject === undefined && nsInject === 'disabled' && mode === 'webhook')
    return { inject: false, reason: `the namespace says ${ANNOTATION.inject}: disabled` };
  if (mode === 'webhook' && podInject !== 'enabled' && nsInject !== 'enabled') {
    return { inject: false, reason: `neither the pod nor its namespace says ${ANNOTATION.inject}: enabled` };
  }
  const { problems } = podMesh(pod, mode === 'webhook' ? namespaceAnnotations : {});
  const resources = proxyResources(annotationsOf(pod));
  if (problems.length > 0 || resources.problems.length > 0)
    return { inject: false, reason: `bad annotations: ${[...problems, ...resources.problems].join('; ')}` };
  return { inject: true };
}

/** Kubernetes resource quantities, e.g. `100m`, `0.5`, `128Mi`, `1G`, `1e3`. */
const QUANTITY = /^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$/;

const DEFAULT_PROXY_RESOURCES = { requests: { cpu: '20m', memory: '64Mi' } } as const;

export function proxyResources(a: Readonly<Record<string, string>>): {
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  problems: string[];
} {
  const problems: string[] = [];
  const requests: Record<string, string> = { ...DEFAULT_PROXY_RESOURCES.requests };
  const limits: Record<string, string> = {};
  const take = (key: string, into: Record<string, string>, name: 'cpu' | 'memory') => {
    const v = a[key];
    if (v === undefined) return;
    if (!QUANTITY.test(v))
      problems.push(`${key}: ${JSON.stringify(v)} is not a Kubernetes quantity (e.g. 100m, 128Mi)`);
    else into[name] = v;
  };
  take(KUBE_ANNOTATION.proxyCpuRequest, requests, 'cpu');
  take(KUBE_ANNOTATION.proxyMemoryRequest, requests, 'memory');
  take(KUBE_ANNOTATION.proxyCpuLimit, limits, 'cpu');
  take(KUBE_ANNOTATION.proxyMemoryLimit, limits, 'memory');
  return { resources: Object.keys(limits).length > 0 ? { requests, limits } : { requests }, problems };
}

const ports = (p: PortList | undefined): string => formatPortList(p ?? []);

function env(name: keyof typeof SETTINGS, value: string): Json {
  return { name: SETTINGS[name].env, value };
}

function fieldEnv(name: string, fieldPath: string): Json {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

/** Not a proxy setting: the pod's ServiceAccount, for the identity's expansion. */
const SERVICE_ACCOUNT_ENV = 'OUTRIGGER_POD_SERVICE_ACCOUNT';

const RESTRICTED = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  seccompProfile: { type: 'RuntimeDefault' },
};

/** The native sidecar. Its identity and its pod (for the policy service, metrics and tap) come from
 *  the pod's own namespace, name and ServiceAccount through the downward API, so that a template
 *  injected offline is right in whatever namespace it lands and whatever name the pod is given. What
 *  the local runtime passes as flags (mesh.ts runningPod) is passed here as the same settings'
 *  environment variables. `workload`: the Deployment, when it is known at injection. */
export function proxyContainer(
  cfg: InjectConfig,
  mesh: MeshAnnotations,
  a: Readonly<Record<string, string>>,
  workload?: string,
  probes: Readonly<Record<string, AppProbeTarget>> = {},
): Json {
  const logLevel = a[KUBE_ANNOTATION.proxyLogLevel];
  const image = a[KUBE_ANNOTATION.proxyImage] ?? cfg.image;
  const podNamespace = SETTINGS.podNamespace.env;
  const podName = SETTINGS.podName.env;
  return {
    name: PROXY_CONTAINER,
    image,
    imagePullPolicy: cfg.imagePullPolicy ?? 'IfNotPresent',
    restartPolicy: 'Always',
    args: ['proxy'],
    env: [
      fieldEnv(podNamespace, 'metadata.namespace'),
      fieldEnv(podName, 'metadata.name'),
      fieldEnv(SERVICE_ACCOUNT_ENV, 'spec.serviceAccountName'),
      // The V8 settings every proxy runs with (src/proxy/node-options.ts), as the runtime gives them.
      { name: 'NODE_OPTIONS', value: proxyNodeOptionsEnv() },
      ...(workload !== undefined ? [env('podWorkload', workload)] : []),
      env('destinationAddr', cfg.controlAddr),
      env('policyAddr', cfg.controlAddr),
      // $(VAR) refers to the variables above (Kubernetes expands them in order).
      env('pod', `$(${podNamespace})/$(${podName})`),
      // Only until the policy service answers (which then says the pod's default as the store sees
      // it now): the pod's annotation, else its namespace's, else the mesh's.
      env('defaultInboundPolicy', mesh.defaultInboundPolicy ?? cfg.defaultInboundPolicy ?? 'all-unauthenticated'),
      env('identityAddr', cfg.controlAddr),
      env('identityTokenFile', `${TOKEN_DIR}/${TOKEN_FILE}`),
      env('identity', `spiffe://${cfg.trustDomain}/ns/$(${podNamespace})/sa/$(${SERVICE_ACCOUNT_ENV})`),
      // The trust bundle, mounted from the ConfigMap the control plane copies into the pod's namespace:
      // the kubelet updates the file in place and the proxy reads it again every second, so a rotation
      // reaches running pods without recreating them.
      env('trustAnchorsFile', `${TRUST_BUNDLE_DIR}/${TRUST_BUNDLE_KEY}`),
      env('controlIdentity', cfg.controlIdentity),
      env('inboundPort', String(PROXY_INBOUND_PORT)),
      env('outboundPort', String(PROXY_OUTBOUND_PORT)),
      ...(mesh.opaquePorts !== undefined ? [env('opaquePorts', ports(mesh.opaquePorts))] : []),
      ...(Object.keys(probes).length > 0 ? [env('appProbes', JSON.stringify(probes))] : []),
      ...(logLevel !== undefined ? [env('logLevel', logLevel)] : []),
    ],
    ports: [
      { name: 'outrigger-in', containerPort: PROXY_INBOUND_PORT, protocol: 'TCP' },
      { name: 'outrigger-admin', containerPort: PROXY_ADMIN_PORT, protocol: 'TCP' },
    ],
    // The app starts only once this passes: the proxy holds its certificate and listens.
    startupProbe: {
      httpGet: { path: '/ready', port: PROXY_ADMIN_PORT },
      periodSeconds: 1,
      failureThreshold: 120,
      timeoutSeconds: 1,
    },
    readinessProbe: {
      httpGet: { path: '/ready', port: PROXY_ADMIN_PORT },
      periodSeconds: 10,
      failureThreshold: 3,
      timeoutSeconds: 1,
    },
    livenessProbe: {
      httpGet: { path: '/live', port: PROXY_ADMIN_PORT },
      periodSeconds: 10,
      failureThreshold: 3,
      timeoutSeconds: 1,
    },
    resources: proxyResources(a).resources,
    securityContext: {
      ...RESTRICTED,
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: TRUST_BUNDLE_VOLUME, mountPath: TRUST_BUNDLE_DIR, readOnly: true },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** proxy-init: the same rules the local runtime writes (runtime/net/proxy-init.ts), through
 *  `outrigger proxy-init`. Root in the pod's network namespace with NET_ADMIN and NET_RAW only. */
export function initContainer(cfg: InjectConfig, mesh: MeshAnnotations): Json {
  return {
    name: INIT_CONTAINER,
    image: cfg.image,
    imagePullPolicy: cfg.imagePullPolicy ?? 'IfNotPresent',
    args: [
      'proxy-init',
      '--inbound-port',
      String(PROXY_INBOUND_PORT),
      '--outbound-port',
      String(PROXY_OUTBOUND_PORT),
      '--proxy-uid',
      String(PROXY_UID),
      '--proxy-ports',
      PROXY_OWN_PORTS.join(','),
      '--skip-inbound-ports',
      ports(mesh.skipInboundPorts),
      '--skip-outbound-ports',
      ports(mesh.skipOutboundPorts),
    ],
    resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
    securityContext: {
      ...RESTRICTED,
      runAsUser: 0,
      runAsNonRoot: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
    // iptables takes its lock in /run; the root file system is read-only.
    volumeMounts: [{ name: `${INIT_CONTAINER}-run`, mountPath: '/run' }],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

export function injectedVolumes(cfg: InjectConfig): Json[] {
  return [
    {
      name: TOKEN_VOLUME,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: cfg.tokenAudience ?? IDENTITY_TOKEN_AUDIENCE,
              expirationSeconds: TOKEN_EXPIRATION_SECONDS,
              path: TOKEN_FILE,
            },
          },
        ],
      },
    },
    { name: `${INIT_CONTAINER}-run`, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
    // Not optional: a proxy cannot start without the anchors, and the kubelet waits for the copy.
    { name: TRUST_BUNDLE_VOLUME, configMap: { name: TRUST_BUNDLE_CONFIGMAP } },
  ];
}

export interface PodPatch {
  readonly metadataAnnotations: Record<string, string>;
  readonly initContainers: Json[];
  readonly volumes: Json[];
  /** The app containers, when their probes were pointed at the proxy (else untouched). */
  readonly containers?: Json[];
}

const ADMIN_PORT = Number(SETTINGS.adminPort.default);
const PROBE_KINDS = ['startupProbe', 'readinessProbe', 'livenessProbe'] as const;

/** The container port a probe names (a number, or the name of one of the container's ports). */
function probePort(port: unknown, container: Json): number | undefined {
  if (typeof port === 'number') return port;
  if (typeof port === 'string' && /^[0-9]+$/.test(port)) return Number(port);
  return arr(container.ports)
    .map(obj)
    .find((p) => p?.name === port)?.containerPort as number | undefined;
}

/**
 * The app containers' httpGet and tcpSocket probes pointed at the proxy's admin port
 * (`/app-probe/<container>-<startup|readiness|liveness>`), and what each pointed at, for the proxy to
 * forward over loopback (src/proxy/admin/probes.ts): the kubelet's probes then never meet the pod's
 * inbound policy. Left alone: probes on a port that skips the proxy (skip-inbound-ports), with a
 * `host` (not this pod), on a named port the container does not declare, gRPC and exec probes.
 */
export function rewriteProbes(
  containers: readonly Json[],
  skipInbound: PortList,
): { containers: Json[]; probes: Record<string, AppProbeTarget> } {
  const probes: Record<string, AppProbeTarget> = {};
  const out = containers.map((c) => {
    let next: Json | undefined;
    for (const kind of PROBE_KINDS) {
      const probe = obj(c[kind]);
      const http = obj(probe?.httpGet);
      const tcp = obj(probe?.tcpSocket);
      const handler = http ?? tcp;
      if (probe === undefined || handler === undefined || handler.host !== undefined) continue;
      const port = probePort(handler.port, c);
      if (port === undefined || port < 1 || port > 65535 || skipInbound.some((r) => r.from <= port && port <= r.to))
        continue;
      const name = `${str(c.name) ?? 'app'}-${kind.slice(0, -'Probe'.length)}`;
      const headers = arr(http?.httpHeaders)
        .map(obj)
        .filter((h): h is Json => typeof h?.name === 'string' && typeof h.value === 'string');
      probes[name] =
        http !== undefined
          ? {
              port,
              scheme: str(http.scheme) === 'HTTPS' ? 'HTTPS' : 'HTTP',
              path: str(http.path) ?? '/',
              ...(headers.length > 0
                ? { headers: headers.map((h) => ({ name: h.name as string, value: h.value as string })) }
                : {}),
            }
          : { port, scheme: 'TCP' };
      const { httpGet: _h, tcpSocket: _t, ...rest } = probe;
      next ??= { ...c };
      next[kind] = { ...rest, httpGet: { path: `${APP_PROBE_PATH}${name}`, port: ADMIN_PORT, scheme: 'HTTP' } };
    }
    return next ?? c;
  });
  return { containers: out, probes };
}

/** What an injected pod's annotations, init containers and volumes become (the rest is untouched). */
export function injectPod(
  pod: Json,
  namespaceAnnotations: Readonly<Record<string, string>>,
  cfg: InjectConfig,
  mode: InjectMode,
  workload?: string,
): PodPatch {
  const spec = obj(pod.spec) ?? {};
  const a = annotationsOf(pod);
  const { mesh } = podMesh(pod, mode === 'webhook' ? namespaceAnnotations : {});
  const apps = arr(spec.containers).map((c) => obj(c) ?? {});
  const rewritten = rewriteProbes(apps, mesh.skipInboundPorts ?? []);
  const probesMoved = Object.keys(rewritten.probes).length > 0;
  const firstApp = str(obj(arr(spec.containers)[0])?.name);
  const annotations: Record<string, string> = {
    ...(obj(obj(pod.metadata)?.annotations) as Record<string, string> | undefined),
    [KUBE_ANNOTATION.injected]: VERSION,
  };
  // `kubectl logs` and `kubectl exec` then pick the app, not the proxy.
  if (firstApp !== undefined && annotations['kubectl.kubernetes.io/default-container'] === undefined)
    annotations['kubectl.kubernetes.io/default-container'] = firstApp;
  return {
    metadataAnnotations: annotations,
    // proxy-init, then the proxy, then the user's init containers (which thus run inside the mesh).
    initContainers: [
      initContainer(cfg, mesh),
      proxyContainer(cfg, mesh, a, workload, rewritten.probes),
      ...(arr(spec.initContainers) as Json[]),
    ],
    volumes: [
      ...(arr(spec.volumes) as Json[]).filter((v) => !injectedVolumes(cfg).some((w) => w.name === obj(v)?.name)),
      ...injectedVolumes(cfg),
    ],
    ...(probesMoved ? { containers: rewritten.containers } : {}),
  };
}

/** RFC 6901: `~` and `/` in a key. */
export const pointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

export interface JsonPatchOp {
  readonly op: 'add' | 'replace' | 'remove';
  readonly path: string;
  readonly value?: unknown;
}

/** The JSON Patch (RFC 6902) for a pod at `prefix` ('' for a Pod, '/spec/template' for a template).
 *  `add` on an existing member replaces it (RFC 6902 4.1), so each op sets one whole field. */
export function podPatchOps(pod: Json, p: PodPatch, prefix: string): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  if (obj(pod.metadata) === undefined) ops.push({ op: 'add', path: `${prefix}/metadata`, value: {} });
  ops.push({ op: 'add', path: `${prefix}/metadata/annotations`, value: p.metadataAnnotations });
  ops.push({ op: 'add', path: `${prefix}/spec/initContainers`, value: p.initContainers });
  ops.push({ op: 'add', path: `${prefix}/spec/volumes`, value: p.volumes });
  if (p.containers !== undefined) ops.push({ op: 'replace', path: `${prefix}/spec/containers`, value: p.containers });
  return ops;
}

/** Where a workload kind keeps its pod template (JSON pointer), '' for a Pod; undefined: not a workload. */
export function templatePath(kind: string): string | undefined {
  switch (kind) {
    case 'Pod':
      return '';
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'Job':
      return '/spec/template';
    case 'CronJob':
      return '/spec/jobTemplate/spec/template';
    default:
      return undefined;
  }
}

export function getAt(o: Json, path: string): Json | undefined {
  let cur: unknown = o;
  for (const part of path.split('/').slice(1)) cur = obj(cur)?.[part];
  return obj(cur);
}

/** Applies our own patch ops (adds of whole members only) to a copy: for `outrigger inject` and tests. */
export function applyOps(doc: Json, ops: readonly JsonPatchOp[]): Json {
  const out = structuredClone(doc);
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop() as string;
    let cur: Json = out;
    for (const p of parts) {
      const next = obj(cur[p]);
      if (next === undefined) throw internalError(`json patch: ${op.path}: parent does not exist`);
      cur = next;
    }
    if (op.op === 'remove') delete cur[last];
    else cur[last] = structuredClone(op.value);
  }
  return out;
}

/** The patch for one object of any workload kind; an empty list when it is not to be injected. */
export function injectObject(
  o: Json,
  namespaceAnnotations: Readonly<Record<string, string>>,
  cfg: InjectConfig,
  mode: InjectMode,
): { ops: JsonPatchOp[]; decision: Decision } {
  const path = templatePath(str(o.kind) ?? 'Pod');
  if (path === undefined)
    return { ops: [], decision: { inject: false, reason: `kind ${str(o.kind)} has no pod template` } };
  const pod = path === '' ? o : getAt(o, path);
  if (pod === undefined) return { ops: [], decision: { inject: false, reason: 'the object has no pod template' } };
  const decision = decide(pod, namespaceAnnotations, mode);
  if (!decision.inject) return { ops: [], decision };
  // The Deployment: the object itself (offline), or the pod's ReplicaSet owner (the webhook: the
  // ReplicaSet controller creates pods with their ownerReferences and pod-template-hash label).
  const workload =
    str(o.kind) === 'Deployment'
      ? str(obj(o.metadata)?.name)
      : path === ''
        ? deploymentOf(o as Parameters<typeof deploymentOf>[0])
        : undefined;
  return { ops: podPatchOps(pod, injectPod(pod, namespaceAnnotations, cfg, mode, workload), path), decision };
}
