// The issuer's own expiry, watched: when the issuer certificate expires, no proxy can get a certificate
// any more and the mesh stops within a leaf lifetime. The control plane exports its expiry (and the
// anchors') as metrics, and `outrigger check` (local and Kubernetes) judges it: a warning within
// ISSUER_WARN_MS, an error once expired, each saying how to rotate.
import { X509Certificate } from 'node:crypto';
import { Gauge, Registry } from 'prom-client';
import type { Issuance } from './issuance.js';
import { bundleCerts } from './issuance.js';

/** A certificate of the mesh CA that expires sooner than this is warned about (ms): 30 days. */
export const ISSUER_WARN_MS = 30 * 24 * 3600 * 1000;

export type ExpiryLevel = 'ok' | 'warning' | 'error';

export interface ExpiryVerdict {
  readonly level: ExpiryLevel;
  readonly detail: string;
  /** How to fix it, when not ok. */
  readonly hint?: string;
}

/** Judges a CA certificate's validity at `now`; `rotate` names the command that replaces it. */
export function judgeExpiry(pem: string, now: Date, rotate: string): ExpiryVerdict {
  const c = new X509Certificate(pem);
  const notAfter = new Date(c.validTo);
  const left = notAfter.getTime() - now.getTime();
  if (new Date(c.validFrom).getTime() > now.getTime())
    return {
      level: 'error',
      detail: `not valid before ${new Date(c.validFrom).toISOString()}`,
      hint: 'check the clocks',
    };
  if (left <= 0)
    return {
      level: 'error',
      detail: `expired ${notAfter.toISOString()}: no proxy can get or renew a certificate`,
      hint: rotate,
    };
  if (left < ISSUER_WARN_MS)
    return {
      level: 'warning',
      detail: `expires ${notAfter.toISOString()}, in ${Math.floor(left / 86_400_000)} days`,
      hint: rotate,
    };
  return { level: 'ok', detail: `valid until ${notAfter.toISOString()}` };
}

/** The control plane's identity metrics, read from `issuance` at each scrape (it may be switched). */
export function identityRegistry(issuance: Issuance): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'identity_issuer_expiration_timestamp_seconds',
    help: 'when the issuer certificate that signs the proxies’ certificates expires (unix seconds)',
    labelNames: ['fingerprint'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const c = new X509Certificate(issuance.ca.issuerPem);
      this.set({ fingerprint: c.fingerprint256 }, Math.floor(new Date(c.validTo).getTime() / 1000));
    },
  });
  new Gauge({
    name: 'identity_trust_anchor_expiration_timestamp_seconds',
    help: 'when each anchor of the published trust bundle expires (unix seconds)',
    labelNames: ['fingerprint'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of bundleCerts(issuance.bundlePem))
        this.set({ fingerprint: c.fingerprint256 }, Math.floor(new Date(c.validTo).getTime() / 1000));
    },
  });
  return registry;
}
