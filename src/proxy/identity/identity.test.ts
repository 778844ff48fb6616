// Uses the control plane's identity service as a real server over loopback gRPC and TLS (tests only:
// the proxy's own code never imports the control plane).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../../test/basics.js';
import { startTestControlPlane } from '../../../test/control-plane.js';
import { LocalStore } from '../../control/store/local/local.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SpiffeId } from '../../api/identity.js';
import { MeshCa } from '../../control/identity/ca.js';
import { Certifier } from '../../control/identity/certify.js';
import { addIdentityService } from '../../control/identity/service.js';
import { LocalTokenIssuer } from '../../control/identity/tokens.js';
import { ProxyIdentity, type IdentityCert } from './identity.js';

const WEB = { namespace: 'default', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u1' } };
const WEB_ID = 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId;

async function fixture(t: { after(fn: () => unknown): void }, leafLifetimeSeconds: number) {
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-pid-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ca = await MeshCa.create();
  const tokens = await LocalTokenIssuer.create();
  const certifier = new Certifier({
    ca,
    reviewer: tokens.reviewer(() => true),
    leafLifetimeSeconds,
    clockSkewSeconds: 1,
  });
  const start = async (port = 0) => {
    const cp = await startTestControlPlane({
      store: new LocalStore(),
      ca,
      port,
      services: (server) => addIdentityService(server, { certifier }),
    });
    t.after(() => cp.close());
    return { server: cp.server, port: cp.address.port };
  };
  const tokenPath = path.join(dir, 'token');
  await writeFile(tokenPath, await tokens.issue(WEB), { mode: 0o600 });
  const tls = {
    trustAnchors: ca.trustAnchorPem,
    serverIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
  };
  return { ca, tokens, start, tokenPath, tls };
}

void test('gets a certificate over gRPC and rotates it at about 70% of a short lifetime', async (t) => {
  const f = await fixture(t, 3);
  const { server, port } = await f.start();
  t.after(() => server.forceShutdown());
  const id = ProxyIdentity.start({
    controlAddr: `127.0.0.1:${port}`,
    tokenPath: f.tokenPath,
    tls: f.tls,
    identity: WEB_ID,
    backoffMinMs: 50,
    backoffMaxMs: 500,
  });
  t.after(() => id.close());
  const rotations: IdentityCert[] = [];
  id.onRotate((c) => rotations.push(c));

  assert.equal(id.current(), undefined);
  assert.equal(id.metrics.certExpirationSeconds, 0);
  const first = await id.whenReady();
  assert.equal(first.identity, WEB_ID);
  assert.equal(first.trustAnchorPem, f.ca.trustAnchorPem);
  assert.match(first.keyPem, /BEGIN PRIVATE KEY/);
  assert.equal(id.metrics.certExpirationSeconds, Math.floor(first.notAfter.getTime() / 1000));

  // Tokens rotate: the next request reads the file again.
  await writeFile(f.tokenPath, await f.tokens.issue(WEB));
  await waitFor('three refreshes', () => id.metrics.refreshCount >= 4, 60_000);
  const serials = new Set(rotations.map((c) => c.serial));
  assert.ok(serials.size >= 3, 'each rotation is a new certificate');
  const keys = new Set(rotations.map((c) => c.keyPem));
  assert.ok(keys.size >= 3, 'each certificate has a new key');
  assert.equal(id.current(), rotations[rotations.length - 1]);
  assert.equal(id.metrics.refreshFailures, 0);
});

void test('keeps its certificate while the CA is down and renews when it is back', async (t) => {
  const f = await fixture(t, 4);
  let { server, port } = await f.start();
  t.after(() => server.forceShutdown());
  const id = ProxyIdentity.start({
    controlAddr: `127.0.0.1:${port}`,
    tokenPath: f.tokenPath,
    tls: f.tls,
    identity: WEB_ID,
    backoffMinMs: 100,
    backoffMaxMs: 400,
  });
  t.after(() => id.close());
  const held = await id.whenReady();

  server.forceShutdown();
  await waitFor('failed renewals', () => id.metrics.refreshFailures >= 3, 60_000);
  assert.equal(id.current(), held, 'the certificate held is kept while the CA is down');
  assert.match(id.lastError()?.message ?? '', /identity service 127\.0\.0\.1:\d+: certify failed: UNAVAILABLE/);
  const count = id.metrics.refreshCount;

  // Back on the same port.
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      ({ server, port } = await f.start(port));
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await waitFor('a renewal after the CA is back', () => id.metrics.refreshCount > count, 60_000);
  assert.notEqual(id.current()?.serial, held.serial);
  assert.equal(id.lastError(), undefined);
});

void test('close before the first certificate rejects whenReady; a refused token keeps retrying', async (t) => {
  const f = await fixture(t, 60);
  const { server, port } = await f.start();
  t.after(() => server.forceShutdown());
  await writeFile(f.tokenPath, await f.tokens.issue(WEB, { audience: 'elsewhere' }));
  const id = ProxyIdentity.start({
    controlAddr: `127.0.0.1:${port}`,
    tokenPath: f.tokenPath,
    tls: f.tls,
    identity: WEB_ID,
    backoffMinMs: 50,
    backoffMaxMs: 200,
  });
  await waitFor('a refusal', () => id.metrics.refreshFailures >= 1, 60_000);
  assert.match(id.lastError()?.message ?? '', /UNAUTHENTICATED: token: is not for audience/);
  await id.close();
  await assert.rejects(id.whenReady(), /closed before a certificate was obtained/);
});
