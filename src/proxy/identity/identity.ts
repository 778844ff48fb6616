// The proxy's identity: gets a certificate for its pod's workload identity from the control plane and
// keeps it fresh. A new key is generated in memory for each certificate (never written anywhere), the
// CSR is sent with the pod's ServiceAccount token (re-read from its file each time: tokens rotate), the
// certificate is renewed at about 70% of its lifetime, and while the CA is unreachable the proxy keeps
// serving with the certificate it holds and retries with jittered exponential backoff.
import { MESH_ECDH_CURVE } from '../tls/groups.js';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { GrpcChannel, GrpcError } from '../../api/grpc/channel.js';
import type { ChannelTls } from '../../api/grpc/tls.js';
import { grpcStatusName } from '../../api/grpc/protocol.js';
import { certify, type SpiffeId } from '../../api/identity.js';
import type { Logger } from '../../core/log.js';
import { newKeyAndCsr } from './csr.js';
import { anchorOf, bundleKey, oneLine, parseTrustBundle, type TrustBundle, type TrustSource } from './bundle.js';

export interface ProxyIdentityOptions {
  /** `host:port` of the control plane's gRPC port. */
  readonly controlAddr: string;
  /** File holding the pod's ServiceAccount token; read again before every request. */
  readonly tokenPath: string;
  /** The identity to ask for: the pod's, `spiffe://<td>/ns/<ns>/sa/<sa>`. */
  readonly identity: SpiffeId;
  /** The connection to the control plane when shared with the proxy's other clients of it (left open by
   *  close()); default: its own, with `tls`. */
  readonly channel?: GrpcChannel;
  /** How to reach the control plane (its trust anchors and identity) without a shared channel. */
  readonly tls?: ChannelTls;
  /** The anchors the proxy trusts, for its peers and for the certificates it is given (--trust-anchors
   *  or the watched --trust-anchors-file). A change applies to new connections at once; a new
   *  generation, or a new set of anchors, makes the proxy renew its certificate within
   *  `renewOnTrustChangeMs`. Default: the anchors of each Certify answer (tests). */
  readonly trust?: TrustSource;
  /** The longest random delay before the renewal a trust change asks for (ms; spread so that a mesh's
   *  proxies do not all ask at once); default 2000. */
  readonly renewOnTrustChangeMs?: number;
  /** Fraction of the remaining lifetime after which to renew; default 0.7. */
  readonly renewFraction?: number;
  /** Random spread around `renewFraction` (± this fraction of the lifetime); default 0.05. */
  readonly renewJitter?: number;
  /** First retry delay after a failure (ms); default 500. Doubles up to `backoffMaxMs`. */
  readonly backoffMinMs?: number;
  /** Longest retry delay (ms); default 30000. */
  readonly backoffMaxMs?: number;
  /** Deadline of one Certify call (ms); default 10000. */
  readonly requestTimeoutMs?: number;
  readonly log?: Logger;
}

/** A certificate the proxy holds, with what node:tls needs to use it. */
export interface IdentityCert {
  readonly identity: SpiffeId;
  /** In memory only. */
  readonly keyPem: string;
  readonly leafPem: string;
  readonly chainPem: string;
  /** The trust bundle's anchors (PEM), the only CAs peers are checked against. */
  readonly trustAnchorPem: string;
  /** The bundle trusted while this certificate is used (it may change without a new certificate). */
  readonly trust: TrustBundle;
  readonly serial: string;
  readonly notAfter: Date;
  /** The certificate that signed the leaf (the first of the chain): its facts. */
  readonly issuer: { readonly subject: string; readonly fingerprint: string };
  /** The fingerprint of the anchor of the bundle the issuer chains to ('' once that anchor is dropped). */
  readonly anchorFingerprint: string;
  /** key + leaf + chain, and the bundle's anchors as the only CAs; TLS 1.3 only. */
  readonly secureContext: tls.SecureContext;
}

/** Numbers the proxy exports as metrics. */
export interface IdentityMetrics {
  /** identity_cert_expiration_timestamp_seconds: notAfter of the current certificate (0 before the first). */
  readonly certExpirationSeconds: number;
  /** identity_cert_refresh_count: certificates obtained, the first one included. */
  readonly refreshCount: number;
  /** Certify attempts that failed (CA unreachable, token refused, ...). */
  readonly refreshFailures: number;
  /** The bundle trusted now (undefined before the first certificate without a trust source). */
  readonly trust: TrustBundle | undefined;
  /** The issuer of the certificate held (undefined before the first). */
  readonly issuer: { readonly subject: string; readonly fingerprint: string } | undefined;
}

