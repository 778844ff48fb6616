// The command-line arguments the mesh gives a pod's proxy beyond its defaults: where the control plane
// is, who the proxy serves, its tap token, tracing, access log and identity.
import { ANNOTATION, type PodPlan } from './manifests/index.js';
import type { DefaultInboundPolicy } from '../control/store/store.js';

export interface ProxySettings {
  /** The control plane's address (destination, policy, identity), once it serves. */
  readonly controlAddr: string | undefined;
  /** How the proxy checks the control plane (TLS only): the trust anchors file and its identity. */
  readonly controlTls: { readonly trustAnchorsFile: string; readonly identity: string } | undefined;
  /** The mesh-wide default; a pod's own setting wins. */
  readonly defaultInboundPolicy: DefaultInboundPolicy | undefined;
  readonly tapTokenFile: string | undefined;
  readonly traceCollector: string | undefined;
  /** With identity: the trust domain and where the pod's token file is. */
  readonly identity: { readonly trustDomain: string; readonly tokenFile: string } | undefined;
}

export function proxyArgs(plan: PodPlan, s: ProxySettings): string[] {
  const args =
    s.controlAddr !== undefined
      ? [
          '--destination-addr',
          s.controlAddr,
          '--policy-addr',
          s.controlAddr,
          '--pod',
          `${plan.namespace}/${plan.name}`,
          '--default-inbound-policy',
          plan.mesh.defaultInboundPolicy ?? s.defaultInboundPolicy ?? 'all-unauthenticated',
          ...(s.controlTls !== undefined
            ? ['--trust-anchors-file', s.controlTls.trustAnchorsFile, '--control-identity', s.controlTls.identity]
            : []),
        ]
      : [];
  // Who the proxy serves (its metrics' dst_* labels inbound, its spans' resource), tap, tracing.
  args.push('--pod-namespace', plan.namespace, '--pod-name', plan.name);
  if (plan.owner !== undefined) args.push('--pod-workload', plan.owner.name);
  if (s.tapTokenFile !== undefined) args.push('--tap-token-file', s.tapTokenFile);
  const collector = plan.annotations[ANNOTATION.traceCollector] ?? s.traceCollector;
  if (collector !== undefined && collector !== '') args.push('--trace-collector', collector);
  const accessLog = plan.annotations[ANNOTATION.accessLog];
  if (accessLog === 'stdout') args.push('--access-log', 'stdout');
  if (plan.mesh.inject && s.identity !== undefined && s.controlAddr !== undefined) {
    const sa = plan.spec.serviceAccountName;
    const id = `spiffe://${s.identity.trustDomain}/ns/${plan.namespace}/sa/${sa}`;
    args.push('--identity-addr', s.controlAddr, '--identity-token-file', s.identity.tokenFile, '--identity', id);
  }
  return args;
}
