// The channel's TLS to the control plane, against raw TLS servers that record every byte they receive
// and against the real control plane: the right identity under the trust anchor is accepted; another
// identity from the same CA, or the right identity from another CA, is refused with an error naming
// both, before a single byte of HTTP/2 (let alone a token) is sent; once the client holds a certificate,
// new connections present it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { startTestControlPlane, workloadCertificate } from '../../../test/control-plane.js';
import { MeshCa } from '../../control/identity/ca.js';
import { LocalStore } from '../../control/store/local/local.js';
import { sampleContent } from '../../control/store/contract.js';
import { watchDestination, type Update } from '../destination.js';
import { certify } from '../identity.js';
import { GrpcChannel } from './channel.js';
import { GrpcStatus, grpcStatusName } from './protocol.js';
import { ChannelTlsCodes, uriSans } from './tls.js';

const CONTROL_ID = 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane';
const ca = await MeshCa.create();
const other = await MeshCa.create();

/** A TLS 1.3 server (h2 by ALPN) with `cert`, that records what each connection sends after the
 *  handshake and the client certificate it presented. */
async function tlsServer(
  t: TestContext,
  cert: { keyPem: string; certChainPem: string },
): Promise<{ port: number; received: () => number; clientCerts: (string | undefined)[]; handshakes: () => number }> {
  let received = 0;
  let handshakes = 0;
  const clientCerts: (string | undefined)[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(
    {
      key: cert.keyPem,
      cert: cert.certChainPem,
      ALPNProtocols: ['h2'],
      minVersion: 'TLSv1.3',
      requestCert: true,
      rejectUnauthorized: false,
      ca: ca.trustAnchorPem,
    },
    (s) => {
      sockets.add(s);
      handshakes++;
      const peer = s.getPeerCertificate();
      clientCerts.push(peer.raw !== undefined ? uriSans(peer.subjectaltname)[0] : undefined);
      s.on('data', (d: Buffer) => (received += d.length));
      s.on('error', () => undefined);
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return {
    port: (server.address() as AddressInfo).port,
    received: () => received,
    clientCerts,
    handshakes: () => handshakes,
  };
}

const channelTo = (t: TestContext, port: number, serverIdentity = CONTROL_ID) => {
  const c = new GrpcChannel(`127.0.0.1:${port}`, { tls: { trustAnchors: ca.trustAnchorPem, serverIdentity } });
  t.after(() => c.close());
  return c;
};

/** A Certify with a token that must never reach the server: how it was refused. */
async function refusal(c: GrpcChannel): Promise<{ code: string; details: string }> {
  const err = (await certify(c, { token: 'secret-token', csr_pem: 'x' }, 5000).catch((e: unknown) => e)) as {
    code: number;
    details: string;
  };
  return { code: grpcStatusName(err.code), details: err.details };
}

void test('another identity from the mesh CA is refused before anything is sent, naming both', async (t) => {
  const server = await tlsServer(t, await workloadCertificate(ca, { namespace: 'shop', serviceAccount: 'web' }));
  const r = await refusal(channelTo(t, server.port));
  assert.equal(r.code, 'UNAVAILABLE');
  assert.match(
    r.details,
    /^127\.0\.0\.1:\d+: the server presents the identity spiffe:\/\/cluster\.local\/ns\/shop\/sa\/web, expected spiffe:\/\/cluster\.local\/ns\/outrigger\/sa\/outrigger-control-plane \(refused before sending anything\) \[OUTR_ERR_CONTROL_TLS_IDENTITY\]$/,
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.received(), 0, 'not one byte after the handshake: no preface, no token');
});

void test('the right identity from another CA is refused before anything is sent, naming both', async (t) => {
  const server = await tlsServer(t, await workloadCertificate(other, CONTROL_ID as never));
  const r = await refusal(channelTo(t, server.port));
  assert.equal(r.code, 'UNAVAILABLE');
  assert.match(
    r.details,
    /the server's certificate is not trusted \(UNABLE_TO_GET_ISSUER_CERT_LOCALLY: unable to get local issuer certificate\): it presents spiffe:\/\/cluster\.local\/ns\/outrigger\/sa\/outrigger-control-plane, expected spiffe:\/\/cluster\.local\/ns\/outrigger\/sa\/outrigger-control-plane under the mesh's trust anchor \(refused before sending anything\) \[OUTR_ERR_CONTROL_TLS_UNTRUSTED\]$/,
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(server.received(), 0, 'not one byte after the handshake');
  assert.ok(ChannelTlsCodes.UNTRUSTED.startsWith('OUTR_ERR_'));
});

void test('the right identity under the anchor: HTTP/2 flows; a client certificate once it has one', async (t) => {
  const server = await tlsServer(t, await workloadCertificate(ca, CONTROL_ID as never));
  const c = channelTo(t, server.port);
  // The server is no gRPC server: the call waits; what matters is that the preface and the call arrive.
  const call = watchDestination(c, 'web.default.svc.cluster.local:80', {
    message: () => undefined,
    end: () => undefined,
  });
  const deadline = Date.now() + 5000;
  while (server.received() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(server.received() > 24, 'the HTTP/2 preface and the call');
  assert.deepEqual(server.clientCerts, [undefined], 'no client certificate before it has one');
  call.cancel();

  let told = 0;
  c.onClientCertificate(() => told++);
  const mine = await workloadCertificate(ca, { namespace: 'shop', serviceAccount: 'web' });
  c.setClientCertificate(mine);
  assert.equal(told, 1);
  c.setClientCertificate(mine);
  assert.equal(told, 1, 'the same certificate again changes nothing');
  const again = watchDestination(c, 'web.default.svc.cluster.local:80', {
    message: () => undefined,
    end: () => undefined,
  });
  const until = Date.now() + 5000;
  while (server.clientCerts.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(server.clientCerts, [undefined, 'spiffe://cluster.local/ns/shop/sa/web']);
  again.cancel();
});

void test('against the control plane: destination over TLS 1.3; a TLS 1.2 client is refused', async (t) => {
  const cp = await startTestControlPlane({ store: new LocalStore(sampleContent()), ca });
  t.after(() => cp.close());
  assert.equal(cp.identity, CONTROL_ID);
  const c = channelTo(t, cp.address.port);
  const got = await new Promise<Update>((resolve, reject) => {
    const call = watchDestination(c, 'web.default.svc.cluster.local:80', {
      message: (u) => {
        call.cancel();
        resolve(u);
      },
      end: (s) => (s.code === GrpcStatus.CANCELLED ? undefined : reject(new Error(s.details))),
    });
  });
  assert.equal(got.known, true);
  // No plaintext, and no TLS before 1.3.
  const old = await new Promise<string>((resolve) => {
    const s = tls.connect({
      host: '127.0.0.1',
      port: cp.address.port,
      ca: ca.trustAnchorPem,
      maxVersion: 'TLSv1.2',
      checkServerIdentity: () => undefined,
    });
    s.on('secureConnect', () => resolve(`connected with ${s.getProtocol()}`));
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
  assert.notEqual(old.slice(0, 9), 'connected', old);
});
