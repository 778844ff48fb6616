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
import { Issuance } from '../control/identity/issuance.js';
import { identityRegistry } from '../control/identity/expiry.js';
import { TrustManager } from './trust.js';

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

/** The daemon's control plane: what the mesh starts, with what it signs and publishes (a trust rotation
 *  switches it) and its metrics (the issuer's expiry). */
export interface LocalControlPlane extends ControlPlaneHost {
  readonly issuance: Issuance;
  readonly rotation: TrustManager;
  /** The control plane's metrics, Prometheus text (the daemon serves them at GET /metrics). */
  metricsText(): Promise<string>;
}

/** The control plane the daemon's mesh starts once its bridge is up, fed by the runtime's snapshots. */
export async function localControlPlane(o: LocalControlPlaneOptions): Promise<LocalControlPlane> {
  const log = pino({ level: 'info' }, pino.destination({ dest: 1, sync: false }));
  const store = new LocalStore();
  const ca = await openMeshCa(o);
  const issuance = new Issuance(ca);
  const metrics = identityRegistry(issuance);
  // The trust rotation's state (a recorded stage sets its bundle now); files given to `up` are the
  // user's to rotate.
  const userFiles = o.trustAnchor !== undefined && o.issuerCert !== undefined && o.issuerKey !== undefined;
  const trust = await TrustManager.open(join(o.stateDir, 'identity'), issuance, userFiles);
  const { issuer } = await LocalTokenIssuer.openDir(join(o.stateDir, 'identity'));
  return {
    port: o.controlPort,
    // It serves TLS only, as spiffe://<td>/ns/outrigger/sa/outrigger-control-plane; the proxies check it
    // (and each other) against the bundle, which a rotation changes.
    get trust() {
      return { trustAnchorsPem: trust.bundleText(), identity: controlPlaneIdentity(ca.trustDomain) };
    },
    async start(gateway, podExists) {
      const certifier = new Certifier({
        ca: issuance,
        reviewer: issuer.reviewer(podExists),
        leafLifetimeSeconds: o.certLifetimeSeconds,
      });
      const cp = await startControlPlane({
        store,
        host: gateway,
        port: o.controlPort,
        ca: issuance,
        log,
        policy: { defaultPolicy: o.defaultInboundPolicy, clusterNetworks: [o.podCidr ?? DEFAULT_POD_CIDR] },
        services: (server) => addIdentityService(server, { certifier, log: log.child({ service: 'identity' }) }),
      });
      return { addr: `${gateway}:${cp.address.port}`, close: () => cp.close() };
    },
    publish: (snapshot) => store.replace(snapshot),
    issuance,
    rotation: trust,
    metricsText: () => metrics.metrics(),
    identity: {
      trustDomain: ca.trustDomain,
      issueToken: (subject, audience) =>
        issuer.issue(subject, { lifetimeSeconds: 3600, ...(audience !== undefined ? { audience } : {}) }),
    },
  };
}
