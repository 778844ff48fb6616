// The names and numbers the Kubernetes parts agree on: install manifests, the injector, the control
// plane entry point and `outrigger check`. One place, so that a Service name or a mount path cannot
// differ between the manifest that creates it and the code that uses it.
import { CONTROL_PLANE_SERVICE_ACCOUNT, KUBE_ANNOTATION, PROXY_CONTAINER, PROXY_UID } from '../manifests/contract.js';

export const DEFAULT_NAMESPACE = 'outrigger';
export const DEFAULT_IMAGE = 'ghcr.io/outrigger/outrigger:0.1.0';

export const CONTROL_PLANE = 'outrigger-control-plane';
/** The Service proxies reach the control plane's gRPC port (destination, identity) through. */
export const CONTROL_SERVICE = 'outrigger-control-plane';
/** The Service the API server reaches the injector webhook through. */
export const INJECTOR_SERVICE = 'outrigger-injector';
export const WEBHOOK_CONFIGURATION = 'outrigger-injector';
/** The webhook's name; Kubernetes wants a fully qualified name with at least three segments. */
export const WEBHOOK_NAME = 'inject.outrigger.io';
export const WEBHOOK_PATH = '/inject';

export const IDENTITY_SECRET = 'outrigger-identity';
export const INJECTOR_TLS_SECRET = 'outrigger-injector-tls';
/** The control plane's ServiceAccount: its identity is spiffe://<td>/ns/<namespace>/sa/this. */
export const SERVICE_ACCOUNT = CONTROL_PLANE_SERVICE_ACCOUNT;

export const GRPC_PORT = 8086;
export const WEBHOOK_PORT = 8443;
/** The control plane's own health endpoints (/live, /ready) and metrics. */
export const CONTROL_ADMIN_PORT = 9990;

/** Where the control plane container finds its Secrets. */
export const IDENTITY_DIR = '/var/run/outrigger/identity';
export const INJECTOR_TLS_DIR = '/var/run/outrigger/injector-tls';
/** The trust bundle (the anchors every proxy and the control plane trust, PEM, with the generation
 *  line of src/proxy/identity/bundle.ts): a ConfigMap in the install namespace, which install renders and
 *  the rotation stages replace, copied by the control plane into every other namespace under the same
 *  name (a pod can mount only a ConfigMap of its own namespace), and mounted by every proxy. */
export const TRUST_BUNDLE_CONFIGMAP = 'outrigger-trust-anchors';
export const TRUST_BUNDLE_KEY = 'ca-bundle.crt';
/** Where the control plane and the proxies mount it. */
export const TRUST_BUNDLE_DIR = '/var/run/outrigger/trust';
export const TRUST_BUNDLE_VOLUME = 'outrigger-trust-anchors';
/** The label the control plane puts on the copies it writes (it replaces only those). */
export const TRUST_BUNDLE_COPY_LABEL = 'trust.outrigger.io/copy-of';
/** Keys of the identity Secret: the issuer and its key, and the anchor that signed the issuer. */
export const IDENTITY_KEYS = { trustAnchor: 'ca.crt', issuerCert: 'issuer.crt', issuerKey: 'issuer.key' } as const;

/** The proxy's uid and gid and its container's name (the local runtime uses the same): contract values. */
export { PROXY_CONTAINER, PROXY_UID };
export const INIT_CONTAINER = 'outrigger-init';
export const TOKEN_VOLUME = 'outrigger-identity-token';
export const TOKEN_DIR = '/var/run/secrets/outrigger.io/identity';
export const TOKEN_FILE = 'token';
/** Projected token lifetime (s): the kubelet refreshes it at 80%; Kubernetes' minimum is 600. */
export const TOKEN_EXPIRATION_SECONDS = 3600;

/** Annotations the injector reads (besides the mesh ones): contract values too. */
export { KUBE_ANNOTATION };

export const VERSION = '0.1.0';

/** The labels of every object install renders, by component. */
export function objectLabels(component: string): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'outrigger',
    'app.kubernetes.io/part-of': 'outrigger',
    'app.kubernetes.io/component': component,
    'app.kubernetes.io/version': VERSION,
  };
}

/** The cluster's pod networks when install is not told them: every private IPv4 range (RFC 1918) and
 *  the shared address space (RFC 6598), where CNI plugins put pods (kind and flannel 10.244/16, k3s
 *  10.42/16, Calico 192.168/16, cloud VPCs). `cluster-authenticated` admits meshed clients from
 *  these; narrow them with `install --cluster-networks` when nodes or other hosts share the ranges. */
export const DEFAULT_CLUSTER_NETWORKS: readonly string[] = [
  '10.0.0.0/8',
  '100.64.0.0/10',
  '172.16.0.0/12',
  '192.168.0.0/16',
];

export function controlAddr(namespace: string): string {
  return `${CONTROL_SERVICE}.${namespace}.svc:${GRPC_PORT}`;
}

/** The identity the control plane installed in `namespace` serves with (and the proxies check). */
export function controlIdentity(trustDomain: string, namespace: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${SERVICE_ACCOUNT}`;
}

const IPV4_CIDR =
  /^(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])){3}\/([0-9]|[12][0-9]|3[0-2])$/;

/** IPv4 CIDRs, comma-separated; a problem for each one that is not. */
export function parseClusterNetworks(text: string): { networks: string[]; problems: string[] } {
  const networks = text
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  const problems = networks
    .filter((n) => !IPV4_CIDR.test(n))
    .map((n) => `--cluster-networks: ${JSON.stringify(n)} is not an IPv4 CIDR such as 10.244.0.0/16`);
  if (networks.length === 0) problems.push('--cluster-networks: needs at least one network');
  return { networks, problems };
}
