import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SpiffeId } from '../../api/identity.js';
import { MeshCa } from './ca.js';
import { Certifier } from './certify.js';
import { IdentityCodes, IdentityError } from './errors.js';
import { LocalTokenIssuer, TOKEN_KEY_FILE, type PodRef } from './tokens.js';
import { x509 } from './x509.js';

const WEB = { namespace: 'default', serviceAccount: 'web', pod: { name: 'web-1', uid: 'uid-web-1' } };
const WEB_ID = 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId;

async function csrFor(
  names: { type: 'url' | 'dns'; value: string }[],
  alg: { name: 'ECDSA'; namedCurve: string; hash: string } = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
): Promise<string> {
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const ext = names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [];
  return (
    await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg, extensions: ext })
  ).toString('pem');
}

async function setup(opts: { lifetime?: number } = {}) {
  const ca = await MeshCa.create();
  const tokens = await LocalTokenIssuer.create();
  const pods = new Set(['default/web-1/uid-web-1', 'default/api-1/uid-api-1']);
  const podExists = (ns: string, pod: PodRef) => pods.has(`${ns}/${pod.name}/${pod.uid}`);
  const certifier = new Certifier({
    ca,
    reviewer: tokens.reviewer(podExists),
    ...(opts.lifetime ? { leafLifetimeSeconds: opts.lifetime } : {}),
  });
  return { ca, tokens, pods, certifier };
}

async function refusal(p: Promise<unknown>): Promise<IdentityError> {
  const err = await p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof IdentityError, String(err));
  return err;
}

void test('a good Certify yields a leaf for the token identity that verifies to the trust anchor', async () => {
  const { ca, tokens, certifier } = await setup({ lifetime: 120 });
  const token = await tokens.issue(WEB);
  const before = Date.now();
  const c = await certifier.certify(token, await csrFor([{ type: 'url', value: WEB_ID }]));
  assert.equal(c.identity, WEB_ID);
  const leaf = new X509Certificate(c.leafPem);
  const issuer = new X509Certificate(c.chainPem);
  const anchor = new X509Certificate(c.trustAnchorPem);
  assert.equal(c.trustAnchorPem, ca.trustAnchorPem);
  assert.ok(leaf.checkIssued(issuer) && leaf.verify(issuer.publicKey));
  assert.ok(issuer.verify(anchor.publicKey));
  assert.equal(leaf.subjectAltName, `URI:${WEB_ID}`);
  assert.equal(leaf.ca, false);
  assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  const lifetimeS = (c.notAfter.getTime() - before) / 1000;
  assert.ok(lifetimeS > 100 && lifetimeS <= 121, `lifetime ${lifetimeS}s`);
  assert.ok(c.notBefore.getTime() < before, 'notBefore is in the past for clock skew');
  assert.equal(c.serial.length, 32);
  const again = await certifier.certify(token, await csrFor([{ type: 'url', value: WEB_ID }]));
  assert.notEqual(again.serial, c.serial);
});

void test('a token for service account A with a CSR for B is refused, naming both', async () => {
  const { tokens, certifier } = await setup();
  const token = await tokens.issue(WEB);
  const err = await refusal(
    certifier.certify(token, await csrFor([{ type: 'url', value: 'spiffe://cluster.local/ns/default/sa/api' }])),
  );
  assert.equal(err.code, IdentityCodes.PERMISSION_DENIED);
  assert.match(
    err.message,
    /pod default\/web-1: csr asks for spiffe:\/\/cluster\.local\/ns\/default\/sa\/api; the token allows only spiffe:\/\/cluster\.local\/ns\/default\/sa\/web/,
  );
  assert.ok(!err.message.includes(token));

  const two = await refusal(
    certifier.certify(
      token,
      await csrFor([
        { type: 'url', value: WEB_ID },
        { type: 'dns', value: 'web.default.svc' },
      ]),
    ),
  );
  assert.equal(two.code, IdentityCodes.PERMISSION_DENIED);
  assert.match(
    two.message,
    /exactly one identity.*asks for uri:spiffe:\/\/cluster\.local\/ns\/default\/sa\/web, dns:web\.default\.svc/,
  );
  const none = await refusal(certifier.certify(token, await csrFor([])));
  assert.match(none.message, /asks for no subject alternative name; the token allows spiffe/);
});

