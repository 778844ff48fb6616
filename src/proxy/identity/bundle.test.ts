// The trust bundle: parsing, the watched file (atomic replacement, bad content kept out), and a proxy's
// identity through a whole anchor rotation against a real control plane whose issuance is switched:
// the bundle's anchors are used at once, a new generation makes it renew, a certificate from an anchor
// not yet trusted is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor } from '../../../test/basics.js';
import { startTestControlPlane, workloadCertificate } from '../../../test/control-plane.js';
import type { SpiffeId } from '../../api/identity.js';
import { MeshCa } from '../../control/identity/ca.js';
import { Certifier } from '../../control/identity/certify.js';
import { Issuance } from '../../control/identity/issuance.js';
import { addIdentityService } from '../../control/identity/service.js';
import { LocalTokenIssuer } from '../../control/identity/tokens.js';
import { LocalStore } from '../../control/store/local/local.js';
import { TrustFile, bundleKey, formatTrustBundle, parseTrustBundle } from './bundle.js';
import { ProxyIdentity } from './identity.js';

const a = await MeshCa.create();
const b = await MeshCa.create();
const fp = (pem: string) => new X509Certificate(pem).fingerprint256;

async function tmp(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-bundle-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Replaces a file the way the runtime and the kubelet do: a new file renamed over the old one. */
async function replace(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text);
  await rename(`${file}.tmp`, file);
}

const gen = (n: number, ...pems: string[]) => `# outrigger-trust-generation: ${n}\n${pems.join('')}`;

