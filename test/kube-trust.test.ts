// A Kubernetes trust rotation as the in-cluster control plane lives it: the control plane runs
// in-process against the API server stand-in, its issuer Secret and trust bundle ConfigMap in files as
// the kubelet mounts them, and each stage `outrigger install trust-rotation` renders is written under
// it (the Secret and the ConfigMap updated one after the other, as the kubelet does). Checked: what it
// signs with and trusts (Certify answers, its own serving certificate), and the copies of the bundle it
// keeps in every namespace for the proxies (created, replaced, never taken back to a lower generation,
// a ConfigMap not its own left alone).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { GrpcChannel } from '../src/api/grpc/channel.js';
import { certify } from '../src/api/identity.js';
import { startKubeControlPlane } from '../src/cli/control-plane-start.js';
import { MeshCa } from '../src/control/identity/ca.js';
import { x509 } from '../src/control/identity/x509.js';
import { makeServingTls } from '../src/kube/certs.js';
import type { K8sObject } from '../src/kube/install.js';
import { rotationStageObjects } from '../src/kube/trust.js';
import { formatTrustBundle, parseTrustBundle } from '../src/proxy/identity/bundle.js';
import { waitFor } from './basics.js';
import { FakeApiServer, kubeConfigFor, type Obj } from './kube-apiserver.js';

const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
const ID = 'spiffe://cluster.local/ns/shop/sa/web';

async function csr(): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  return (
    await x509.Pkcs10CertificateRequestGenerator.create({
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: ID }])],
    })
  ).toString('pem');
}

/** Writes a file the way the kubelet updates a mounted volume: a new file renamed over the old. */
async function replace(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

const ns = (name: string): Obj => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
const pod: Obj = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web-1', namespace: 'shop', uid: 'uid-web-1' },
  spec: { serviceAccountName: 'web', containers: [{ name: 'web', image: 'web' }] },
};