export class ProxyIdentityError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProxyIdentityError';
  }
}

/** Builds the TLS context for a certificate: TLS 1.3 only, the anchor as the only trusted CA. */
export function identitySecureContext(c: {
  keyPem: string;
  leafPem: string;
  chainPem: string;
  trustAnchorPem: string;
}): tls.SecureContext {
  return tls.createSecureContext({
    key: c.keyPem,
    cert: c.leafPem + c.chainPem,
    ca: c.trustAnchorPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    // The hybrid post-quantum group first when this runtime has it (../tls/groups.ts).
    ecdhCurve: MESH_ECDH_CURVE,
  });
}

export class ProxyIdentity {
  readonly identity: SpiffeId;
  readonly #opts: ProxyIdentityOptions;
  readonly #channel: GrpcChannel;
  #current: IdentityCert | undefined;
  #refreshCount = 0;
  #failures = 0;
  #consecutiveFailures = 0;
  /** Certificates in a row from another issuer than the trust bundle's issuer line names. */
  #staleIssuer = 0;
  #lastError: Error | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #stopTrust: () => void;
  readonly #rotateListeners = new Set<(c: IdentityCert) => void>();
  readonly #ready: Promise<IdentityCert>;
  #resolveReady!: (c: IdentityCert) => void;
  #rejectReady!: (e: Error) => void;

  private constructor(opts: ProxyIdentityOptions) {
    this.#opts = opts;
    this.identity = opts.identity;
    // One call at a time, spaced by our own backoff: every retry may try to connect again, so that a CA
    // that comes back is seen at the next retry.
    if (opts.channel === undefined && opts.tls === undefined)
      throw new ProxyIdentityError(`identity ${opts.identity}: needs the control plane's tls settings or a channel`);
    this.#channel =
      opts.channel ??
      new GrpcChannel(opts.controlAddr, { reconnectDelayMs: 0, ...(opts.tls ? { tls: opts.tls } : {}) });
    this.#ready = new Promise((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Nobody may be waiting for readiness; a close before it must not be an unhandled rejection.
    this.#ready.catch(() => undefined);
    this.#stopTrust = opts.trust?.onChange((b) => this.#onTrustChange(b)) ?? (() => undefined);
  }

  /** Starts fetching the first certificate at once. */
  static start(opts: ProxyIdentityOptions): ProxyIdentity {
    const p = new ProxyIdentity(opts);
    p.#schedule(0);
    return p;
  }

  /** Resolves with the first certificate; rejects only if closed before one was obtained. */
  whenReady(): Promise<IdentityCert> {
    return this.#ready;
  }

  /** The certificate to use for a new connection now (undefined before the first). */
  current(): IdentityCert | undefined {
    return this.#current;
  }

  /** The error of the last failed attempt, cleared by a success (for readiness diagnostics). */
  lastError(): Error | undefined {
    return this.#lastError;
  }

  get metrics(): IdentityMetrics {
    return {
      certExpirationSeconds: this.#current ? Math.floor(this.#current.notAfter.getTime() / 1000) : 0,
      refreshCount: this.#refreshCount,
      refreshFailures: this.#failures,
      trust: this.#opts.trust?.current() ?? this.#current?.trust,
      issuer: this.#current?.issuer,
    };
  }

  /** Calls `fn` with every new certificate (the first one included); returns the function that stops it. */
  onRotate(fn: (c: IdentityCert) => void): () => void {
    this.#rotateListeners.add(fn);
    return () => this.#rotateListeners.delete(fn);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#stopTrust();
      if (this.#opts.channel === undefined) this.#channel.close();
      this.#rejectReady(new ProxyIdentityError(`identity ${this.identity}: closed before a certificate was obtained`));
    }
    return Promise.resolve();
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#refresh(), ms);
    this.#timer.unref();
  }

