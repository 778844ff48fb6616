// Where the local runtime and the control plane meet, for the daemon: the runtime publishes snapshots of
// Services, endpoints and pods into a local store, and the control plane serves them to the proxies over
// gRPC on the bridge's address, with the identity service: the mesh CA (created in the state directory
// on first start, or the user's) signs each proxy's CSR after checking its pod's token, which the
// runtime issues (as the kubelet would).
import { join } from 'node:path';
import { pino } from 'pino';
import type { DefaultPolicyName } from '../api/policy.js';
import { startControlPlane } from '../control/server.js';
import { MeshCa } from '../control/identity/ca.js';
import { Certifier } from '../control/identity/certify.js';
import { addIdentityService } from '../control/identity/service.js';
import { LocalTokenIssuer } from '../control/identity/tokens.js';
import { LocalStore } from '../control/store/local/local.js';
import type { ControlPlaneHost } from '../runtime/mesh.js';
import { controlPlaneIdentity } from '../control/tls.js';

/** The pods' network when `up` is not given one (the runtime's default): cluster-authenticated's. */
const DEFAULT_POD_CIDR = '10.244.0.0/16';

export const DEFAULT_CONTROL_PORT = 8086;

export interface LocalControlPlaneOptions {
  readonly stateDir: string;
  readonly podCidr?: string;
  readonly controlPort: number;
  readonly trustDomain: string;
  readonly trustAnchor?: string;
  readonly issuerCert?: string;
  readonly issuerKey?: string;
  /** Lifetime of the proxies' certificates, in seconds. */
  readonly certLifetimeSeconds: number;
  readonly defaultInboundPolicy: DefaultPolicyName;
}

/** The mesh CA: the user's files when given (all three), else the one in the state directory. */
export async function openMeshCa(o: {
  stateDir: string;
  trustDomain: string;
  trustAnchor?: string;
  issuerCert?: string;
  issuerKey?: string;
}): Promise<MeshCa> {
  if (o.trustAnchor !== undefined && o.issuerCert !== undefined && o.issuerKey !== undefined) {
    return MeshCa.load(
      { trustAnchor: o.trustAnchor, issuerCert: o.issuerCert, issuerKey: o.issuerKey },
      { trustDomain: o.trustDomain },
    );
  }
  return (await MeshCa.openDir(join(o.stateDir, 'identity'), { trustDomain: o.trustDomain })).ca;
}

/** The control plane the daemon's mesh starts once its bridge is up, fed by the runtime's snapshots. */
export async function localControlPlane(o: LocalControlPlaneOptions): Promise<ControlPlaneHost> {
  const log = pino({ level: 'info' }, pino.destination({ dest: 1, sync: false }));
  const store = new LocalStore();
  const ca = await openMeshCa(o);
  const { issuer } = await LocalTokenIssuer.openDir(join(o.stateDir, 'identity'));
  return {
    port: o.controlPort,
    // It serves TLS only, as spiffe://<td>/ns/outrigger/sa/outrigger-control-plane.
    trust: { trustAnchorsPem: ca.trustAnchorPem, identity: controlPlaneIdentity(ca.trustDomain) },
    async start(gateway, podExists) {
      const certifier = new Certifier({
        ca,
        reviewer: issuer.reviewer(podExists),
        leafLifetimeSeconds: o.certLifetimeSeconds,
      });
      const cp = await startControlPlane({
        store,
        host: gateway,
        port: o.controlPort,
        ca,
        log,
        policy: { defaultPolicy: o.defaultInboundPolicy, clusterNetworks: [o.podCidr ?? DEFAULT_POD_CIDR] },
        services: (server) => addIdentityService(server, { certifier, log: log.child({ service: 'identity' }) }),
      });
      return { addr: `${gateway}:${cp.address.port}`, close: () => cp.close() };
    },
    publish: (snapshot) => store.replace(snapshot),
    identity: {
      trustDomain: ca.trustDomain,
      issueToken: (subject, audience) =>
        issuer.issue(subject, { lifetimeSeconds: 3600, ...(audience !== undefined ? { audience } : {}) }),
    },
  };
}
