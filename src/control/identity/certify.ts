// Certify: the identity service's one operation. A proxy proves who it is with its pod's ServiceAccount
// token and sends a CSR for its own key; we check that the CSR asks for exactly the identity the token
// grants and sign a short-lived leaf for it. The CA never sees a workload's private key.
import { spiffeIdFor, type SpiffeId } from '../../api/identity.js';
import type { MeshCa } from './ca.js';
import { issuanceOf, type Issuance } from './issuance.js';
import { IdentityCodes, IdentityError } from './errors.js';
import type { TokenReviewer, TokenSubject } from './tokens.js';
import { x509 } from './x509.js';

/** Largest CSR we parse (bytes of PEM); a P-256 CSR with one SAN is about 500. */
export const MAX_CSR_BYTES = 8 * 1024;
export const DEFAULT_LEAF_LIFETIME_SECONDS = 24 * 3600;
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

export interface CertifierOptions {
  /** The issuer; an Issuance when it may be replaced while the control plane runs (a trust rotation). */
  readonly ca: MeshCa | Issuance;
  readonly reviewer: TokenReviewer;
  /** Lifetime of a leaf (seconds); default 24 h. */
  readonly leafLifetimeSeconds?: number;
  /** notBefore is this far in the past so that a peer whose clock is behind accepts the leaf (seconds);
   *  default 60, capped to the lifetime. */
  readonly clockSkewSeconds?: number;
  readonly now?: () => Date;
}

export interface Certified {
  readonly identity: SpiffeId;
  readonly leafPem: string;
  /** The issuer certificate (the intermediates between leaf and anchor). */
  readonly chainPem: string;
  readonly trustAnchorPem: string;
  readonly serial: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Who the token was for. */
  readonly subject: TokenSubject;
}

function invalid(message: string, cause?: unknown): IdentityError {
  return new IdentityError(IdentityCodes.INVALID_ARGUMENT, message, cause === undefined ? undefined : { cause });
}

function describeName(n: { type: string; value: string }): string {
  return `${n.type === 'url' ? 'uri' : n.type}:${n.value}`;
}

export class Certifier {
  readonly #opts: CertifierOptions;
  readonly #issuance: Issuance;

  constructor(opts: CertifierOptions) {
    this.#opts = opts;
    this.#issuance = issuanceOf(opts.ca);
  }

  async certify(token: string, csrPem: string): Promise<Certified> {
    const subject = await this.#opts.reviewer.review(token);
    const allowed = spiffeIdFor({
      trustDomain: this.#issuance.ca.trustDomain,
      namespace: subject.namespace,
      serviceAccount: subject.serviceAccount,
    });
    const csr = await parseCsr(csrPem);
    const where = `pod ${subject.namespace}/${subject.pod.name}`;

    const sanExts = csr.extensions.filter((e) => e instanceof x509.SubjectAlternativeNameExtension);
    if (sanExts.length > 1)
      throw invalid(`${where}: csr has ${sanExts.length} subject alternative name extensions; expected one`);
    const sanExt = sanExts[0];
    const names = sanExt?.names.items.map((n) => ({ type: n.type, value: n.value })) ?? [];
    if (names.length !== 1 || names[0]?.type !== 'url') {
      const asked = names.length === 0 ? 'no subject alternative name' : names.map(describeName).join(', ');
      throw new IdentityError(
        IdentityCodes.PERMISSION_DENIED,
        `${where}: csr must ask for exactly one identity as a uri san; it asks for ${asked}; the token allows ${allowed}`,
      );
    }
    const asked = names[0].value;
    if (asked !== allowed) {
      throw new IdentityError(
        IdentityCodes.PERMISSION_DENIED,
        `${where}: csr asks for ${asked}; the token allows only ${allowed}`,
      );
    }

    const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
    if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
      const got = alg.name === 'ECDSA' ? `ECDSA ${alg.namedCurve ?? 'unknown curve'}` : (alg.name ?? 'unknown');
      throw invalid(`${where}: csr key is ${got}; only ECDSA P-256 keys are certified`);
    }

    const now = (this.#opts.now ?? (() => new Date()))().getTime();
    const lifetimeS = this.#opts.leafLifetimeSeconds ?? DEFAULT_LEAF_LIFETIME_SECONDS;
    const skewS = Math.min(this.#opts.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS, lifetimeS);
    // The issuer and the bundle of this moment, taken together (a rotation may switch them meanwhile).
    const { ca, bundlePem } = { ca: this.#issuance.ca, bundlePem: this.#issuance.bundlePem };
    const leaf = await ca.signLeaf({
      publicKey: csr.publicKey,
      identity: allowed,
      notBefore: new Date(now - skewS * 1000),
      notAfter: new Date(now + lifetimeS * 1000),
    });
    return {
      identity: allowed,
      leafPem: leaf.pem,
      chainPem: ca.issuerPem,
      trustAnchorPem: bundlePem,
      serial: leaf.serial,
      notBefore: leaf.notBefore,
      notAfter: leaf.notAfter,
      subject,
    };
  }
}

async function parseCsr(pem: string): Promise<x509.Pkcs10CertificateRequest> {
  if (pem.length > MAX_CSR_BYTES) throw invalid(`csr is larger than ${MAX_CSR_BYTES} bytes`);
  const m = /-----BEGIN CERTIFICATE REQUEST-----[\s\S]*?-----END CERTIFICATE REQUEST-----/.exec(pem);
  if (!m) throw invalid('csr is not PEM (expected a "-----BEGIN CERTIFICATE REQUEST-----" block)');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(m[0]);
  } catch (err) {
    throw invalid('csr is not a valid PKCS#10 certificate request', err);
  }
  let ok: boolean;
  try {
    ok = await csr.verify();
  } catch (err) {
    throw invalid('csr signature cannot be checked (unsupported key or signature algorithm)', err);
  }
  if (!ok) throw invalid('csr signature does not verify with its own public key');
  return csr;
}