void test('kubernetes trust rotation: the control plane reloads its issuer and bundle from the mounted files and keeps the copies', async (t) => {
  const api = new FakeApiServer();
  for (const n of ['mesh', 'shop', 'blog', 'kube-system']) api.put(ns(n));
  api.put(pod);
  // Someone's own ConfigMap of the same name: not ours to replace.
  api.put({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'outrigger-trust-anchors', namespace: 'blog' },
    data: { note: 'mine' },
  });
  api.tokenReview = (body) =>
    body.spec?.token === 'good'
      ? {
          status: {
            authenticated: true,
            audiences: body.spec.audiences,
            user: {
              username: 'system:serviceaccount:shop:web',
              extra: {
                'authentication.kubernetes.io/pod-name': ['web-1'],
                'authentication.kubernetes.io/pod-uid': ['uid-web-1'],
              },
            },
          },
        }
      : { status: { authenticated: false, error: 'invalid bearer token' } };
  const url = await api.listen();
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-kube-trust-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const old = await MeshCa.generatePems('cluster.local');
  const next = await MeshCa.generatePems('cluster.local');
  const tls = await makeServingTls(['outrigger-injector.mesh.svc']);
  for (const d of ['identity', 'tls', 'trust']) await mkdir(join(dir, d));
  const writeSecret = async (p: { trustAnchorPem: string; issuerCertPem: string; issuerKeyPem: string }) => {
    await replace(join(dir, 'identity', 'ca.crt'), p.trustAnchorPem);
    await replace(join(dir, 'identity', 'issuer.crt'), p.issuerCertPem);
    await replace(join(dir, 'identity', 'issuer.key'), p.issuerKeyPem);
  };
  const bundleFile = join(dir, 'trust', 'ca-bundle.crt');
  await writeSecret(old);
  await writeFile(bundleFile, formatTrustBundle({ anchorsPem: old.trustAnchorPem, generation: 100 }));
  await writeFile(join(dir, 'tls', 'tls.crt'), tls.certPem);
  await writeFile(join(dir, 'tls', 'tls.key'), tls.keyPem);
  const cp = await startKubeControlPlane({
    kubeConfig: kubeConfigFor(url),
    namespace: 'mesh',
    trustDomain: 'cluster.local',
    identityLifetimeSeconds: 3600,
    tokenAudience: 'identity.outrigger.io',
    image: 'img',
    host: '127.0.0.1',
    grpcPort: 0,
    webhookPort: 0,
    adminPort: 0,
    identityDir: join(dir, 'identity'),
    injectorTlsDir: join(dir, 'tls'),
    trustBundleDir: join(dir, 'trust'),
    identityReloadMs: 30,
    trustCopiesMs: 30,
    clusterNetworks: ['10.244.0.0/16'],
    log: pino({ level: 'silent' }),
  });
  t.after(async () => {
    await cp.close();
    await api.close();
  });
  await cp.store.ready;

  /** The copy in a namespace, parsed (undefined while there is none). */
  const copy = (namespace: string) => {
    const cm = api.get('v1', 'ConfigMap', 'outrigger-trust-anchors', namespace) as
      (Obj & { data?: Record<string, string> }) | undefined;
    const text = cm?.data?.['ca-bundle.crt'];
    return text !== undefined ? { cm, text, bundle: parseTrustBundle(text) } : undefined;
  };
  /** A certificate for shop/web, as a proxy asks for one, through a channel that trusts `anchors`. */
  const issue = async (anchors: string) => {
    const channel = new GrpcChannel(`127.0.0.1:${cp.grpc.address.port}`, {
      tls: { trustAnchors: anchors, serverIdentity: cp.grpc.identity },
    });
    try {
      return await certify(channel, { token: 'good', csr_pem: await csr() });
    } finally {
      channel.close();
    }
  };
  const issuerOf = (leafPem: string) => {
    const leaf = new X509Certificate(leafPem);
    return [old.issuerCertPem, next.issuerCertPem].find((i) => leaf.verify(new X509Certificate(i).publicKey));
  };

  // Installed: a copy in every namespace but the system ones, the install namespace (the source) and
  // the one whose ConfigMap of that name is someone else's.
  await waitFor('the copy in shop', () => copy('shop')?.bundle.generation === 100 || undefined, 10_000);
  assert.equal(
    copy('shop')?.cm?.metadata.labels?.['trust.outrigger.io/copy-of' as never],
    'mesh.outrigger-trust-anchors',
  );
  assert.equal(copy('kube-system'), undefined);
  assert.equal(copy('mesh'), undefined);
  assert.deepEqual(api.get('v1', 'ConfigMap', 'outrigger-trust-anchors', 'blog')?.data, { note: 'mine' });
  // A namespace created later gets one too.
  api.put(ns('late'));
  await waitFor('the copy in a new namespace', () => copy('late')?.bundle.generation === 100 || undefined, 10_000);
  assert.equal(issuerOf((await issue(old.trustAnchorPem)).leaf_pem), old.issuerCertPem);

  const stage = async (n: 1 | 2 | 3, generation: number) =>
    rotationStageObjects({
      namespace: 'mesh',
      trustDomain: 'cluster.local',
      stage: n,
      oldAnchorPem: old.trustAnchorPem,
      newAnchorPem: next.trustAnchorPem,
      newIssuer: { certPem: next.issuerCertPem, keyPem: next.issuerKeyPem },
      generation,
    });
  const bundleText = (objs: K8sObject[]) =>
    (objs.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> }).data[
      'ca-bundle.crt'
    ] as string;
  const secretPems = (objs: K8sObject[]) => {
    const data = (objs.find((o) => o.kind === 'Secret') as unknown as { data: Record<string, string> }).data;
    const dec = (k: string) => Buffer.from(data[k] as string, 'base64').toString('utf8');
    return { trustAnchorPem: dec('ca.crt'), issuerCertPem: dec('issuer.crt'), issuerKeyPem: dec('issuer.key') };
  };

  // Stage 1: both anchors. The control plane trusts both (Certify answers carry them) and copies them.
  await replace(bundleFile, bundleText(await stage(1, 101)));
  await waitFor('stage 1 copied', () => copy('shop')?.bundle.generation === 101 || undefined, 10_000);
  assert.equal(copy('shop')?.bundle.anchors.length, 2);
  await waitFor(
    'stage 1 trusted',
    () => cp.issuance.bundlePem.includes(next.trustAnchorPem.trim().split('\n')[1] as string) || undefined,
    10_000,
  );
  const during1 = await issue(old.trustAnchorPem);
  assert.equal(issuerOf(during1.leaf_pem), old.issuerCertPem, 'still the old issuer');
  assert.deepEqual(
    parseTrustBundle(during1.trust_anchor_pem)
      .views.map((v) => v.fingerprint)
      .sort(),
    [fp(old.trustAnchorPem), fp(next.trustAnchorPem)].sort(),
  );

  // Stage 2, the ConfigMap first (the kubelet updated that volume before the Secret's): the bundle names
  // an issuer this control plane has not loaded, so it is not copied, and the old issuer still signs.
  const s2 = await stage(2, 102);
  await replace(bundleFile, bundleText(s2));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(copy('shop')?.bundle.generation, 101, 'not copied before the issuer it names is loaded');
  assert.equal(issuerOf((await issue(old.trustAnchorPem)).leaf_pem), old.issuerCertPem);
  // Then the Secret: the new issuer signs workload certificates and the control plane's own, and the
  // bundle naming it is copied.
  await writeSecret(secretPems(s2));
  await waitFor('stage 2 copied', () => copy('shop')?.bundle.generation === 102 || undefined, 10_000);
  assert.equal(copy('shop')?.bundle.issuer, fp(next.issuerCertPem));
  assert.equal(issuerOf((await issue(next.trustAnchorPem + old.trustAnchorPem)).leaf_pem), next.issuerCertPem);
  // A half-written key (the files are not replaced atomically together) is not used: the last good kept.
  await replace(join(dir, 'identity', 'issuer.key'), old.issuerKeyPem);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(issuerOf((await issue(next.trustAnchorPem)).leaf_pem), next.issuerCertPem);
  await replace(join(dir, 'identity', 'issuer.key'), next.issuerKeyPem);

  // Stage 3: the new anchor alone. The control plane's own certificate is from the new issuer, so a
  // proxy trusting only the new anchor reaches it.
  await replace(bundleFile, bundleText(await stage(3, 103)));
  await waitFor('stage 3 copied', () => copy('late')?.bundle.generation === 103 || undefined, 10_000);
  assert.deepEqual(
    copy('shop')?.bundle.views.map((v) => v.fingerprint),
    [fp(next.trustAnchorPem)],
  );
  const after = await issue(next.trustAnchorPem);
  assert.equal(issuerOf(after.leaf_pem), next.issuerCertPem);
  assert.equal(after.trust_anchor_pem.trim(), next.trustAnchorPem.trim());

  // A copy of a higher generation (written by a replica that is ahead) is not taken back; one edited by
  // hand to a lower generation is put back.
  const ahead = formatTrustBundle({ anchorsPem: next.trustAnchorPem, generation: 104 });
  api.put({ ...(copy('shop')?.cm as Obj), data: { 'ca-bundle.crt': ahead } });
  const behind = formatTrustBundle({ anchorsPem: old.trustAnchorPem, generation: 1 });
  api.put({ ...(copy('late')?.cm as Obj), data: { 'ca-bundle.crt': behind } });
  // (The copies are known to be current: they are read again on every 60th pass, ~2 s here.)
  await waitFor('the edited copy put back', () => copy('late')?.bundle.generation === 103 || undefined, 10_000);
  assert.equal(copy('shop')?.text, ahead);
  assert.deepEqual(api.get('v1', 'ConfigMap', 'outrigger-trust-anchors', 'blog')?.data, { note: 'mine' });
  assert.equal(cp.copies.failures, 0);
});

