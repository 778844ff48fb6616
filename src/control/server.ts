// The control plane's gRPC server: one port hosting the destination service and whatever else the
// caller adds (identity), and the policy service. TLS 1.3 only, with a certificate from the mesh CA for
// the control plane's own identity (./tls.ts); there is no plaintext port.
import grpc from '@grpc/grpc-js';
import { pino } from 'pino';
import { destinationServiceDefinition, policyServiceDefinition } from '../api/load.js';
import type { Logger } from '../core/log.js';
import { createDestinationService, type DestinationService } from './destination/service.js';
import type { DefaultPolicyName } from '../api/policy.js';
import { createPolicyService, type PolicyService } from './policy/service.js';
import type { Store } from './store/store.js';
import type { MeshCa } from './identity/ca.js';
import { ControlPlaneTls } from './tls.js';
import type { SpiffeId } from '../api/identity.js';

export interface ControlPlaneOptions {
  readonly store: Store;
  /** Address to listen on, e.g. `0.0.0.0`, `127.0.0.1`, `::`. */
  readonly host: string;
  /** TCP port; 0 picks a free one (see the returned address). */
  readonly port: number;
  /** The mesh CA: it issues the control plane's own certificate, and its trust domain (e.g.
   *  `cluster.local`) is the workload identities'. */
  readonly ca: MeshCa;
  /** The namespace part of the control plane's identity (default `outrigger`; in Kubernetes, the
   *  install namespace). */
  readonly identityNamespace?: string;
  /** Lifetime of the control plane's own certificate (seconds, default 24 h); renewed at 70%. */
  readonly certLifetimeSeconds?: number;
  readonly log?: Logger;
  /** How long close() lets clients go before cutting their connections (ms). Default 2000. */
  readonly closeGraceMs?: number;
  /** The policy service's mesh-wide settings (defaults: all-unauthenticated, no cluster networks). */
  readonly policy?: { readonly defaultPolicy?: DefaultPolicyName; readonly clusterNetworks?: readonly string[] };
  /** Adds more services (identity) before the server starts listening. */
  readonly services?: (server: grpc.Server) => void;
}

export interface ControlPlane {
  readonly address: { readonly host: string; readonly port: number };
  /** The identity it serves with (what proxies expect of it) and its certificate. */
  readonly identity: SpiffeId;
  readonly tls: ControlPlaneTls;
  readonly server: grpc.Server;
  readonly destination: DestinationService;
  readonly policy: PolicyService;
  /** Ends every stream with UNAVAILABLE, then stops the server (forcibly after closeGraceMs). */
  close(): Promise<void>;
}

const SERVER_OPTIONS: grpc.ServerOptions = {
  // Ping idle clients so the streams of proxies that vanished without closing (a pod's network
  // namespace deleted) are noticed and cleaned up.
  'grpc.keepalive_time_ms': 60_000,
  'grpc.keepalive_timeout_ms': 20_000,
};

export async function startControlPlane(o: ControlPlaneOptions): Promise<ControlPlane> {
  const log = o.log ?? pino({ level: 'silent' });
  const trustDomain = o.ca.trustDomain;
  const tls = await ControlPlaneTls.start({
    ca: o.ca,
    ...(o.identityNamespace !== undefined ? { namespace: o.identityNamespace } : {}),
    ...(o.certLifetimeSeconds !== undefined ? { lifetimeSeconds: o.certLifetimeSeconds } : {}),
    log,
  });
  const server = new grpc.Server(SERVER_OPTIONS);
  const destination = createDestinationService({
    store: o.store,
    trustDomain,
    log: log.child({ service: 'destination' }),
  });
  server.addService(destinationServiceDefinition(), destination.handlers);
  const policy = createPolicyService({
    store: o.store,
    trustDomain,
    defaultPolicy: o.policy?.defaultPolicy ?? 'all-unauthenticated',
    clusterNetworks: o.policy?.clusterNetworks ?? [],
    log: log.child({ service: 'policy' }),
  });
  server.addService(policyServiceDefinition(), policy.handlers);
  o.services?.(server);
  const bindHost = o.host.includes(':') ? `[${o.host}]` : o.host;
  let port: number;
  try {
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`${bindHost}:${o.port}`, tls.credentials, (err, p) => (err ? reject(err) : resolve(p))),
    );
  } catch (err) {
    destination.close();
    policy.close();
    tls.close();
    server.forceShutdown();
    throw new Error(`control plane: cannot listen on ${bindHost}:${o.port}: ${(err as Error).message}`, { cause: err });
  }
  log.info({ host: o.host, port, identity: tls.identity }, 'control plane listening (tls)');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= new Promise<void>((resolve) => {
      destination.close();
      policy.close();
      tls.close();
      const timer = setTimeout(() => server.forceShutdown(), o.closeGraceMs ?? 2000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    }));

  return { address: { host: o.host, port }, identity: tls.identity, tls, server, destination, policy, close };
}
