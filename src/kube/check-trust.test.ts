// `outrigger check`'s trust rotation stage, from the trust bundle and the issuer alone (offline).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshCa } from '../control/identity/ca.js';
import { trustStage } from './check.js';

const old = await MeshCa.generatePems('cluster.local', { now: () => new Date(Date.now() - 86_400_000) });
const next = await MeshCa.generatePems('cluster.local');
const stranger = await MeshCa.generatePems('cluster.local');

void test('trust stage: none, stage 1, stage 2, and an issuer no anchor signed', () => {
  const none = trustStage(old.trustAnchorPem, old.issuerCertPem);
  assert.ok(none.ok);
  assert.match(none.detail ?? '', /^no rotation: one anchor/);
  const both = old.trustAnchorPem + next.trustAnchorPem;
  const one = trustStage(both, old.issuerCertPem);
  assert.ok(one.ok);
  assert.match(one.detail ?? '', /^stage 1 of 3: both anchors trusted, the old issuer signs/);
  // The order in the bundle does not matter: the newer anchor is the one rotated to.
  const two = trustStage(next.trustAnchorPem + old.trustAnchorPem, next.issuerCertPem);
  assert.ok(two.ok);
  assert.match(two.detail ?? '', /^stage 2 of 3: both anchors trusted, the new issuer signs/);
  const broken = trustStage(both, stranger.issuerCertPem);
  assert.equal(broken.ok, false);
  assert.match(broken.detail ?? '', /the issuer chains to none of the 2 trusted anchor\(s\)/);
  assert.equal(trustStage('', old.issuerCertPem).ok, false);
});
