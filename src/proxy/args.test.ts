// The proxy's flags: a PEM value after a space is taken as the flag's value (it starts with dashes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MeshCa } from '../control/identity/ca.js';
import { proxyConfigFromArgs, proxyFlags } from './args.js';

const pem = (await MeshCa.generatePems('cluster.local')).trustAnchorPem;

void test('proxy flags: --trust-anchors takes a PEM after a space or after =; a missing value is still refused', () => {
  assert.equal(proxyFlags(['--trust-anchors', pem]).flags.trustAnchors, pem);
  assert.equal(proxyFlags([`--trust-anchors=${pem}`]).flags.trustAnchors, pem);
  const cfg = proxyConfigFromArgs([
    '--trust-anchors',
    pem,
    '--destination-addr',
    '127.0.0.1:8086',
    '--admin-port',
    '0',
  ]);
  assert.equal(cfg.trustAnchors, pem);
  assert.equal(cfg.adminPort, 0);
  // Not a value: a flag followed by another flag, or an unknown flag followed by a PEM.
  assert.throws(() => proxyFlags(['--trust-anchors', '--admin-port', '0']), /argument is ambiguous/);
  assert.throws(() => proxyFlags(['--trust-anchor', pem]), /Unknown option '--trust-anchor'/);
  // Bad PEM content is the config's to name.
  assert.throws(
    () => proxyConfigFromArgs(['--trust-anchors', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n']),
    /trust-anchors.*does not parse/,
  );
});
