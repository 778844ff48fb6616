// The mesh's contract values: the numbers and names the proxy, the runtime, the control plane and the
// Kubernetes parts must agree on (the proxy's ports and uid, annotation names, the identity audience).
// Plain constants and no imports, on purpose: the proxy loads this file, and must not load zod with it.

/** The proxy's outbound listener: the app's outbound TCP is redirected here. */
export const PROXY_OUTBOUND_PORT = 4140;
/** The proxy's inbound listener: TCP coming into the pod is redirected here. */
export const PROXY_INBOUND_PORT = 4143;
/** The proxy's admin server: /live, /ready, /metrics, /version, /shutdown, /tap, /policy, /identity. */
export const PROXY_ADMIN_PORT = 4191;
/** Ports of the proxy itself that peers reach directly, never redirected inbound: the admin port, and
 *  4190 held back for the proxy's own use. */
export const PROXY_OWN_PORTS: readonly number[] = [4190, PROXY_ADMIN_PORT];
/** The uid and gid the proxy runs as: proxy-init's rules never redirect its own connections. */
export const PROXY_UID = 2102;
/** The proxy's container name, in the local runtime's pods and in injected Kubernetes pods (reserved). */
export const PROXY_CONTAINER = 'outrigger-proxy';
/** The control plane's ServiceAccount, and so its identity spiffe://<td>/ns/<namespace>/sa/this, which
 *  every proxy checks the control plane's certificate for; the namespace is CONTROL_PLANE_NAMESPACE
 *  locally and the install namespace in Kubernetes. */
export const CONTROL_PLANE_SERVICE_ACCOUNT = 'outrigger-control-plane';
export const CONTROL_PLANE_NAMESPACE = 'outrigger';

/** The audience (`aud`) of the pod tokens the identity service accepts: the local runtime's tokens and
 *  the injector's projected ServiceAccount token. */
export const IDENTITY_TOKEN_AUDIENCE = 'identity.outrigger.io';
/** The issuer (`iss`) of the local runtime's pod tokens. */
export const LOCAL_TOKEN_ISSUER = 'outrigger.io/local-runtime';

/** The mesh's annotations, read by the local runtime and, in a cluster, by the injector and the
 *  kubernetes store (where each may be written and how it is parsed: annotations.ts). */
export const ANNOTATION = {
  inject: 'outrigger.io/inject',
  opaquePorts: 'config.outrigger.io/opaque-ports',
  skipInboundPorts: 'config.outrigger.io/skip-inbound-ports',
  skipOutboundPorts: 'config.outrigger.io/skip-outbound-ports',
  /** On a pod or namespace: the inbound policy of ports no Server covers (policy.ts). */
  defaultInboundPolicy: 'config.outrigger.io/default-inbound-policy',
  /** On an HTTPRoute or GRPCRoute: what is retried (parsed in routes.ts). */
  retryOn: 'retry.outrigger.io/on',
  /** On an HTTPRoute or GRPCRoute: how many retries a request may get after its first attempt. */
  retryAttempts: 'retry.outrigger.io/attempts',
  /** On a pod (template): the OTLP/HTTP collector its proxy sends spans to ("" turns tracing off for the
   *  pod); overrides `up --trace-collector`. */
  traceCollector: 'config.outrigger.io/trace-collector',
  /** On a pod (template): "stdout" (the proxy's log, `outrigger logs POD -c proxy`) turns on its access log. */
  accessLog: 'config.outrigger.io/access-log',
} as const;

/** Annotations only the Kubernetes injector reads (besides ANNOTATION). */
export const KUBE_ANNOTATION = {
  /** Set by the injector on a pod it injected, with the version: re-injection is then a no-op. */
  injected: 'outrigger.io/injected',
  proxyCpuRequest: 'config.outrigger.io/proxy-cpu-request',
  proxyCpuLimit: 'config.outrigger.io/proxy-cpu-limit',
  proxyMemoryRequest: 'config.outrigger.io/proxy-memory-request',
  proxyMemoryLimit: 'config.outrigger.io/proxy-memory-limit',
  proxyImage: 'config.outrigger.io/proxy-image',
  proxyLogLevel: 'config.outrigger.io/proxy-log-level',
} as const;

/** The label install puts on the control plane's pods. */
export const CONTROL_PLANE_LABEL = 'outrigger.io/control-plane';
