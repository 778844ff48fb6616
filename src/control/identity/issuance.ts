// What the control plane signs with and what it publishes as trusted, both replaceable while it runs
// (a trust rotation): the issuer (a MeshCa: issuer certificate and key under one anchor) that signs
// workload leaves and the control plane's own certificate, and the trust bundle (one or more anchors)
// that Certify answers carry and client certificates are checked against. The bundle always holds the
// current issuer's anchor.
import { X509Certificate } from 'node:crypto';
import type { MeshCa } from './ca.js';

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

export class Issuance {
  #ca: MeshCa;
  #bundlePem: string;
  readonly #listeners = new Set<() => void>();

  constructor(ca: MeshCa, bundlePem?: string) {
    this.#ca = ca;
    this.#bundlePem = bundlePem ?? ca.trustAnchorPem;
    checkHoldsAnchor(this.#bundlePem, ca);
  }

  /** The issuer that signs now. */
  get ca(): MeshCa {
    return this.#ca;
  }

  /** The anchors published as trusted (PEM, one or more). */
  get bundlePem(): string {
    return this.#bundlePem;
  }

  /** Switches issuance (and optionally the bundle); the listeners (the control plane's own certificate)
   *  are told. Throws when the bundle would not hold the issuer's anchor. */
  use(ca: MeshCa, bundlePem: string = this.#bundlePem): void {
    checkHoldsAnchor(bundlePem, ca);
    this.#ca = ca;
    this.#bundlePem = bundlePem;
    for (const fn of this.#listeners) fn();
  }

  /** Publishes another bundle with the same issuer. */
  setBundle(bundlePem: string): void {
    this.use(this.#ca, bundlePem);
  }

  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
}

/** The certificates of a PEM bundle. */
export function bundleCerts(pem: string): X509Certificate[] {
  return (pem.match(BLOCK) ?? []).map((b) => new X509Certificate(b));
}

function checkHoldsAnchor(bundlePem: string, ca: MeshCa): void {
  const anchor = new X509Certificate(ca.trustAnchorPem);
  if (!bundleCerts(bundlePem).some((c) => c.fingerprint256 === anchor.fingerprint256))
    throw new Error(`trust bundle: does not hold the issuer's anchor ${anchor.fingerprint256}`);
}

/** An Issuance for a fixed CA, or the one given. */
export function issuanceOf(x: MeshCa | Issuance): Issuance {
  return x instanceof Issuance ? x : new Issuance(x);
}
