// The proxy's CSR read back by two independent parsers: `openssl req -verify` and the control plane's
// own checks (@peculiar/x509 behind the Certifier), up to a certificate issued by a real mesh CA for the
// key. (The control plane is a test fixture here; the proxy's code never imports it.)
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SpiffeId } from '../../api/identity.js';
import { MeshCa } from '../../control/identity/ca.js';
import { Certifier } from '../../control/identity/certify.js';
import { LocalTokenIssuer } from '../../control/identity/tokens.js';
import { x509 } from '../../control/identity/x509.js';
import { newKeyAndCsr } from './csr.js';

const WEB = 'spiffe://cluster.local/ns/default/sa/web' as SpiffeId;
// Long enough that lengths in the request take DER's long form (over 127 bytes).
const LONG = `spiffe://cluster.local/ns/default/sa/${'a'.repeat(200)}` as SpiffeId;

/** `openssl req -verify -noout -text` on the PEM: its output, or undefined when openssl is missing. */
async function opensslText(t: TestContext, pem: string): Promise<string | undefined> {
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-csr-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'csr.pem');
  await writeFile(file, pem);
  return new Promise((resolve, reject) => {
    execFile('openssl', ['req', '-in', file, '-verify', '-noout', '-text'], (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') resolve(undefined);
      else if (err) reject(new Error(`openssl req: ${stderr || err.message}`));
      else resolve(stdout + stderr);
    });
  });
}

void test('openssl verifies the request and reads an empty subject, a P-256 key, one critical URI SAN, ecdsa-with-SHA256', async (t) => {
  for (const id of [WEB, LONG]) {
    const { csrPem } = newKeyAndCsr(id);
    assert.match(
      csrPem,
      /^-----BEGIN CERTIFICATE REQUEST-----\n([A-Za-z0-9+/=]{64}\n)*[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE REQUEST-----\n$/,
    );
    const text = await opensslText(t, csrPem);
    if (text === undefined) {
      const msg = 'csr: openssl is missing: the check of the CSR by openssl is SKIPPED (install the openssl package)';
      if (process.env.CI === 'true') assert.fail(msg);
      t.diagnostic(msg);
      t.skip(msg);
      return;
    }
    assert.match(text, /verify OK/);
    assert.match(text, /Subject: *\n/);
    assert.match(text, /Public Key Algorithm: id-ecPublicKey/);
    assert.match(text, /NIST CURVE: P-256/);
    assert.match(text, /X509v3 Subject Alternative Name: critical\n\s*URI:(\S+)\n/);
    assert.equal(/URI:(\S+)/.exec(text)?.[1], id);
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  }
});

void test('the control plane parses it, checks its signature and certifies its key for the identity', async () => {
  const { keyPem, csrPem } = newKeyAndCsr(WEB);
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  assert.equal(await csr.verify(), true);
  assert.equal(csr.subject, '');
  const sans = csr.extensions.filter((e) => e instanceof x509.SubjectAlternativeNameExtension);
  assert.equal(sans.length, 1);
  assert.equal(sans[0]?.critical, true);
  assert.deepEqual(sans[0]?.names.toJSON(), [{ type: 'url', value: WEB }]);
  // The CSR's key is the key's public half.
  assert.deepEqual(
    Buffer.from(csr.publicKey.rawData),
    createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' }),
  );

  const ca = await MeshCa.create();
  const tokens = await LocalTokenIssuer.create();
  const certifier = new Certifier({ ca, reviewer: tokens.reviewer(() => true) });
  const token = await tokens.issue({ namespace: 'default', serviceAccount: 'web', pod: { name: 'web-1', uid: 'u1' } });
  const issued = await certifier.certify(token, csrPem);
  const leaf = new X509Certificate(issued.leafPem);
  assert.equal(leaf.subjectAltName, `URI:${WEB}`);
  assert.equal(leaf.checkPrivateKey(createPrivateKey(keyPem)), true);
});

void test('a new key every time, kept as PKCS#8 PEM; an identity that is not ASCII is refused', () => {
  const a = newKeyAndCsr(WEB);
  const b = newKeyAndCsr(WEB);
  assert.notEqual(a.keyPem, b.keyPem);
  assert.match(a.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const key = createPrivateKey(a.keyPem);
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.throws(() => newKeyAndCsr('spiffe://cluster.local/ns/default/sa/wéb' as SpiffeId), /not printable ASCII/);
});
