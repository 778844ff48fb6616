import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestControlPlane } from '../../../test/control-plane.js';
import { LocalStore } from '../store/local/local.js';
import { X509Certificate, webcrypto } from 'node:crypto';
import grpc from '@grpc/grpc-js';
import { GrpcChannel, type GrpcError } from '../../api/grpc/channel.js';
import {
  certify as certifyCall,
  type CertifyRequest,
  type CertifyResponse,
  type SpiffeId,
} from '../../api/identity.js';
import { MeshCa } from './ca.js';
import { Certifier } from './certify.js';
import { addIdentityService } from './service.js';
import { LocalTokenIssuer, type TokenReviewer } from './tokens.js';
import { x509 } from './x509.js';

const WEB = { namespace: 'default', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u1' } };
const WEB_ID = 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId;

async function csrFor(id: string): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  return (
    await x509.Pkcs10CertificateRequestGenerator.create({
      keys,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }])],
    })
  ).toString('pem');
}

/** Certify over the API's own client (what the proxy uses: TLS, no client certificate yet). */
function identityClient(
  port: number,
  ca: MeshCa,
): { certify(req: CertifyRequest): Promise<CertifyResponse>; close(): void } {
  const channel = new GrpcChannel(`127.0.0.1:${port}`, {
    tls: {
      trustAnchors: ca.trustAnchorPem,
      serverIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
    },
  });
  return { certify: (req) => certifyCall(channel, req), close: () => channel.close() };
}

/** The control plane with the identity service, as the daemon and the cluster run it. */
async function serve(ca: MeshCa, certifier: Certifier): Promise<{ port: number; server: { forceShutdown(): void } }> {
  const cp = await startTestControlPlane({
    store: new LocalStore(),
    ca,
    services: (server) => addIdentityService(server, { certifier }),
  });
  return { port: cp.address.port, server: { forceShutdown: () => void cp.close() } };
}

void test('Certify over real gRPC: a certificate, and each refusal as its status code', async (t) => {
  const ca = await MeshCa.create();
  const tokens = await LocalTokenIssuer.create();
  const { port, server } = await serve(ca, new Certifier({ ca, reviewer: tokens.reviewer(() => true) }));
  const client = identityClient(port, ca);
  t.after(() => {
    client.close();
    server.forceShutdown();
  });
  const token = await tokens.issue(WEB);

  const res = await client.certify({ token, csr_pem: await csrFor(WEB_ID) });
  assert.equal(res.identity, WEB_ID);
  assert.equal(res.trust_anchor_pem, ca.trustAnchorPem);
  const leaf = new X509Certificate(res.leaf_pem);
  assert.equal(leaf.subjectAltName, `URI:${WEB_ID}`);
  assert.equal(Number(res.not_after_unix_seconds), Math.floor(Date.parse(leaf.validTo) / 1000));

  const cases: [string, () => Promise<unknown>, grpc.status, RegExp][] = [
    [
      'bad token',
      async () => client.certify({ token: 'x.y.z', csr_pem: await csrFor(WEB_ID) }),
      grpc.status.UNAUTHENTICATED,
      /^token: is not a well-formed JWT$/,
    ],
    [
      'other identity',
      async () => client.certify({ token, csr_pem: await csrFor('spiffe://cluster.local/ns/default/sa/db') }),
      grpc.status.PERMISSION_DENIED,
      /csr asks for .*sa\/db; the token allows only .*sa\/web/,
    ],
    ['bad csr', () => client.certify({ token, csr_pem: 'nope' }), grpc.status.INVALID_ARGUMENT, /^csr is not PEM/],
  ];
  for (const [name, call, code, re] of cases) {
    const err = (await call().then(
      () => assert.fail(`${name}: accepted`),
      (e: unknown) => e,
    )) as GrpcError;
    assert.equal(err.code, code, `${name}: ${err.message}`);
    assert.match(err.details, re, name);
    assert.ok(!err.details.includes(token), `${name}: the token is not in the status`);
  }
});

void test('an unexpected failure is INTERNAL without details', async (t) => {
  const ca = await MeshCa.create();
  const reviewer: TokenReviewer = { review: () => Promise.reject(new Error('apiserver 10.0.0.1: secret detail')) };
  const { port, server } = await serve(ca, new Certifier({ ca, reviewer }));
  const client = identityClient(port, ca);
  t.after(() => {
    client.close();
    server.forceShutdown();
  });
  const err = (await client
    .certify({ token: 't', csr_pem: await csrFor(WEB_ID) })
    .catch((e: unknown) => e)) as GrpcError;
  assert.equal(err.code, grpc.status.INTERNAL);
  assert.equal(err.details, 'internal error');
});