void test('trust bundle copies: a copy ahead of this replica is left alone for a while, then replaced', async (t) => {
  const { TrustCopies } = await import('../src/kube/trust.js');
  const api = new FakeApiServer();
  const url = await api.listen();
  t.after(() => api.close());
  const a = await MeshCa.generatePems('cluster.local');
  const ours = formatTrustBundle({ anchorsPem: a.trustAnchorPem, generation: 5 });
  const copies = new TrustCopies({
    kubeConfig: kubeConfigFor(url),
    namespace: 'mesh',
    skip: [],
    namespaces: () => ['shop'],
    text: () => ours,
    aheadGraceMs: 300,
    log: pino({ level: 'silent' }),
  });
  await copies.sync();
  const stored = () =>
    (api.get('v1', 'ConfigMap', 'outrigger-trust-anchors', 'shop') as Obj & { data: Record<string, string> }).data[
      'ca-bundle.crt'
    ];
  assert.equal(stored(), ours);
  // Edited with a higher generation (a replica ahead, or a hand that wants its own anchor trusted).
  const edited = formatTrustBundle({ anchorsPem: a.trustAnchorPem, generation: 9_999_999_999 });
  api.put({
    ...(api.get('v1', 'ConfigMap', 'outrigger-trust-anchors', 'shop') as Obj),
    data: { 'ca-bundle.crt': edited },
  });
  await new Promise((r) => setTimeout(r, 50));
  // A replica that has not written it yet reads it (as every replica does on every 60th pass).
  await copies.close();
  const fresh = new TrustCopies({
    kubeConfig: kubeConfigFor(url),
    namespace: 'mesh',
    skip: [],
    namespaces: () => ['shop'],
    text: () => ours,
    aheadGraceMs: 300,
    log: pino({ level: 'silent' }),
  });
  await fresh.sync();
  assert.equal(stored(), edited, 'left alone within the grace');
  await new Promise((r) => setTimeout(r, 350));
  await fresh.sync();
  assert.equal(stored(), ours, 'replaced after it');
  assert.equal(fresh.written, 1);
});