void test('bundle: one or more CA certificates, the generation line, duplicates dropped; bad ones named', async () => {
  const one = parseTrustBundle(a.trustAnchorPem);
  assert.equal(one.anchors.length, 1);
  assert.equal(one.generation, 0);
  assert.equal(one.views[0]?.fingerprint, fp(a.trustAnchorPem));
  assert.match(one.views[0]?.subject ?? '', /CN=outrigger trust anchor/);
  const two = parseTrustBundle(gen(7, a.trustAnchorPem, b.trustAnchorPem, a.trustAnchorPem));
  assert.equal(two.generation, 7);
  assert.deepEqual(
    two.views.map((v) => v.fingerprint),
    [fp(a.trustAnchorPem), fp(b.trustAnchorPem)],
  );
  assert.equal(bundleKey(two), bundleKey(parseTrustBundle(b.trustAnchorPem + a.trustAnchorPem)));
  assert.throws(() => parseTrustBundle('nothing', 'f.pem'), /f\.pem holds no PEM certificate/);
  assert.throws(
    () => parseTrustBundle(a.trustAnchorPem + '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
    /trust bundle: certificate 2 of 2 does not parse/,
  );
  const leaf = await workloadCertificate(a, { namespace: 'default', serviceAccount: 'web' });
  assert.throws(
    () => parseTrustBundle(leaf.certChainPem, 'f.pem'),
    /f\.pem: certificate 1 of 2 \(subject ""\) is not a CA certificate/,
  );
});

void test('bundle file: an atomic replacement is seen, a bad one keeps the last good bundle and is counted', async (t) => {
  const dir = await tmp(t);
  const file = path.join(dir, 'trust-anchors.pem');
  await writeFile(file, a.trustAnchorPem);
  await assert.rejects(TrustFile.open(path.join(dir, 'missing.pem')), /cannot read .*missing\.pem \(ENOENT\)/);
  const f = await TrustFile.open(file, { pollMs: 20 });
  t.after(() => f.close());
  const seen: number[] = [];
  f.onChange((x) => seen.push(x.anchors.length));
  assert.equal(f.current().anchors.length, 1);
  await replace(file, gen(1, a.trustAnchorPem, b.trustAnchorPem));
  await waitFor('the new bundle', () => f.current().anchors.length === 2, 10_000);
  assert.equal(f.current().generation, 1);
  await replace(file, 'garbage');
  await waitFor('a counted bad read', () => f.readFailures >= 1, 10_000);
  assert.equal(f.current().anchors.length, 2, 'the last good bundle is kept');
  await replace(file, gen(2, b.trustAnchorPem));
  await waitFor('the last bundle', () => f.current().generation === 2, 10_000);
  assert.deepEqual(seen, [2, 1]);
});

void test('identity: through an anchor rotation, the bundle is used at once, a new generation renews, an untrusted issuer is refused', async (t) => {
  const dir = await tmp(t);
  const tokens = await LocalTokenIssuer.create();
  const issuance = new Issuance(a);
  const certifier = new Certifier({ ca: issuance, reviewer: tokens.reviewer(() => true), leafLifetimeSeconds: 3600 });
  const cp = await startTestControlPlane({
    store: new LocalStore(),
    ca: issuance,
    services: (server) => addIdentityService(server, { certifier }),
  });
  t.after(() => cp.close());
  const tokenPath = path.join(dir, 'token');
  await writeFile(
    tokenPath,
    await tokens.issue({ namespace: 'default', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u1' } }),
  );
  const file = path.join(dir, 'trust-anchors.pem');
  await writeFile(file, gen(1, a.trustAnchorPem));
  const trust = await TrustFile.open(file, { pollMs: 20 });
  t.after(() => trust.close());
  const id = ProxyIdentity.start({
    controlAddr: cp.addr,
    tls: { trustAnchors: () => trust.current().pem, serverIdentity: cp.identity },
    tokenPath,
    identity: 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId,
    trust,
    renewOnTrustChangeMs: 50,
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  t.after(() => id.close());
  const first = await id.whenReady();
  assert.equal(first.issuer.fingerprint, fp(a.issuerPem));
  assert.equal(first.anchorFingerprint, fp(a.trustAnchorPem));

  // (1) Both anchors: the certificate held is used with them at once, and renewed (still from A).
  await replace(file, gen(2, a.trustAnchorPem, b.trustAnchorPem));
  await waitFor('both anchors trusted', () => id.current()?.trust.anchors.length === 2, 10_000);
  assert.equal(id.metrics.trust?.views.length, 2);
  await waitFor('a renewal for the new generation', () => id.metrics.refreshCount >= 2, 10_000);
  assert.equal(id.current()?.issuer.fingerprint, fp(a.issuerPem));

  // (2) Issuance switched to B (and the control plane's own certificate with it); a new generation.
  issuance.use(b, a.trustAnchorPem + b.trustAnchorPem);
  await replace(file, gen(3, a.trustAnchorPem, b.trustAnchorPem));
  await waitFor(
    'a certificate from the new issuer',
    () => id.current()?.issuer.fingerprint === fp(b.issuerPem),
    10_000,
  );
  assert.equal(id.current()?.anchorFingerprint, fp(b.trustAnchorPem));
  assert.equal(id.metrics.refreshFailures, 0);

  // (3) Only B.
  issuance.setBundle(b.trustAnchorPem);
  await replace(file, gen(4, b.trustAnchorPem));
  await waitFor('only the new anchor', () => id.current()?.trust.anchors.length === 1, 10_000);
  assert.equal(id.current()?.trust.views[0]?.fingerprint, fp(b.trustAnchorPem));
  await waitFor(
    'the renewal of generation 4',
    () => id.current()?.trust.generation === 4 && id.metrics.refreshCount >= 4,
    10_000,
  );

  // Issuance going back to A while the proxy trusts only B: refused (the certificate from A, or the
  // control plane's own from A when a new connection is needed), and B's is kept.
  const held = id.current();
  issuance.use(a, a.trustAnchorPem + b.trustAnchorPem);
  await replace(file, gen(5, b.trustAnchorPem));
  await waitFor('a refused certificate', () => id.metrics.refreshFailures >= 1, 10_000);
  assert.match(id.lastError()?.message ?? '', /chains to none of the 1 trusted anchor\(s\)|certificate is not trusted/);
  assert.equal(id.current()?.serial, held?.serial);
});

void test('identity: a bundle naming the issuer that signs now; a certificate from another is asked for again until it comes', async (t) => {
  assert.equal(parseTrustBundle(gen(1, a.trustAnchorPem)).issuer, undefined);
  const named = parseTrustBundle(
    formatTrustBundle({ anchorsPem: a.trustAnchorPem, generation: 3, issuer: fp(b.issuerPem) }),
  );
  assert.equal(named.generation, 3);
  assert.equal(named.issuer, fp(b.issuerPem));
  assert.throws(
    () => parseTrustBundle(`# outrigger-trust-issuer: AB:CD\n${a.trustAnchorPem}`, 'f.pem'),
    /f\.pem: the "# outrigger-trust-issuer:" line does not hold a SHA-256 fingerprint/,
  );

  const dir = await tmp(t);
  const tokens = await LocalTokenIssuer.create();
  // Issuance still under A (a control plane replica whose mounted Secret is not updated yet).
  const issuance = new Issuance(a, a.trustAnchorPem + b.trustAnchorPem);
  const certifier = new Certifier({ ca: issuance, reviewer: tokens.reviewer(() => true), leafLifetimeSeconds: 3600 });
  const cp = await startTestControlPlane({
    store: new LocalStore(),
    ca: issuance,
    services: (server) => addIdentityService(server, { certifier }),
  });
  t.after(() => cp.close());
  const tokenPath = path.join(dir, 'token');
  await writeFile(
    tokenPath,
    await tokens.issue({ namespace: 'default', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u1' } }),
  );
  const file = path.join(dir, 'trust-anchors.pem');
  await writeFile(
    file,
    formatTrustBundle({ anchorsPem: a.trustAnchorPem + b.trustAnchorPem, generation: 2, issuer: fp(b.issuerPem) }),
  );
  const trust = await TrustFile.open(file, { pollMs: 20 });
  t.after(() => trust.close());
  const id = ProxyIdentity.start({
    controlAddr: cp.addr,
    tls: { trustAnchors: () => trust.current().pem, serverIdentity: cp.identity },
    tokenPath,
    identity: 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId,
    trust,
    renewOnTrustChangeMs: 50,
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  t.after(() => id.close());
  const first = await id.whenReady();
  assert.equal(first.issuer.fingerprint, fp(a.issuerPem), 'served meanwhile with what the control plane gives');
  await waitFor('asked again', () => id.metrics.refreshCount >= 3, 10_000);
  assert.equal(id.current()?.issuer.fingerprint, fp(a.issuerPem));
  // The replica loads the new issuer: the proxy's next try gets it, and then it stops asking.
  issuance.use(b);
  await waitFor(
    'a certificate from the named issuer',
    () => id.current()?.issuer.fingerprint === fp(b.issuerPem),
    10_000,
  );
  const count = id.metrics.refreshCount;
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(id.metrics.refreshCount, count, 'no more renewals once the issuer is the named one');
  assert.equal(id.metrics.refreshFailures, 0);
});