  async #refresh(): Promise<void> {
    let cert: IdentityCert;
    const asked = this.#opts.trust?.current();
    try {
      cert = await this.#fetch();
    } catch (err) {
      if (this.#closed) return;
      this.#onFailure(err as Error);
      return;
    }
    if (this.#closed) return;
    // The bundle may have changed while the request was out: the certificate is used with the newest.
    const trust = this.#opts.trust?.current();
    if (trust !== undefined && trust !== cert.trust) cert = withTrust(cert, trust);
    const recovered = this.#consecutiveFailures;
    this.#consecutiveFailures = 0;
    this.#lastError = undefined;
    this.#current = cert;
    this.#refreshCount++;
    this.#resolveReady(cert);
    const remaining = cert.notAfter.getTime() - Date.now();
    const fraction = (this.#opts.renewFraction ?? 0.7) + (Math.random() * 2 - 1) * (this.#opts.renewJitter ?? 0.05);
    // A bundle that changed while the request was out asks for another certificate soon (it may have
    // come from the issuer being replaced).
    // The bundle names the issuer that signs now and this is not from it: the control plane that
    // answered has not loaded the new issuer yet (its replicas' mounted Secrets are updated one by one).
    // Ask again, with backoff, keeping this certificate meanwhile.
    const wanted = cert.trust.issuer;
    const stale = wanted !== undefined && wanted !== cert.issuer.fingerprint;
    this.#staleIssuer = stale ? this.#staleIssuer + 1 : 0;
    const delay = stale
      ? backoffDelay(this.#staleIssuer, this.#opts.backoffMinMs ?? 500, this.#opts.backoffMaxMs ?? 30_000)
      : trust !== asked
        ? Math.floor(Math.random() * (this.#opts.renewOnTrustChangeMs ?? 2000))
        : Math.max(0, Math.floor(remaining * fraction));
    if (stale && this.#staleIssuer === 1)
      this.#opts.log?.info(
        { identity: cert.identity, issuer: cert.issuer.fingerprint, bundleIssuer: wanted, retryInMs: delay },
        'identity certificate from another issuer than the trust bundle names: asking again',
      );
    this.#opts.log?.info(
      {
        identity: cert.identity,
        serial: cert.serial,
        notAfter: cert.notAfter.toISOString(),
        issuer: cert.issuer.fingerprint,
        renewInMs: delay,
        ...(recovered ? { afterFailures: recovered } : {}),
      },
      'identity certificate obtained',
    );
    this.#tell(cert);
    this.#schedule(delay);
  }

  #tell(cert: IdentityCert): void {
    for (const fn of this.#rotateListeners) {
      try {
        fn(cert);
      } catch (err) {
        this.#opts.log?.error({ err }, 'identity rotate listener failed');
      }
    }
  }

  /** A new bundle: new connections use it at once (the certificate held, with the new anchors), and a
   *  new generation or set of anchors asks for a new certificate soon (the issuer may have changed). */
  #onTrustChange(b: TrustBundle): void {
    if (this.#closed) return;
    const cur = this.#current;
    if (cur === undefined) return; // the first certificate is still being fetched: it will take `b`
    const next = withTrust(cur, b);
    this.#current = next;
    if (next.anchorFingerprint === '')
      this.#opts.log?.warn(
        { identity: this.identity, issuer: cur.issuer.fingerprint },
        'trust bundle no longer holds the anchor of the certificate held; renewing it',
      );
    this.#tell(next);
    if (b.generation !== cur.trust.generation || bundleKey(b) !== bundleKey(cur.trust)) {
      const delay = Math.floor(Math.random() * (this.#opts.renewOnTrustChangeMs ?? 2000));
      this.#opts.log?.info(
        { identity: this.identity, generation: b.generation, renewInMs: delay },
        'trust bundle changed: renewing the certificate',
      );
      this.#schedule(delay);
    }
  }

  #onFailure(err: Error): void {
    this.#failures++;
    this.#consecutiveFailures++;
    this.#lastError = err;
    const delay = backoffDelay(
      this.#consecutiveFailures,
      this.#opts.backoffMinMs ?? 500,
      this.#opts.backoffMaxMs ?? 30_000,
    );
    // A degraded mode logs once (then at debug until it recovers); the failure count is the metric.
    const level = this.#consecutiveFailures === 1 ? 'warn' : 'debug';
    this.#opts.log?.[level](
      {
        identity: this.identity,
        reason: err.message,
        retryInMs: delay,
        holdingCertUntil: this.#current?.notAfter.toISOString() ?? null,
      },
      'identity certificate request failed',
    );
    this.#schedule(delay);
  }

  async #fetch(): Promise<IdentityCert> {
    let token: string;
    try {
      token = (await readFile(this.#opts.tokenPath, 'utf8')).trim();
    } catch (err) {
      throw new ProxyIdentityError(
        `token file ${this.#opts.tokenPath}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    const { keyPem, csrPem } = newKeyAndCsr(this.identity);
    let res;
    try {
      res = await certify(this.#channel, { token, csr_pem: csrPem }, this.#opts.requestTimeoutMs ?? 10_000);
    } catch (err) {
      const why =
        err instanceof GrpcError ? `${grpcStatusName(err.code)}: ${err.details}` : `error: ${(err as Error).message}`;
      throw new ProxyIdentityError(`identity service ${this.#opts.controlAddr}: certify failed: ${why}`);
    }
    let trust = this.#opts.trust?.current();
    if (trust === undefined) {
      try {
        trust = parseTrustBundle(res.trust_anchor_pem, "the identity service's trust anchors");
      } catch (err) {
        throw new ProxyIdentityError(`identity service returned bad trust anchors: ${(err as Error).message}`);
      }
    }
    return checkResponse(this.identity, keyPem, res.leaf_pem, res.chain_pem, trust);
  }
}

/** The same certificate used with another bundle. */
function withTrust(c: IdentityCert, trust: TrustBundle): IdentityCert {
  const anchor = anchorOf(trust, new X509Certificate(c.chainPem));
  return {
    ...c,
    trust,
    trustAnchorPem: trust.pem,
    anchorFingerprint: anchor?.fingerprint256 ?? '',
    secureContext: identitySecureContext({ ...c, trustAnchorPem: trust.pem }),
  };
}

/** Checks that what the CA sent is for our identity and our key, and chains to an anchor we trust (a
 *  certificate from an issuer of an anchor not in the bundle yet is refused: peers would refuse it). */
function checkResponse(
  identity: SpiffeId,
  keyPem: string,
  leafPem: string,
  chainPem: string,
  trust: TrustBundle,
): IdentityCert {
  const bad = (what: string) => new ProxyIdentityError(`identity service returned ${what}`);
  let leaf: X509Certificate, issuer: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
    issuer = new X509Certificate(chainPem);
  } catch {
    throw bad('a certificate that does not parse');
  }
  if (leaf.subjectAltName !== `URI:${identity}`)
    throw bad(`a certificate for ${leaf.subjectAltName ?? 'no identity'}, not ${identity}`);
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) throw bad('a certificate for another key');
  if (!leaf.verify(issuer.publicKey)) throw bad('a leaf that its chain did not sign');
  if (anchorOf(trust, issuer) === undefined)
    throw bad(
      `a certificate from the issuer "${oneLine(issuer.subject)}" (${issuer.fingerprint256}) that chains to none of the ${trust.anchors.length} trusted anchor(s) ${trust.views.map((v) => v.fingerprint).join(', ')}`,
    );
  return identityCert({ identity, keyPem, leafPem, chainPem }, trust);
}

/** A certificate the proxy holds, with its facts and its TLS context under `trust` (no checks: see
 *  checkResponse; tests build theirs with it). */
export function identityCert(
  c: { identity: SpiffeId; keyPem: string; leafPem: string; chainPem: string },
  trust: TrustBundle,
): IdentityCert {
  const leaf = new X509Certificate(c.leafPem);
  const issuer = new X509Certificate(c.chainPem);
  return {
    ...c,
    trustAnchorPem: trust.pem,
    trust,
    serial: leaf.serialNumber,
    notAfter: new Date(leaf.validTo),
    issuer: { subject: oneLine(issuer.subject), fingerprint: issuer.fingerprint256 },
    anchorFingerprint: anchorOf(trust, issuer)?.fingerprint256 ?? '',
    secureContext: identitySecureContext({ ...c, trustAnchorPem: trust.pem }),
  };
}

/** Equal jitter: half the exponential delay for the `n`th try in a row (from 1), plus a random part of
 *  the other half (ms). */
function backoffDelay(n: number, min: number, max: number): number {
  const base = Math.min(max, min * 2 ** Math.min(n - 1, 30));
  return Math.floor(base / 2 + (Math.random() * base) / 2);
}
