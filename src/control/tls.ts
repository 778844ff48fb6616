// The control plane's own TLS. Its certificate comes from the mesh CA for its own identity
// (spiffe://<td>/ns/<namespace>/sa/outrigger-control-plane), made at start-up with a key generated in
// memory (never written anywhere) and renewed at 70% of its lifetime. grpc-js serves it through its
// credentials watcher: a renewed certificate is set on the listening server with setSecureContext, so
// the next handshake uses it and the connections open keep theirs. TLS 1.3 only. A client certificate
// is asked for but not required at the TLS layer, since Certify is how a proxy gets its first one; which
// services need one is each service's decision (./access.ts).
import { createPrivateKey, webcrypto } from 'node:crypto';
import type { SecureContextOptions } from 'node:tls';
import grpc from '@grpc/grpc-js';
import { spiffeIdFor, type SpiffeId } from '../api/identity.js';
import type { Logger } from '../core/log.js';
import type { MeshCa } from './identity/ca.js';
import { P256 } from './identity/x509.js';
import { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT } from '../manifests/contract.js';

/** The identity the control plane serves with, and the one every proxy expects of it. */
export function controlPlaneIdentity(trustDomain: string, namespace = CONTROL_PLANE_NAMESPACE): SpiffeId {
  return spiffeIdFor({ trustDomain, namespace, serviceAccount: CONTROL_PLANE_SERVICE_ACCOUNT });
}

export const DEFAULT_CONTROL_CERT_LIFETIME_SECONDS = 24 * 3600;

export interface ServingCertificate {
  readonly identity: SpiffeId;
  readonly serial: string;
  readonly notAfter: Date;
  /** The leaf and the issuer (what the server sends). */
  readonly certChainPem: string;
  readonly trustAnchorPem: string;
}

export interface ControlPlaneTlsOptions {
  readonly ca: MeshCa;
  /** The namespace part of the identity; default `outrigger`. */
  readonly namespace?: string;
  /** Lifetime of each certificate (seconds); default 24 h (clamped to the issuer's expiry by the CA). */
  readonly lifetimeSeconds?: number;
  /** Fraction of the lifetime after which it is renewed; default 0.7. */
  readonly renewFraction?: number;
  readonly log?: Logger;
}

/** grpc-js credentials whose certificate can be replaced while the server runs (its watcher API). */
class RenewableServerCredentials extends grpc.ServerCredentials {
  constructor(context: SecureContextOptions) {
    super(
      {
        requestCert: true,
        // Checked per service (a policy call without a trusted client certificate is refused there).
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
      },
      context,
    );
  }

  renew(context: SecureContextOptions): void {
    this.updateSecureContextOptions(context);
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

export class ControlPlaneTls {
  readonly identity: SpiffeId;
  readonly trustAnchorPem: string;
  readonly credentials: grpc.ServerCredentials;
  readonly #creds: RenewableServerCredentials;
  readonly #o: ControlPlaneTlsOptions;
  #current: ServingCertificate;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #listeners = new Set<(c: ServingCertificate) => void>();

  private constructor(o: ControlPlaneTlsOptions, first: { cert: ServingCertificate; context: SecureContextOptions }) {
    this.#o = o;
    this.identity = first.cert.identity;
    this.trustAnchorPem = o.ca.trustAnchorPem;
    this.#current = first.cert;
    this.#creds = new RenewableServerCredentials(first.context);
    this.credentials = this.#creds;
  }

  /** Issues the first certificate and schedules its renewals. */
  static async start(o: ControlPlaneTlsOptions): Promise<ControlPlaneTls> {
    const identity = controlPlaneIdentity(o.ca.trustDomain, o.namespace);
    const first = await issue(o, identity);
    const t = new ControlPlaneTls(o, first);
    t.#schedule();
    o.log?.info(
      { identity, serial: first.cert.serial, notAfter: first.cert.notAfter.toISOString() },
      'control plane certificate issued',
    );
    return t;
  }

  current(): ServingCertificate {
    return this.#current;
  }

  /** Calls `fn` with every renewed certificate; returns what stops it. */
  onRenew(fn: (c: ServingCertificate) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Issues a new certificate now and serves it from the next handshake on. */
  async renew(): Promise<ServingCertificate> {
    const next = await issue(this.#o, this.identity);
    if (this.#closed) return next.cert;
    this.#current = next.cert;
    this.#creds.renew(next.context);
    this.#o.log?.info(
      { identity: this.identity, serial: next.cert.serial, notAfter: next.cert.notAfter.toISOString() },
      'control plane certificate renewed',
    );
    for (const fn of this.#listeners) fn(next.cert);
    this.#schedule();
    return next.cert;
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    const c = this.#current;
    const lifetime = c.notAfter.getTime() - Date.now();
    const delay = Math.max(1000, Math.floor(lifetime * (this.#o.renewFraction ?? 0.7)));
    this.#timer = setTimeout(() => {
      this.renew().catch((err: unknown) => {
        // The one we have serves until it expires; try again in a minute (or sooner if it expires first).
        this.#o.log?.error(
          { err: (err as Error).message, notAfter: c.notAfter.toISOString() },
          'control plane certificate: renewal failed; keeping the current one and trying again',
        );
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.#schedule(), Math.min(60_000, Math.max(1000, lifetime / 10)));
        this.#timer.unref();
      });
    }, delay);
    this.#timer.unref();
  }
}

async function issue(
  o: ControlPlaneTlsOptions,
  identity: SpiffeId,
): Promise<{ cert: ServingCertificate; context: SecureContextOptions }> {
  const keys = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const now = Date.now();
  const leaf = await o.ca.signLeaf({
    publicKey: keys.publicKey,
    identity,
    // A minute back, so that a proxy whose clock is a little behind still accepts it.
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (o.lifetimeSeconds ?? DEFAULT_CONTROL_CERT_LIFETIME_SECONDS) * 1000),
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  const certChainPem = leaf.pem + o.ca.issuerPem;
  return {
    cert: {
      identity,
      serial: leaf.serial,
      notAfter: leaf.notAfter,
      certChainPem,
      trustAnchorPem: o.ca.trustAnchorPem,
    },
    context: { key: keyPem, cert: certChainPem, ca: o.ca.trustAnchorPem },
  };
}
