// The mesh CA: a trust anchor (self-signed root) and an issuer (intermediate) that signs workload leaf
// certificates. Created in the state directory on first start, loaded on later starts, or loaded from
// files the user supplies, each checked with an error that names the file and the problem.
//
// The root's private key is NOT kept: it is only needed to sign the issuer, and discarding it means a
// copy of the state directory yields one key (the issuer's), not two. The price: replacing the issuer
// needs a new trust anchor too (remove the directory and restart). Users who want to rotate issuers
// under a long-lived root keep that root offline and supply their own files.
import { X509Certificate, createPrivateKey, webcrypto, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { DEFAULT_TRUST_DOMAIN, trustDomainProblem, type SpiffeId } from '../../api/identity.js';
import { ConfigError } from '../../core/errors.js';
import { IdentityFileError } from './errors.js';
import { ensureDir, exists, readText, requirePrivateMode, writeFileAtomic } from './files.js';
import { P256, randomSerial, x509 } from './x509.js';

/** The file names of a generated CA inside its directory. */
export const CA_FILE_NAMES = {
  trustAnchor: 'trust-anchor.crt',
  issuerCert: 'issuer.crt',
  issuerKey: 'issuer.key',
} as const;

/** Paths of the three files a CA is loaded from. */
export interface CaFiles {
  readonly trustAnchor: string;
  readonly issuerCert: string;
  readonly issuerKey: string;
}

export interface CaOptions {
  /** Default `cluster.local`. */
  readonly trustDomain?: string;
  /** Checks happen at this time (tests); default now. */
  readonly now?: () => Date;
}

export interface CreateCaOptions extends CaOptions {
  /** Lifetime of a created trust anchor (seconds); default 10 years. */
  readonly trustAnchorLifetimeSeconds?: number;
  /** Lifetime of a created issuer (seconds); default 1 year. */
  readonly issuerLifetimeSeconds?: number;
}

export interface LeafParams {
  /** The workload's public key (from its CSR). */
  readonly publicKey: x509.PublicKey | webcrypto.CryptoKey;
  readonly identity: SpiffeId;
  readonly notBefore: Date;
  /** Clamped to the issuer's own expiry. */
  readonly notAfter: Date;
}

export interface SignedLeaf {
  readonly pem: string;
  /** Hexadecimal. */
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const YEAR_S = 365 * 24 * 3600;

function checkTrustDomain(td: string): string {
  const problem = trustDomainProblem(td);
  if (problem !== undefined) throw new ConfigError('identity settings', [problem]);
  return td;
}

function pemBlocks(text: string, label: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return text.match(re) ?? [];
}

function parseOneCert(what: string, file: string, text: string): { node: X509Certificate; cert: x509.X509Certificate } {
  const blocks = pemBlocks(text, 'CERTIFICATE');
  if (blocks.length === 0)
    throw new IdentityFileError(what, file, 'is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)');
  if (blocks.length > 1)
    throw new IdentityFileError(what, file, `holds ${blocks.length} certificates; expected exactly one`);
  const pem = blocks[0] as string;
  try {
    return { node: new X509Certificate(pem), cert: new x509.X509Certificate(pem) };
  } catch (err) {
    throw new IdentityFileError(what, file, 'holds a PEM block that is not a valid X.509 certificate', { cause: err });
  }
}

function checkCa(
  what: string,
  file: string,
  c: { node: X509Certificate; cert: x509.X509Certificate },
  now: Date,
): void {
  if (!c.node.ca)
    throw new IdentityFileError(
      what,
      file,
      `is not a CA certificate (basic constraints CA is not set; subject "${c.node.subject}")`,
    );
  const ku = c.cert.getExtension(x509.KeyUsagesExtension);
  if (ku !== null && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
    throw new IdentityFileError(what, file, 'may not sign certificates (its key usage lacks keyCertSign)');
  }
  if (c.cert.notAfter.getTime() <= now.getTime()) {
    throw new IdentityFileError(what, file, `expired at ${c.cert.notAfter.toISOString()}`);
  }
  if (c.cert.notBefore.getTime() > now.getTime()) {
    throw new IdentityFileError(what, file, `is not valid before ${c.cert.notBefore.toISOString()}`);
  }
}

/** The WebCrypto algorithm for an EC key object, or a file error naming the unsupported key. */
function ecAlgorithm(
  what: string,
  file: string,
  key: KeyObject,
): { name: 'ECDSA'; namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' } {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve === 'prime256v1')
    return { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  if (key.asymmetricKeyType === 'ec' && curve === 'secp384r1')
    return { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384' };
  const got = key.asymmetricKeyType === 'ec' ? `ec ${curve ?? 'unknown curve'}` : (key.asymmetricKeyType ?? 'unknown');
  throw new IdentityFileError(what, file, `is a ${got} key; the issuer key must be ECDSA P-256 or P-384`);
}

export class MeshCa {
  readonly trustDomain: string;
  /** The root every proxy verifies peers against (PEM). */
  readonly trustAnchorPem: string;
  /** The issuer's certificate (PEM): the chain a leaf is sent with. */
  readonly issuerPem: string;
  readonly issuerNotAfter: Date;
  readonly #issuer: x509.X509Certificate;
  readonly #signingKey: webcrypto.CryptoKey;
  readonly #signingAlgorithm: { name: 'ECDSA'; hash: string };

  private constructor(
    trustDomain: string,
    anchorPem: string,
    issuer: x509.X509Certificate,
    signingKey: webcrypto.CryptoKey,
    hash: string,
  ) {
    this.trustDomain = trustDomain;
    this.trustAnchorPem = anchorPem;
    this.#issuer = issuer;
    this.issuerPem = issuer.toString('pem') + '\n';
    this.issuerNotAfter = issuer.notAfter;
    this.#signingKey = signingKey;
    this.#signingAlgorithm = { name: 'ECDSA', hash };
  }

  /**
   * Loads the CA from `dir`, or creates it there when the directory holds none of its files. A directory
   * with only some of them is an error (a half-written CA is never silently replaced).
   */
  static async openDir(dir: string, opts: CreateCaOptions = {}): Promise<{ ca: MeshCa; created: boolean }> {
    const trustDomain = checkTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    const files: CaFiles = {
      trustAnchor: path.join(dir, CA_FILE_NAMES.trustAnchor),
      issuerCert: path.join(dir, CA_FILE_NAMES.issuerCert),
      issuerKey: path.join(dir, CA_FILE_NAMES.issuerKey),
    };
    const present = await Promise.all([files.trustAnchor, files.issuerCert, files.issuerKey].map(exists));
    if (present.every((p) => !p)) {
      await ensureDir(dir);
      const pems = await MeshCa.generatePems(trustDomain, opts);
      await writeFileAtomic(files.issuerKey, pems.issuerKeyPem, 0o600);
      await writeFileAtomic(files.issuerCert, pems.issuerCertPem, 0o644);
      await writeFileAtomic(files.trustAnchor, pems.trustAnchorPem, 0o644);
      return { ca: await MeshCa.load(files, opts), created: true };
    }
    if (!present.every((p) => p)) {
      const missing = Object.values(CA_FILE_NAMES).filter((_, i) => !present[i]);
      throw new IdentityFileError(
        'ca directory',
        dir,
        `is incomplete (missing ${missing.join(', ')}); remove the directory to create a new trust anchor`,
      );
    }
    await requirePrivateMode('issuer key', files.issuerKey);
    return { ca: await MeshCa.load(files, opts), created: false };
  }

  /** Creates a new trust anchor and issuer in memory (tests; or to write elsewhere). */
  static async create(opts: CreateCaOptions = {}): Promise<MeshCa> {
    const trustDomain = checkTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    const pems = await MeshCa.generatePems(trustDomain, opts);
    return MeshCa.fromPems(pems, opts);
  }

  /** The PEMs of a new trust anchor, issuer certificate and issuer key (the root key is dropped). */
  static async generatePems(
    trustDomain: string,
    opts: CreateCaOptions = {},
  ): Promise<{ trustAnchorPem: string; issuerCertPem: string; issuerKeyPem: string }> {
    const now = (opts.now ?? (() => new Date()))();
    const notBefore = new Date(now.getTime() - 60_000);
    const rootKeys = await webcrypto.subtle.generateKey(P256, false, ['sign', 'verify']);
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=outrigger trust anchor, O=${trustDomain}`,
      notBefore,
      notAfter: new Date(now.getTime() + (opts.trustAnchorLifetimeSeconds ?? 10 * YEAR_S) * 1000),
      keys: rootKeys,
      signingAlgorithm: P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey),
      ],
    });
    const issuerKeys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
    const issuerNotAfter = Math.min(
      now.getTime() + (opts.issuerLifetimeSeconds ?? YEAR_S) * 1000,
      root.notAfter.getTime(),
    );
    const issuer = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: `CN=outrigger issuer, O=${trustDomain}`,
      issuer: root.subject,
      notBefore,
      notAfter: new Date(issuerNotAfter),
      publicKey: issuerKeys.publicKey,
      signingKey: rootKeys.privateKey,
      signingAlgorithm: P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(issuerKeys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(root),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', issuerKeys.privateKey));
    return {
      trustAnchorPem: root.toString('pem') + '\n',
      issuerCertPem: issuer.toString('pem') + '\n',
      issuerKeyPem: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
        type: 'pkcs8',
        format: 'pem',
      }) as string,
    };
  }

  /** Loads user-supplied (or generated) files; every problem names its file. */
  static async load(files: CaFiles, opts: CaOptions = {}): Promise<MeshCa> {
    const [anchorText, issuerText, keyText] = await Promise.all([
      readText('trust anchor', files.trustAnchor),
      readText('issuer certificate', files.issuerCert),
      readText('issuer key', files.issuerKey),
    ]);
    return MeshCa.fromPems(
      { trustAnchorPem: anchorText, issuerCertPem: issuerText, issuerKeyPem: keyText },
      opts,
      files,
    );
  }

  /** Checks and loads PEM text; `files` only names the sources in errors. */
  static async fromPems(
    pems: { trustAnchorPem: string; issuerCertPem: string; issuerKeyPem: string },
    opts: CaOptions = {},
    files: CaFiles = { trustAnchor: '(trust anchor)', issuerCert: '(issuer certificate)', issuerKey: '(issuer key)' },
  ): Promise<MeshCa> {
    const trustDomain = checkTrustDomain(opts.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    const now = (opts.now ?? (() => new Date()))();

    const anchor = parseOneCert('trust anchor', files.trustAnchor, pems.trustAnchorPem);
    checkCa('trust anchor', files.trustAnchor, anchor, now);
    if (!anchor.node.checkIssued(anchor.node) || !anchor.node.verify(anchor.node.publicKey)) {
      throw new IdentityFileError(
        'trust anchor',
        files.trustAnchor,
        `is not self-signed (issuer "${anchor.node.issuer}"); supply the root certificate`,
      );
    }

    const issuer = parseOneCert('issuer certificate', files.issuerCert, pems.issuerCertPem);
    checkCa('issuer certificate', files.issuerCert, issuer, now);
    if (!issuer.node.checkIssued(anchor.node) || !issuer.node.verify(anchor.node.publicKey)) {
      throw new IdentityFileError(
        'issuer certificate',
        files.issuerCert,
        `is not signed by the trust anchor ${files.trustAnchor} (issuer "${issuer.node.issuer}", anchor "${anchor.node.subject}")`,
      );
    }

    const keyBlocks = pemBlocks(pems.issuerKeyPem, '(?:EC |ENCRYPTED )?PRIVATE KEY');
    if (keyBlocks.length !== 1) {
      throw new IdentityFileError(
        'issuer key',
        files.issuerKey,
        'is not a PEM private key (expected one "-----BEGIN PRIVATE KEY-----" or "EC PRIVATE KEY" block)',
      );
    }
    if ((keyBlocks[0] as string).includes('ENCRYPTED')) {
      throw new IdentityFileError(
        'issuer key',
        files.issuerKey,
        'is encrypted; supply it unencrypted (protect it with file permissions)',
      );
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(keyBlocks[0] as string);
    } catch (err) {
      // The cause is dropped on purpose: OpenSSL's message may quote bytes of the key.
      void err;
      throw new IdentityFileError('issuer key', files.issuerKey, 'holds a PEM block that is not a valid private key');
    }
    const alg = ecAlgorithm('issuer key', files.issuerKey, key);
    if (!issuer.node.checkPrivateKey(key)) {
      throw new IdentityFileError(
        'issuer key',
        files.issuerKey,
        `does not match the issuer certificate ${files.issuerCert}`,
      );
    }
    const der = key.export({ type: 'pkcs8', format: 'der' });
    const signingKey = await webcrypto.subtle.importKey(
      'pkcs8',
      der,
      { name: alg.name, namedCurve: alg.namedCurve },
      false,
      ['sign'],
    );
    return new MeshCa(trustDomain, anchor.cert.toString('pem') + '\n', issuer.cert, signingKey, alg.hash);
  }

  /** Signs a workload leaf: not a CA, digitalSignature, serverAuth + clientAuth, the identity as the only
   *  (critical) URI SAN and an empty subject (RFC 5280 section 4.2.1.6; SPIFFE X509-SVID). */
  async signLeaf(p: LeafParams): Promise<SignedLeaf> {
    const notAfter = new Date(Math.min(p.notAfter.getTime(), this.issuerNotAfter.getTime()));
    const serial = randomSerial();
    const publicKey = p.publicKey instanceof x509.PublicKey ? await p.publicKey.export() : p.publicKey;
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: '',
      issuer: this.#issuer.subject,
      notBefore: p.notBefore,
      notAfter,
      publicKey,
      signingKey: this.#signingKey,
      signingAlgorithm: this.#signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: p.identity }], true),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.#issuer),
      ],
    });
    return { pem: cert.toString('pem') + '\n', serial, notBefore: cert.notBefore, notAfter: cert.notAfter };
  }
}
