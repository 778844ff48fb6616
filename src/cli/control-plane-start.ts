// The control plane as it runs in a cluster (`outrigger control-plane --store kubernetes`, the
// Deployment `outrigger install` prints), assembled. One process serves, from the Kubernetes store: destination,
// policy and identity over gRPC (the mesh CA from the mounted identity Secret, tokens checked with
// TokenReview and the pod binding), the injector webhook over HTTPS (its certificate from the mounted
// Secret, reloaded when the Secret changes), and /live and /ready for the kubelet.
import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { DefaultPolicyName } from '../api/policy.js';
import type { Logger } from '../core/log.js';
import { MeshCa } from '../control/identity/ca.js';
import { Certifier } from '../control/identity/certify.js';
import { addIdentityService } from '../control/identity/service.js';
import { KubernetesTokenReviewer } from '../control/identity/token-review.js';
import { startControlPlane, type ControlPlane } from '../control/server.js';
import { KubernetesStore } from '../control/store/kubernetes/kubernetes.js';
import { startWebhook, type Webhook } from '../kube/webhook.js';
import { IDENTITY_KEYS, controlAddr } from '../kube/names.js';

export interface KubeControlPlaneOptions {
  readonly kubeConfig: k8s.KubeConfig;
  readonly namespace: string;
  readonly trustDomain: string;
  readonly identityLifetimeSeconds: number;
  readonly tokenAudience: string;
  readonly image: string;
  readonly host: string;
  readonly grpcPort: number;
  readonly webhookPort: number;
  readonly adminPort: number;
  readonly identityDir: string;
  readonly injectorTlsDir: string;
  /** The mesh-wide default inbound policy (ports no Server covers; a pod's or its namespace's
   *  annotation wins). Default all-unauthenticated. */
  readonly defaultInboundPolicy?: DefaultPolicyName;
  /** The cluster's pod networks (IPv4 CIDRs), which cluster-authenticated admits. */
  readonly clusterNetworks: readonly string[];
  /** How often the injector's certificate files are read again (ms). Default 60 s. */
  readonly tlsReloadMs?: number;
  readonly log: Logger;
}

export interface KubeControlPlane {
  readonly store: KubernetesStore;
  readonly grpc: ControlPlane;
  readonly webhook: Webhook;
  readonly admin: Server;
  readonly adminPort: number;
  close(): Promise<void>;
}

export async function startKubeControlPlane(o: KubeControlPlaneOptions): Promise<KubeControlPlane> {
  const ca = await MeshCa.load(
    {
      trustAnchor: join(o.identityDir, IDENTITY_KEYS.trustAnchor),
      issuerCert: join(o.identityDir, IDENTITY_KEYS.issuerCert),
      issuerKey: join(o.identityDir, IDENTITY_KEYS.issuerKey),
    },
    { trustDomain: o.trustDomain },
  );
  const readTls = async () => ({
    cert: await readFile(join(o.injectorTlsDir, 'tls.crt'), 'utf8'),
    key: await readFile(join(o.injectorTlsDir, 'tls.key'), 'utf8'),
  });
  let tls = await readTls();

  let ready = false;
  // The kubelet's probes: live as soon as the process serves; ready once the store has listed everything.
  const admin = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/live') res.writeHead(200).end('live\n');
    else if (path === '/ready')
      res
        .writeHead(ready ? 200 : 503)
        .end(ready ? 'ready\n' : 'waiting for the first list of every watched resource\n');
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => admin.listen(o.adminPort, o.host, r));

  const store = new KubernetesStore({ kubeConfig: o.kubeConfig, log: o.log.child({ component: 'store' }) }).start();
  const reviewer = new KubernetesTokenReviewer({
    kubeConfig: o.kubeConfig,
    audience: o.tokenAudience,
    podExists: (ns, pod) => store.podExists(ns, pod),
  });
  const certifier = new Certifier({ ca, reviewer, leafLifetimeSeconds: o.identityLifetimeSeconds });
  const grpc = await startControlPlane({
    store,
    host: o.host,
    port: o.grpcPort,
    ca,
    // Its own identity is in the install namespace: spiffe://<td>/ns/<namespace>/sa/outrigger-control-plane.
    identityNamespace: o.namespace,
    log: o.log,
    policy: { defaultPolicy: o.defaultInboundPolicy ?? 'all-unauthenticated', clusterNetworks: o.clusterNetworks },
    services: (server) => addIdentityService(server, { certifier, log: o.log.child({ service: 'identity' }) }),
  });
  const webhook = await startWebhook({
    inject: {
      image: o.image,
      controlAddr: controlAddr(o.namespace),
      trustDomain: ca.trustDomain,
      // What the proxies check this control plane with (it serves only TLS).
      trustAnchorsPem: ca.trustAnchorPem,
      controlIdentity: grpc.identity,
      tokenAudience: o.tokenAudience,
      defaultInboundPolicy: o.defaultInboundPolicy ?? 'all-unauthenticated',
    },
    // A namespace created a moment ago may not be in the cache yet: ask the API server then.
    namespaceAnnotations: async (ns) => {
      const cached = store.namespaceAnnotations(ns);
      if (cached !== undefined) return cached;
      try {
        return (
          (await o.kubeConfig.makeApiClient(k8s.CoreV1Api).readNamespace({ name: ns })).metadata?.annotations ?? {}
        );
      } catch {
        return undefined;
      }
    },
    cert: tls.cert,
    key: tls.key,
    host: o.host,
    port: o.webhookPort,
    log: o.log.child({ component: 'injector' }),
  });
  // A mounted Secret is updated in place by the kubelet: read it again now and then.
  const reload = setInterval(() => {
    void readTls()
      .then((next) => {
        if (next.cert === tls.cert && next.key === tls.key) return;
        webhook.setCertificate(next.cert, next.key);
        tls = next;
        o.log.info('injector certificate reloaded');
      })
      .catch((err: unknown) =>
        o.log.warn(
          { err: (err as Error).message },
          'injector certificate: cannot read it again; keeping the current one',
        ),
      );
  }, o.tlsReloadMs ?? 60_000);
  reload.unref();
  void store.ready.then(() => {
    ready = true;
    o.log.info('kubernetes store synced; ready');
  });
  return {
    store,
    grpc,
    webhook,
    admin,
    adminPort: (admin.address() as AddressInfo).port,
    async close() {
      clearInterval(reload);
      await Promise.all([
        grpc.close(),
        webhook.close(),
        store.close(),
        new Promise<void>((r) => admin.close(() => r())),
      ]);
    },
  };
}