void test('bad tokens are refused with clear errors', async () => {
  const { tokens, pods, certifier } = await setup();
  const csr = await csrFor([{ type: 'url', value: WEB_ID }]);
  const hourAgo = new Date(Date.now() - 3600_000);
  const other = await LocalTokenIssuer.create();
  const cases: [string, Promise<string>, string, RegExp][] = [
    ['expired', tokens.issue(WEB, { now: hourAgo, lifetimeSeconds: 60 }), 'expired', /^token: expired at \d{4}-/],
    [
      'wrong audience',
      tokens.issue(WEB, { audience: 'someone-else' }),
      'wrong-audience',
      /^token: is not for audience "identity\.outrigger\.io"$/,
    ],
    ['other signer', other.issue(WEB), 'bad-signature', /^token: signature does not verify/],
    ['garbage', Promise.resolve('not.a.jwt'), 'malformed', /^token: is not a well-formed JWT$/],
    ['empty', Promise.resolve(''), 'missing', /^token: no token given$/],
  ];
  for (const [name, tokenP, problem, re] of cases) {
    const token = await tokenP;
    const err = await refusal(certifier.certify(token, csr));
    assert.equal(err.code, IdentityCodes.UNAUTHENTICATED, name);
    assert.equal(err.tokenProblem, problem, name);
    assert.match(err.message, re, name);
    if (token !== '') assert.ok(!err.message.includes(token), `${name}: the token is not in the message`);
  }
  // The pod is deleted: its token no longer works, even though it has not expired.
  const token = await tokens.issue(WEB);
  pods.delete('default/web-1/uid-web-1');
  const gone = await refusal(certifier.certify(token, csr));
  assert.equal(gone.tokenProblem, 'pod-not-found');
  assert.equal(gone.message, 'token: is bound to pod default/web-1 (uid uid-web-1), which does not exist now');
  // A new pod with the same name has a new uid.
  pods.add('default/web-1/uid-web-1b');
  assert.equal((await refusal(certifier.certify(token, csr))).tokenProblem, 'pod-not-found');
});

void test('bad CSRs are invalid arguments', async () => {
  const { tokens, certifier } = await setup();
  const token = await tokens.issue(WEB);
  const p384 = await csrFor([{ type: 'url', value: WEB_ID }], { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' });
  const good = await csrFor([{ type: 'url', value: WEB_ID }]);
  // Flip a byte of the signature (the end of the DER): the CSR still parses but does not verify.
  const der = Buffer.from(good.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
  der[der.length - 3] = (der[der.length - 3] as number) ^ 0xff;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  const cases: [string, string, RegExp][] = [
    ['p-384 key', p384, /csr key is ECDSA P-384; only ECDSA P-256 keys are certified/],
    ['not pem', 'hello', /^csr is not PEM/],
    ['bad signature', tampered, /^csr signature/],
    [
      'not a csr',
      '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----',
      /^csr is not a valid PKCS#10/,
    ],
  ];
  for (const [name, csr, re] of cases) {
    const err = await refusal(certifier.certify(token, csr));
    assert.equal(err.code, IdentityCodes.INVALID_ARGUMENT, name);
    assert.match(err.message, re, name);
  }
});

void test('the token signing key is created 0600 in the state directory and loaded later', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-tokens-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const a = await LocalTokenIssuer.openDir(dir);
  assert.equal(a.created, true);
  assert.equal((await stat(path.join(dir, TOKEN_KEY_FILE))).mode & 0o777, 0o600);
  const b = await LocalTokenIssuer.openDir(dir);
  assert.equal(b.created, false);
  const token = await a.issuer.issue(WEB);
  assert.deepEqual(await b.issuer.reviewer(() => true).review(token), WEB);
});
