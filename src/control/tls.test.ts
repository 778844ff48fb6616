// The control plane's own certificate: for its identity, from the mesh CA, renewed before it expires and
// served from the next handshake on without a restart (grpc-js's credentials watcher), while the
// connections already open keep working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { waitFor } from '../../test/basics.js';
import { startTestControlPlane } from '../../test/control-plane.js';
import { watchDestination, type Update } from '../api/destination.js';
import { GrpcChannel } from '../api/grpc/channel.js';
import { GrpcStatus } from '../api/grpc/protocol.js';
import { MeshCa } from './identity/ca.js';
import { sampleContent, service } from './store/contract.js';
import { LocalStore } from './store/local/local.js';
import { controlPlaneIdentity } from './tls.js';

/** The serial of the certificate a new TLS 1.3 connection to `port` is served. */
function servedSerial(port: number, anchor: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ca: anchor,
      ALPNProtocols: ['h2'],
      checkServerIdentity: () => undefined,
    });
    s.on('secureConnect', () => {
      const cert = s.getPeerCertificate();
      assert.equal(s.getProtocol(), 'TLSv1.3');
      assert.equal(cert.subjectaltname, 'URI:spiffe://example.org/ns/mesh/sa/outrigger-control-plane');
      resolve(cert.serialNumber.toLowerCase());
      s.destroy();
    });
    s.on('error', reject);
  });
}

void test('issued for its identity at start, renewed at 70% of its lifetime, served without a restart', async (t) => {
  const ca = await MeshCa.create({ trustDomain: 'example.org' });
  const store = new LocalStore(sampleContent());
  const cp = await startTestControlPlane({ store, ca, identityNamespace: 'mesh', certLifetimeSeconds: 3 });
  t.after(() => cp.close());
  assert.equal(cp.identity, controlPlaneIdentity('example.org', 'mesh'));
  const first = cp.tls.current();
  const leaf = new X509Certificate(first.certChainPem);
  assert.equal(leaf.subjectAltName, `URI:${cp.identity}`);
  assert.ok(leaf.verify(new X509Certificate(ca.issuerPem).publicKey), 'issued by the mesh issuer');
  assert.equal(await servedSerial(cp.address.port, ca.trustAnchorPem), first.serial.toLowerCase());

  // A stream opened on the first certificate.
  const c = new GrpcChannel(cp.addr, { tls: cp.channelTls });
  t.after(() => c.close());
  const updates: Update[] = [];
  let ended = false;
  watchDestination(c, 'web.default.svc.cluster.local:80', {
    message: (u) => updates.push(u),
    end: (s) => (ended = s.code !== GrpcStatus.CANCELLED),
  });
  await waitFor('the first answer', () => (updates.length > 0 ? true : undefined));

  const renewed: string[] = [];
  cp.tls.onRenew((c) => renewed.push(c.serial));
  await waitFor('a renewal', () => (renewed.length > 0 ? true : undefined), 10_000);
  assert.notEqual(cp.tls.current().serial, first.serial);
  // A new connection is served the new one, by the same server.
  assert.equal(await servedSerial(cp.address.port, ca.trustAnchorPem), cp.tls.current().serial.toLowerCase());
  // The stream opened before goes on: a change still reaches it (web-2 becomes ready).
  const n = updates.length;
  const content = sampleContent();
  store.replace({
    ...content,
    services: [
      service('web', '10.96.0.10', [
        { pod: 'default/web-1', ip: '10.244.0.11', ports: { 80: 8080 }, ready: true },
        { pod: 'default/web-2', ip: '10.244.0.12', ports: { 80: 8080 }, ready: true },
      ]),
    ],
  });
  await waitFor('an update on the old connection', () => (updates.length > n || ended ? true : undefined));
  assert.equal(ended, false);
  assert.equal(updates.at(-1)?.endpoints.length, 2);
});
