import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CA_FILE_NAMES, MeshCa, type CaFiles } from './ca.js';
import { IdentityFileError } from './errors.js';

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-ca-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

void test('creates a trust anchor and an issuer on first start, loads them later', async (t) => {
  const dir = path.join(await tempDir(t), 'identity');
  const first = await MeshCa.openDir(dir);
  assert.equal(first.created, true);
  assert.equal(first.ca.trustDomain, 'cluster.local');
  // Only three files: the root's key is not kept.
  assert.deepEqual((await readdir(dir)).sort(), Object.values(CA_FILE_NAMES).sort());
  assert.equal((await stat(path.join(dir, CA_FILE_NAMES.issuerKey))).mode & 0o777, 0o600);
  assert.equal((await stat(path.join(dir, CA_FILE_NAMES.issuerCert))).mode & 0o777, 0o644);
  assert.equal((await stat(path.join(dir, CA_FILE_NAMES.trustAnchor))).mode & 0o777, 0o644);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);

  const anchor = new X509Certificate(first.ca.trustAnchorPem);
  const issuer = new X509Certificate(first.ca.issuerPem);
  assert.ok(anchor.ca && issuer.ca);
  assert.ok(anchor.verify(anchor.publicKey), 'the anchor is self-signed');
  assert.ok(issuer.checkIssued(anchor) && issuer.verify(anchor.publicKey), 'the issuer is signed by the anchor');
  assert.equal(anchor.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const second = await MeshCa.openDir(dir);
  assert.equal(second.created, false);
  assert.equal(second.ca.trustAnchorPem, first.ca.trustAnchorPem);
  assert.equal(second.ca.issuerPem, first.ca.issuerPem);
});

void test('an incomplete directory or a readable key is refused, naming the file', async (t) => {
  const dir = await tempDir(t);
  await MeshCa.openDir(dir);
  await chmod(path.join(dir, CA_FILE_NAMES.issuerKey), 0o644);
  await assert.rejects(MeshCa.openDir(dir), /issuer key .*issuer\.key: is readable by other users \(mode 644\)/);
  await rm(path.join(dir, CA_FILE_NAMES.issuerKey));
  await assert.rejects(MeshCa.openDir(dir), /is incomplete \(missing issuer\.key\)/);
});

void test('an invalid trust domain stops start-up', async () => {
  await assert.rejects(MeshCa.create({ trustDomain: 'Cluster Local' }), /trust domain "Cluster Local" is not valid/);
});

void test('user-supplied files: each problem names its file', async (t) => {
  const dir = await tempDir(t);
  const good = await MeshCa.generatePems('cluster.local');
  const other = await MeshCa.generatePems('cluster.local');
  const longAgo = new Date(Date.now() - 3 * 365 * 24 * 3600 * 1000);
  const expired = await MeshCa.generatePems('cluster.local', { now: () => longAgo, issuerLifetimeSeconds: 3600 });
  const leafPem = (
    await (
      await MeshCa.fromPems(good)
    ).signLeaf({
      publicKey: (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']))
        .publicKey,
      identity: 'spiffe://cluster.local/ns/default/sa/web' as never,
      notBefore: new Date(Date.now() - 1000),
      notAfter: new Date(Date.now() + 3600_000),
    })
  ).pem;

  let n = 0;
  async function files(p: {
    trustAnchorPem?: string;
    issuerCertPem?: string;
    issuerKeyPem?: string;
  }): Promise<CaFiles> {
    const sub = path.join(dir, String(n++));
    await mkdir(sub);
    const f: CaFiles = {
      trustAnchor: path.join(sub, 'ca.crt'),
      issuerCert: path.join(sub, 'issuer.crt'),
      issuerKey: path.join(sub, 'issuer.key'),
    };
    if (p.trustAnchorPem !== undefined) await writeFile(f.trustAnchor, p.trustAnchorPem);
    if (p.issuerCertPem !== undefined) await writeFile(f.issuerCert, p.issuerCertPem);
    if (p.issuerKeyPem !== undefined) await writeFile(f.issuerKey, p.issuerKeyPem, { mode: 0o600 });
    return f;
  }

  const ok = await MeshCa.load(await files(good));
  assert.equal(ok.trustAnchorPem.trim(), good.trustAnchorPem.trim());

  const cases: [string, Parameters<typeof files>[0], RegExp][] = [
    [
      'unreadable',
      { issuerCertPem: good.issuerCertPem, issuerKeyPem: good.issuerKeyPem },
      /^trust anchor \S+ca\.crt: cannot read it \(ENOENT\)$/,
    ],
    ['anchor not pem', { ...good, trustAnchorPem: 'hello' }, /^trust anchor \S+ca\.crt: is not a PEM certificate/],
    [
      'issuer not pem',
      { ...good, issuerCertPem: good.issuerKeyPem },
      /^issuer certificate \S+issuer\.crt: is not a PEM certificate/,
    ],
    [
      'key not pem',
      { ...good, issuerKeyPem: good.issuerCertPem },
      /^issuer key \S+issuer\.key: is not a PEM private key/,
    ],
    [
      'key of another issuer',
      { ...good, issuerKeyPem: other.issuerKeyPem },
      /^issuer key \S+issuer\.key: does not match the issuer certificate \S+issuer\.crt$/,
    ],
    [
      'issuer is not a ca',
      { ...good, issuerCertPem: leafPem },
      /^issuer certificate \S+issuer\.crt: is not a CA certificate/,
    ],
    ['expired issuer', expired, /^issuer certificate \S+issuer\.crt: expired at \d{4}-/],
    [
      'issuer of another anchor',
      { ...good, trustAnchorPem: other.trustAnchorPem },
      /^issuer certificate \S+issuer\.crt: is not signed by the trust anchor \S+ca\.crt/,
    ],
    [
      'anchor is the issuer',
      { ...good, trustAnchorPem: good.issuerCertPem },
      /^trust anchor \S+ca\.crt: is not self-signed/,
    ],
  ];
  for (const [name, p, re] of cases) {
    const err = await MeshCa.load(await files(p)).then(
      () => assert.fail(`${name}: loaded`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof IdentityFileError, `${name}: ${String(err)}`);
    assert.match(err.message, re, name);
    assert.ok(!/MI[GIH][A-Za-z0-9+/]{20}/.test(err.message), `${name}: no key material in the message`);
  }
});

void test('openDir keeps the anchor key (0600); issuerUnder signs a new issuer under the same anchor, and refuses another key', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'outrigger-ca-key-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { ca } = await MeshCa.openDir(dir);
  const keyFile = path.join(dir, CA_FILE_NAMES.trustAnchorKey);
  assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
  const next = await MeshCa.issuerUnder(ca.trustAnchorPem, await readFile(keyFile, 'utf8'), 'cluster.local');
  const loaded = await MeshCa.fromPems(next);
  assert.equal(loaded.trustAnchorPem, ca.trustAnchorPem);
  assert.notEqual(loaded.issuerPem, ca.issuerPem);
  const other = await MeshCa.generatePems('cluster.local');
  await assert.rejects(
    MeshCa.issuerUnder(ca.trustAnchorPem, other.trustAnchorKeyPem, 'cluster.local'),
    /the anchor key does not match the trust anchor/,
  );
});
