// The control plane as it runs in a cluster (`outrigger control-plane --store kubernetes`, the
// Deployment `outrigger install` prints), assembled. One process serves, from the Kubernetes store: destination,
// policy and identity over gRPC (the mesh CA from the mounted identity Secret, tokens checked with
// TokenReview and the pod binding), the injector webhook over HTTPS (its certificate from the mounted
// Secret, reloaded when the Secret changes), and /live and /ready for the kubelet. The mesh CA (the
// issuer Secret) and the trust bundle (the ConfigMap) are mounted too and read again while it runs:
// a rotation stage applied with kubectl reaches it without a restart, and it keeps the bundle's copy
// in every namespace, which the proxies mount.
import { createServer, type Server } from 'node:http';
import { Issuance } from '../control/identity/issuance.js';
import { identityRegistry } from '../control/identity/expiry.js';
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
import { IDENTITY_KEYS, TRUST_BUNDLE_KEY, controlAddr } from '../kube/names.js';
import { excludedNamespaces } from '../kube/install.js';
import { TrustCopies } from '../kube/trust.js';
import { formatTrustBundle, parseTrustBundle } from '../proxy/identity/bundle.js';
import { X509Certificate } from 'node:crypto';

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
  /** Where the trust bundle's ConfigMap is mounted; without it (or without its file: an install from
   *  before the bundle), the identity Secret's anchor alone is trusted. */
  readonly trustBundleDir?: string;
  /** How often the mounted issuer Secret and trust bundle are read again (ms). Default 5 s (the kubelet
   *  itself updates mounted volumes about once a minute). */
  readonly identityReloadMs?: number;
  /** How often the trust bundle's copies in the other namespaces are checked (ms). Default 5 s. */
  readonly trustCopiesMs?: number;
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
  /** What it signs with and trusts now. */
  readonly issuance: Issuance;
  readonly copies: TrustCopies;
  readonly grpc: ControlPlane;
  readonly webhook: Webhook;
  readonly admin: Server;
  readonly adminPort: number;
  close(): Promise<void>;
}

/** The mounted issuer Secret and trust bundle, read now: what the control plane signs with and trusts. */
interface TrustFiles {
  /** Their text, to tell a change. */
  readonly key: string;
  readonly ca: MeshCa;
  /** The bundle file's text (made from the issuer's anchor when there is no file). */
  readonly bundleText: string;
  readonly bundlePem: string;
  /** Whether the bundle names no issuer or this one: only then is it copied to the proxies. */
  readonly consistent: boolean;
}

async function readTrustFiles(o: KubeControlPlaneOptions): Promise<TrustFiles> {
  const files = {
    trustAnchor: join(o.identityDir, IDENTITY_KEYS.trustAnchor),
    issuerCert: join(o.identityDir, IDENTITY_KEYS.issuerCert),
    issuerKey: join(o.identityDir, IDENTITY_KEYS.issuerKey),
  };
  const texts = await Promise.all(Object.values(files).map((f) => readFile(f, 'utf8').catch(() => '')));
  const bundleFile = o.trustBundleDir !== undefined ? join(o.trustBundleDir, TRUST_BUNDLE_KEY) : undefined;
  let bundleText: string | undefined;
  if (bundleFile !== undefined)
    bundleText = await readFile(bundleFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw new Error(`trust bundle ${bundleFile}: cannot read it (${err.code ?? 'error'})`);
    });
  const ca = await MeshCa.load(files, { trustDomain: o.trustDomain });
  bundleText ??= formatTrustBundle({ anchorsPem: ca.trustAnchorPem, generation: 0 });
  const bundle = parseTrustBundle(bundleText, `trust bundle ${bundleFile ?? '(the issuer anchor)'}`);
  const issuerFp = new X509Certificate(ca.issuerPem).fingerprint256;
  return {
    key: [...texts, bundleText].join('\0'),
    ca,
    bundleText,
    bundlePem: bundle.pem,
    consistent: bundle.issuer === undefined || bundle.issuer === issuerFp,
  };
}

export async function startKubeControlPlane(o: KubeControlPlaneOptions): Promise<KubeControlPlane> {
  let trust = await readTrustFiles(o);
  // Throws (start-up stops, naming the anchor) when the bundle does not hold the issuer's anchor.
  const issuance = new Issuance(trust.ca, trust.bundlePem);
  const ca = issuance;
  const readTls = async () => ({
    cert: await readFile(join(o.injectorTlsDir, 'tls.crt'), 'utf8'),
    key: await readFile(join(o.injectorTlsDir, 'tls.key'), 'utf8'),
  });
  let tls = await readTls();

  const metrics = identityRegistry(issuance);
  let ready = false;
  // The kubelet's probes: live as soon as the process serves; ready once the store has listed everything.
  const admin = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/live') res.writeHead(200).end('live\n');
    else if (path === '/ready')
      res
        .writeHead(ready ? 200 : 503)
        .end(ready ? 'ready\n' : 'waiting for the first list of every watched resource\n');
    else if (path === '/metrics')
      // The control plane's own metrics (the issuer's expiry, the anchors').
      void metrics.metrics().then(
        (t) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(t),
        () => res.writeHead(500).end(),
      );
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
      trustDomain: issuance.ca.trustDomain,
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
  // The issuer Secret and the trust bundle, mounted: a rotation stage applied with kubectl. The kubelet
  // updates the two volumes one after the other; a bundle that does not hold the new issuer's anchor
  // yet is not used until it does (the last good pair is kept, and said once).
  let trustProblem: string | undefined;
  const reloadTrust = setInterval(() => {
    void readTrustFiles(o)
      .then((next) => {
        if (next.key === trust.key) return;
        issuance.use(next.ca, next.bundlePem);
        const before = trust;
        trust = next;
        trustProblem = undefined;
        o.log.info(
          {
            issuer: new X509Certificate(next.ca.issuerPem).fingerprint256,
            issuerBefore: new X509Certificate(before.ca.issuerPem).fingerprint256,
            anchors: parseTrustBundle(next.bundleText).views.map((v) => v.fingerprint),
            copied: next.consistent,
          },
          'mesh CA or trust bundle reloaded',
        );
        void copies.sync();
      })
      .catch((err: unknown) => {
        const problem = (err as Error).message;
        if (problem !== trustProblem)
          o.log.warn({ problem }, 'mesh CA or trust bundle: cannot use the mounted files now; keeping the last good');
        trustProblem = problem;
      });
  }, o.identityReloadMs ?? 5000);
  reloadTrust.unref();
  const copies = new TrustCopies({
    kubeConfig: o.kubeConfig,
    namespace: o.namespace,
    skip: excludedNamespaces(o.namespace),
    namespaces: () => store.namespaceNames(),
    // A bundle naming an issuer this replica has not loaded yet is left to the replica that has.
    text: () => (trust.consistent ? trust.bundleText : undefined),
    intervalMs: o.trustCopiesMs ?? 5000,
    log: o.log.child({ component: 'trust-copies' }),
  });
  void store.ready.then(() => copies.start());
  void store.ready.then(() => {
    ready = true;
    o.log.info('kubernetes store synced; ready');
  });
  return {
    store,
    issuance,
    copies,
    grpc,
    webhook,
    admin,
    adminPort: (admin.address() as AddressInfo).port,
    async close() {
      clearInterval(reload);
      clearInterval(reloadTrust);
      await copies.close();
      await Promise.all([
        grpc.close(),
        webhook.close(),
        store.close(),
        new Promise<void>((r) => admin.close(() => r())),
      ]);
    },
  };
}
