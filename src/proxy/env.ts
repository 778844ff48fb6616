// Every setting of the proxy: its flag, its OUTRIGGER_PROXY_* environment variable and its help text,
// in one table so that the CLI, the config schema and the docs cannot drift apart.
import { PROXY_ADMIN_PORT, PROXY_INBOUND_PORT, PROXY_OUTBOUND_PORT } from '../manifests/contract.js';

export interface SettingSpec {
  /** Flag without the leading dashes, e.g. "outbound-port". */
  readonly flag: string;
  readonly env: string;
  readonly help: string;
  /** Default as the user would type it; undefined means "not set". */
  readonly default?: string;
}

const s = (flag: string, help: string, def?: string): SettingSpec => ({
  flag,
  env: `OUTRIGGER_PROXY_${flag.toUpperCase().replace(/-/g, '_')}`,
  help,
  ...(def === undefined ? {} : { default: def }),
});

export const SETTINGS = {
  outboundPort: s(
    'outbound-port',
    'port for traffic the app sends, redirected here by iptables',
    String(PROXY_OUTBOUND_PORT),
  ),
  outboundAddr: s('outbound-addr', 'address the outbound listener binds', '127.0.0.1'),
  inboundPort: s(
    'inbound-port',
    'port for traffic coming into the pod, redirected here by iptables',
    String(PROXY_INBOUND_PORT),
  ),
  inboundAddr: s('inbound-addr', 'address the inbound listener binds', '0.0.0.0'),
  adminPort: s('admin-port', 'port of the admin server (/live, /ready, /metrics, /shutdown)', String(PROXY_ADMIN_PORT)),
  adminAddr: s('admin-addr', 'address the admin server binds', '0.0.0.0'),
  inboundNetns: s(
    'inbound-netns',
    "network namespace (a path such as /run/netns/NAME) the inbound side connects to the app from, as a sidecar does from inside its pod: the per-host data plane's node proxy, which needs CAP_SYS_ADMIN for it; unset: the proxy's own",
  ),
  outboundSources: s(
    'outbound-sources',
    'comma-separated addresses the outbound side accepts connections from besides loopback (the per-host data plane: the pod\'s own address); any other source is refused and counted in tcp_refused_total{reason="source_not_pod"}; unset: any',
  ),
  staticDestination: s(
    'static-destination',
    'HOST:PORT to forward every connection to instead of its original destination (no iptables: benchmarks, tests)',
  ),
  destinationAddr: s(
    'destination-addr',
    "HOST:PORT of the control plane's destination service; unset: every connection goes to its original destination",
  ),
  identityAddr: s(
    'identity-addr',
    "HOST:PORT of the control plane's identity service; with --identity-token-file and --identity it turns on mTLS, and the proxy is not ready until it holds a certificate",
  ),
  identityTokenFile: s(
    'identity-token-file',
    "file holding the pod's ServiceAccount token, read again before every certificate request",
  ),
  identity: s(
    'identity',
    "this proxy's own workload identity, spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>",
  ),
  trustAnchors: s(
    'trust-anchors',
    "the mesh's trust anchors (PEM): the control plane's certificate must chain to them; needed (or --trust-anchors-file) with any control plane address",
  ),
  trustAnchorsFile: s(
    'trust-anchors-file',
    'a file holding the trust anchors (PEM), read at start-up and again for every new connection to the control plane',
  ),
  controlIdentity: s(
    'control-identity',
    "the identity the control plane's certificate must carry (its URI SAN), checked before anything is sent to it; default spiffe://<the trust domain of --identity, or cluster.local>/ns/outrigger/sa/outrigger-control-plane",
  ),
  meshTlsSessionResumption: s(
    'mesh-tls-session-resumption',
    'resume mesh TLS sessions between proxies with TLS 1.3 tickets (300 s, one use each) instead of a full handshake per connection, outbound and inbound: true | false',
    'true',
  ),
  policyAddr: s(
    'policy-addr',
    "HOST:PORT of the control plane's policy service; with --pod and mTLS (it answers only a proxy that presents its pod's certificate), inbound traffic is authorized and rate limited as the pod's policy says",
  ),
  pod: s('pod', "this proxy's pod, namespace/name (the policy service answers for it)"),
  defaultInboundPolicy: s(
    'default-inbound-policy',
    'inbound policy of ports no Server covers until the policy service answers: all-unauthenticated | all-authenticated | cluster-authenticated | deny',
    'all-unauthenticated',
  ),
  opaquePorts: s(
    'opaque-ports',
    'ports whose traffic is forwarded as opaque TCP without protocol detection (list and ranges, "" for none)',
    '25,587,3306,4444,5432,6379,9300,11211',
  ),
  detectTimeoutMs: s(
    'detect-timeout-ms',
    'how long to wait for the first bytes before treating a connection as opaque TCP (ms)',
    '10000',
  ),
  detectMaxBytes: s('detect-max-bytes', 'bytes read at most to detect the protocol', '8192'),
  maxHeaderBytes: s(
    'max-header-bytes',
    'largest HTTP/1 request or response head accepted (bytes); larger requests get 431',
    '16384',
  ),
  headerTimeoutMs: s(
    'header-timeout-ms',
    'time a client has to send a whole request head once it started (ms); then 408',
    '10000',
  ),
  idleTimeoutMs: s('idle-timeout-ms', 'idle keep-alive client connections are closed after this (ms)', '60000'),
  connectTimeoutMs: s('connect-timeout-ms', 'time allowed to connect to an upstream (ms); then 504', '3000'),
  responseTimeoutMs: s(
    'response-timeout-ms',
    'time allowed for an upstream to start its response (ms, 0 = no limit); then 504',
    '0',
  ),
  upstreamIdleTimeoutMs: s(
    'upstream-idle-timeout-ms',
    "pooled upstream connections idle longer than this are closed (ms); keep it below the servers' keep-alive timeout",
    '4000',
  ),
  breakerFailures: s(
    'breaker-failures',
    'consecutive failures (connect errors, resets, 5xx) that eject an endpoint (of a Service, or of a route backend)',
    '7',
  ),
  maxInFlightRequests: s(
    'max-in-flight-requests',
    'HTTP requests in flight to one destination (a Service or a pod) at once',
    '10000',
  ),
  maxQueuedRequests: s(
    'max-queued-requests',
    'HTTP requests waiting for one of those slots, per destination; beyond it, 503 at once',
    '1000',
  ),
  maxIdlePerUpstream: s('max-idle-per-upstream', 'idle HTTP/1 connections kept per upstream address', '256'),
  drainTimeoutMs: s('drain-timeout-ms', 'on shutdown, how long in-flight work may take before it is cut (ms)', '30000'),
  podNamespace: s(
    'pod-namespace',
    'the namespace of the pod this proxy serves: the dst_namespace of inbound metrics, tap and spans',
  ),
  podName: s('pod-name', 'the name of the pod this proxy serves (dst_pod of inbound metrics)'),
  podWorkload: s(
    'pod-workload',
    'the Deployment that owns the pod (dst_deployment of inbound metrics, the service.name of spans)',
  ),
  tapTokenFile: s(
    'tap-token-file',
    "file holding the mesh's tap token; GET /tap on the admin port needs it as a bearer token (unset: tap is off)",
  ),
  traceCollector: s(
    'trace-collector',
    'URL of an OTLP/HTTP collector (e.g. http://10.0.0.1:4318): one span per request, JSON, batched (unset: no tracing)',
  ),
  traceSampleRatio: s(
    'trace-sample-ratio',
    "share of the traces this proxy starts (requests without a traceparent) that are sampled and exported, 0 to 1; a caller's sampled flag is always kept",
    '1',
  ),
  appProbes: s(
    'app-probes',
    'JSON {"<name>": {"port": N, "scheme": "HTTP|HTTPS|TCP", "path": "/x", "headers": [{"name","value"}]}}: the app\'s kubelet probes the admin server forwards at GET /app-probe/<name> (the injector writes it)',
  ),
  accessLog: s('access-log', 'one JSON line per request to "stdout" or to this file (unset: off)'),
  logLevel: s('log-level', 'fatal | error | warn | info | debug | trace | silent', 'info'),
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
