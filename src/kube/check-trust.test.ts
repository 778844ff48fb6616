// `outrigger check`'s trust rotation stage, from the trust bundle, the issuer and what the proxies'
// metrics say (offline): which stage, what to wait for, how many proxies are there, what to apply next.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { MeshCa } from '../control/identity/ca.js';
import { formatTrustBundle } from '../proxy/identity/bundle.js';
import { proxyTrustFromMetrics, trustStage, type ProxyTrust } from './check.js';

const old = await MeshCa.generatePems('cluster.local', { now: () => new Date(Date.now() - 86_400_000) });
const next = await MeshCa.generatePems('cluster.local');
const stranger = await MeshCa.generatePems('cluster.local');
const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
const bundle = (generation: number, ...pems: string[]) => formatTrustBundle({ anchorsPem: pems.join(''), generation });

const proxy = (pod: string, generation: number, issuer: string, ...anchors: string[]): ProxyTrust => ({
  pod,
  generation,
  issuer: fp(issuer),
  anchors: anchors.map(fp),
});

void test('trust stage without the proxies: none, stage 1, stage 2, and an issuer no anchor signed', () => {
  const [none] = trustStage(bundle(1, old.trustAnchorPem), old.issuerCertPem);
  assert.ok(none?.ok);
  assert.match(none?.detail ?? '', /^no rotation: one anchor/);
  const [one] = trustStage(bundle(2, old.trustAnchorPem, next.trustAnchorPem), old.issuerCertPem);
  assert.match(
    one?.detail ?? '',
    /^stage 1 of 3: both anchors trusted, the old issuer signs .*, generation 2; wait until every proxy trusts both anchors, then `outrigger install trust-rotation -n outrigger --stage 2 /,
  );
  // The order in the bundle does not matter: the newer anchor is the one rotated to.
  const [two] = trustStage(bundle(3, next.trustAnchorPem, old.trustAnchorPem), next.issuerCertPem);
  assert.match(two?.detail ?? '', /^stage 2 of 3: both anchors trusted, the new issuer signs/);
  const [broken] = trustStage(bundle(2, old.trustAnchorPem, next.trustAnchorPem), stranger.issuerCertPem);
  assert.equal(broken?.ok, false);
  assert.match(broken?.detail ?? '', /the issuer chains to none of the 2 trusted anchor\(s\)/);
  assert.equal(trustStage('', old.issuerCertPem)[0]?.ok, false);
});

void test('trust stage with the proxies: each stage waits for its own condition and then names the next', () => {
  const both = bundle(2, old.trustAnchorPem, next.trustAnchorPem);
  // Stage 1: one proxy has not read the new bundle yet (older generation, one anchor).
  const s1 = trustStage(
    both,
    old.issuerCertPem,
    [
      proxy('shop/web-1', 2, old.issuerCertPem, old.trustAnchorPem, next.trustAnchorPem),
      proxy('shop/web-2', 1, old.issuerCertPem, old.trustAnchorPem),
      { pod: 'shop/db-0', anchors: [], generation: 0, error: 'metrics: HTTP 503' },
    ],
    'mesh',
  );
  assert.match(
    s1[0]?.detail ?? '',
    /waiting until every proxy trusts both anchors \(1\/3\), then `outrigger install trust-rotation -n mesh --stage 2/,
  );
  assert.equal(s1[1]?.name, 'proxies follow the trust bundle');
  assert.equal(s1[1]?.ok, false);
  assert.match(
    s1[1]?.detail ?? '',
    /^1\/3; not yet: shop\/web-2 \(generation 1, 1 anchor\(s\), issuer .*\), shop\/db-0 \(metrics: HTTP 503\)$/,
  );
  const s1done = trustStage(both, old.issuerCertPem, [
    proxy('shop/web-1', 2, old.issuerCertPem, old.trustAnchorPem, next.trustAnchorPem),
  ]);
  assert.match(
    s1done[0]?.detail ?? '',
    /every proxy is there \(1\/1\): next, `outrigger install trust-rotation .*--stage 2 .*--new-issuer-cert/,
  );
  assert.ok(s1done[1]?.ok);

  // Stage 2: trusting both is not enough, the certificate must be from the new issuer.
  const s2bundle = bundle(3, old.trustAnchorPem, next.trustAnchorPem);
  const s2 = trustStage(s2bundle, next.issuerCertPem, [
    proxy('shop/web-1', 3, next.issuerCertPem, old.trustAnchorPem, next.trustAnchorPem),
    proxy('shop/web-2', 3, old.issuerCertPem, old.trustAnchorPem, next.trustAnchorPem),
  ]);
  assert.match(
    s2[0]?.detail ?? '',
    /waiting until every proxy holds a certificate from the new issuer .* \(1\/2\), then .*--stage 3/,
  );
  assert.match(s2[1]?.detail ?? '', /shop\/web-2/);

  // Stage 3: one anchor, while a proxy still trusts both; then done.
  const s3 = trustStage(bundle(4, next.trustAnchorPem), next.issuerCertPem, [
    proxy('shop/web-1', 4, next.issuerCertPem, next.trustAnchorPem),
    proxy('shop/web-2', 3, next.issuerCertPem, old.trustAnchorPem, next.trustAnchorPem),
  ]);
  assert.match(
    s3[0]?.detail ?? '',
    /^stage 3 of 3: the new anchor alone .*; waiting until every proxy trusts only the anchor .* \(1\/2\)$/,
  );
  const after = trustStage(bundle(4, next.trustAnchorPem), next.issuerCertPem, [
    proxy('shop/web-1', 4, next.issuerCertPem, next.trustAnchorPem),
  ]);
  assert.match(after[0]?.detail ?? '', /^no rotation/);
  assert.ok(after[1]?.ok);
});

void test("a proxy's trust facts from its metrics text", () => {
  const a = fp(old.trustAnchorPem);
  const b = fp(next.trustAnchorPem);
  const i = fp(next.issuerCertPem);
  const text = [
    '# HELP identity_trust_anchors the anchors',
    '# TYPE identity_trust_anchors gauge',
    `identity_trust_anchors{fingerprint="${a}",subject="CN=outrigger trust anchor, O=cluster.local",not_after="2036-01-01T00:00:00.000Z"} 1`,
    `identity_trust_anchors{fingerprint="${b}",subject="CN=x",not_after="2036-01-01T00:00:00.000Z"} 1`,
    'identity_trust_bundle_generation 1796331970',
    `identity_cert_issuer{fingerprint="${i}",subject="CN=issuer"} 1`,
    'identity_cert_expiration_timestamp_seconds 1796400000',
  ].join('\n');
  assert.deepEqual(proxyTrustFromMetrics('shop/web-1', text), {
    pod: 'shop/web-1',
    anchors: [a, b],
    issuer: i,
    generation: 1796331970,
  });
  assert.deepEqual(proxyTrustFromMetrics('shop/web-1', ''), { pod: 'shop/web-1', anchors: [], generation: 0 });
});
