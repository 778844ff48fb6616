// The issuer's expiry: the verdicts of `outrigger check` and the control plane's metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { MeshCa } from './ca.js';
import { ISSUER_WARN_MS, identityRegistry, judgeExpiry } from './expiry.js';
import { Issuance } from './issuance.js';

void test('expiry: ok, a warning within 30 days naming the rotation, an error once expired', async () => {
  const ca = await MeshCa.create({ issuerLifetimeSeconds: 40 * 86_400 });
  const notAfter = new Date(new X509Certificate(ca.issuerPem).validTo).getTime();
  const rotate = 'outrigger trust rotate';
  assert.equal(judgeExpiry(ca.issuerPem, new Date(), rotate).level, 'ok');
  const soon = judgeExpiry(ca.issuerPem, new Date(notAfter - ISSUER_WARN_MS + 86_400_000), rotate);
  assert.equal(soon.level, 'warning');
  assert.match(soon.detail, /, in 29 days$/);
  assert.equal(soon.hint, rotate);
  const gone = judgeExpiry(ca.issuerPem, new Date(notAfter + 1000), rotate);
  assert.equal(gone.level, 'error');
  assert.match(gone.detail, /^expired .*no proxy can get or renew a certificate/);
});

void test('metrics: the issuer and the anchors expiry follow the issuance', async () => {
  const a = await MeshCa.create();
  const b = await MeshCa.create({ issuerLifetimeSeconds: 3600 });
  const issuance = new Issuance(a);
  const reg = identityRegistry(issuance);
  const at = (pem: string) => Math.floor(new Date(new X509Certificate(pem).validTo).getTime() / 1000);
  const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
  let text = await reg.metrics();
  assert.ok(
    text.includes(`identity_issuer_expiration_timestamp_seconds{fingerprint="${fp(a.issuerPem)}"} ${at(a.issuerPem)}`),
    text,
  );
  issuance.use(b, a.trustAnchorPem + b.trustAnchorPem);
  text = await reg.metrics();
  assert.ok(text.includes(`{fingerprint="${fp(b.issuerPem)}"} ${at(b.issuerPem)}`), text);
  assert.ok(!text.includes(fp(a.issuerPem)), 'the old issuer is gone');
  for (const pem of [a.trustAnchorPem, b.trustAnchorPem])
    assert.ok(text.includes(`identity_trust_anchor_expiration_timestamp_seconds{fingerprint="${fp(pem)}"}`), text);
});
