// Who is who in the mtls scenario: the trust domain, the namespace, and the two made-up pods (client
// and server) whose ServiceAccounts give the proxies (and the haproxy pair) their SPIFFE identities.
// Shared by the driver and the control-plane child, so it imports nothing that starts anything.
import { spiffeIdFor, type SpiffeId } from '../src/api/identity.js';

export const TRUST_DOMAIN = 'cluster.local';
export const MESH_NAMESPACE = 'bench';

export interface MeshPod {
  readonly name: string;
  readonly uid: string;
  readonly serviceAccount: 'client' | 'server';
}

/** The client side's pod, then the server side's (the one behind the Service). */
export const MESH_PODS: readonly MeshPod[] = [
  { name: 'client-0', uid: 'uid-bench-client-0', serviceAccount: 'client' },
  { name: 'server-0', uid: 'uid-bench-server-0', serviceAccount: 'server' },
];

export function spiffeOf(serviceAccount: string): SpiffeId {
  return spiffeIdFor({ trustDomain: TRUST_DOMAIN, namespace: MESH_NAMESPACE, serviceAccount });
}
