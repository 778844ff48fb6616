// ServiceAccount tokens: the local runtime issues them (ES256 JWTs shaped like Kubernetes' bound
// ServiceAccount tokens), and the identity service checks them through the TokenReviewer interface, so
// that Kubernetes' TokenReview API can be a second implementation. The runtime's signing key lives 0600
// in the state directory, created on first start and loaded later.
import { createPrivateKey, createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import { IdentityCodes, IdentityError, IdentityFileError, type TokenProblem } from './errors.js';
import { ensureDir, exists, readText, requirePrivateMode, writeFileAtomic } from './files.js';
import { P256 } from './x509.js';
import { IDENTITY_TOKEN_AUDIENCE, LOCAL_TOKEN_ISSUER } from '../../manifests/contract.js';

export const TOKEN_KEY_FILE = 'token-signing.key';
/** Longest token we look at (bytes); a real one is under 2 KiB. */
export const MAX_TOKEN_BYTES = 16 * 1024;

export interface PodRef {
  readonly name: string;
  readonly uid: string;
}

/** Who a token is for: what a successful review returns. */
export interface TokenSubject {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: PodRef;
}

/** Checks a ServiceAccount token; throws an IdentityError (UNAUTHENTICATED, with `tokenProblem`) when it
 *  is not good now. Any other error is a failure of the reviewer itself. */
export interface TokenReviewer {
  review(token: string): Promise<TokenSubject>;
}

/** Whether the pod `namespace/name` with this uid exists now (a deleted and recreated pod has a new uid). */
export type PodExists = (namespace: string, pod: PodRef) => boolean | Promise<boolean>;

export interface TokenSettings {
  /** `iss` of the tokens; default `outrigger.io/local-runtime`. */
  readonly issuer?: string;
  /** `aud` the identity service accepts; default `identity.outrigger.io`. */
  readonly audience?: string;
}

/** The private claim Kubernetes puts in bound ServiceAccount tokens. */
interface KubernetesClaim {
  namespace?: unknown;
  pod?: { name?: unknown; uid?: unknown };
  serviceaccount?: { name?: unknown };
}

export function serviceAccountSubject(namespace: string, serviceAccount: string): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
}

function unauthenticated(problem: TokenProblem, message: string): IdentityError {
  return new IdentityError(IdentityCodes.UNAUTHENTICATED, `token: ${message}`, { tokenProblem: problem });
}

/** The runtime's token signer: holds the ES256 key and issues pod-bound tokens. */
export class LocalTokenIssuer {
  readonly issuer: string;
  readonly audience: string;
  readonly publicKey: KeyObject;
  readonly #privateKey: KeyObject;

  private constructor(privateKey: KeyObject, settings: TokenSettings) {
    this.#privateKey = privateKey;
    this.publicKey = createPublicKey(privateKey);
    this.issuer = settings.issuer ?? LOCAL_TOKEN_ISSUER;
    this.audience = settings.audience ?? IDENTITY_TOKEN_AUDIENCE;
  }

  /** Loads the signing key from `dir/token-signing.key`, or creates it (0600) when it is absent. */
  static async openDir(
    dir: string,
    settings: TokenSettings = {},
  ): Promise<{ issuer: LocalTokenIssuer; created: boolean }> {
    const file = path.join(dir, TOKEN_KEY_FILE);
    if (!(await exists(file))) {
      await ensureDir(dir);
      const key = await generateKey();
      await writeFileAtomic(file, key.export({ type: 'pkcs8', format: 'pem' }) as string, 0o600);
      return { issuer: new LocalTokenIssuer(key, settings), created: true };
    }
    await requirePrivateMode('token signing key', file);
    const text = await readText('token signing key', file);
    let key: KeyObject;
    try {
      key = createPrivateKey(text);
    } catch {
      throw new IdentityFileError('token signing key', file, 'is not a PEM private key');
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new IdentityFileError('token signing key', file, 'is not an ECDSA P-256 key (needed for ES256)');
    }
    return { issuer: new LocalTokenIssuer(key, settings), created: false };
  }

  /** A signer with a new key held in memory only (tests). */
  static async create(settings: TokenSettings = {}): Promise<LocalTokenIssuer> {
    return new LocalTokenIssuer(await generateKey(), settings);
  }

  /** Issues a token for a pod; `lifetimeSeconds` default 1 hour (the kubelet's default for projected
   *  tokens). `audience` and `now` are for tests. */
  issue(
    subject: TokenSubject,
    opts: { lifetimeSeconds?: number; audience?: string; now?: Date } = {},
  ): Promise<string> {
    const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
    const claim = {
      namespace: subject.namespace,
      pod: { name: subject.pod.name, uid: subject.pod.uid },
      serviceaccount: { name: subject.serviceAccount },
    };
    return new SignJWT({ 'kubernetes.io': claim })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(opts.audience ?? this.audience)
      .setSubject(serviceAccountSubject(subject.namespace, subject.serviceAccount))
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + (opts.lifetimeSeconds ?? 3600))
      .sign(this.#privateKey);
  }

  /** A reviewer for the tokens this signer issues. */
  reviewer(podExists: PodExists, opts: { clockToleranceSeconds?: number } = {}): LocalTokenReviewer {
    return new LocalTokenReviewer({
      publicKey: this.publicKey,
      issuer: this.issuer,
      audience: this.audience,
      podExists,
      ...opts,
    });
  }
}

async function generateKey(): Promise<KeyObject> {
  const pair = await webcrypto.subtle.generateKey(P256, true, ['sign', 'verify']);
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

export interface LocalTokenReviewerOptions {
  readonly publicKey: KeyObject;
  readonly issuer: string;
  readonly audience: string;
  readonly podExists: PodExists;
  /** Allowed clock difference for exp/nbf (seconds); default 5. */
  readonly clockToleranceSeconds?: number;
}

/** Reviews tokens of the local runtime: signature, issuer, audience, expiry, and that the pod exists. */
export class LocalTokenReviewer implements TokenReviewer {
  readonly #opts: LocalTokenReviewerOptions;

  constructor(opts: LocalTokenReviewerOptions) {
    this.#opts = opts;
  }

  async review(token: string): Promise<TokenSubject> {
    token = token.trim();
    if (token === '') throw unauthenticated('missing', 'no token given');
    if (token.length > MAX_TOKEN_BYTES) throw unauthenticated('malformed', `is longer than ${MAX_TOKEN_BYTES} bytes`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.#opts.publicKey, {
        algorithms: ['ES256'],
        issuer: this.#opts.issuer,
        audience: this.#opts.audience,
        clockTolerance: this.#opts.clockToleranceSeconds ?? 5,
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (err) {
      throw this.#joseError(err);
    }
    const k8s = payload['kubernetes.io'] as KubernetesClaim | undefined;
    const namespace = k8s?.namespace;
    const sa = k8s?.serviceaccount?.name;
    const podName = k8s?.pod?.name;
    const podUid = k8s?.pod?.uid;
    if (
      typeof namespace !== 'string' ||
      typeof sa !== 'string' ||
      typeof podName !== 'string' ||
      typeof podUid !== 'string'
    ) {
      throw unauthenticated(
        'missing-claims',
        'is not bound to a pod (kubernetes.io namespace, serviceaccount and pod claims are required)',
      );
    }
    if (payload.sub !== serviceAccountSubject(namespace, sa)) {
      throw unauthenticated('missing-claims', `subject does not match its service account ${namespace}/${sa}`);
    }
    const pod = { name: podName, uid: podUid };
    if (!(await this.#opts.podExists(namespace, pod))) {
      throw unauthenticated(
        'pod-not-found',
        `is bound to pod ${namespace}/${podName} (uid ${podUid}), which does not exist now`,
      );
    }
    return { namespace, serviceAccount: sa, pod };
  }

  #joseError(err: unknown): Error {
    const e = err as { code?: string; claim?: string; payload?: JWTPayload };
    switch (e.code) {
      case 'ERR_JWT_EXPIRED': {
        const exp = typeof e.payload?.exp === 'number' ? ` at ${new Date(e.payload.exp * 1000).toISOString()}` : '';
        return unauthenticated('expired', `expired${exp}`);
      }
      case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
        if (e.claim === 'aud') return unauthenticated('wrong-audience', `is not for audience "${this.#opts.audience}"`);
        if (e.claim === 'iss') return unauthenticated('wrong-issuer', `is not issued by "${this.#opts.issuer}"`);
        if (e.claim === 'nbf' || e.claim === 'iat')
          return unauthenticated('not-yet-valid', 'is not valid yet (check the clocks)');
        return unauthenticated('missing-claims', `claim "${e.claim ?? '?'}" is missing or not valid`);
      case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
        return unauthenticated('bad-signature', 'signature does not verify with the runtime token key');
      case 'ERR_JOSE_ALG_NOT_ALLOWED':
        return unauthenticated('bad-signature', 'is not signed with ES256');
      case 'ERR_JWS_INVALID':
      case 'ERR_JWT_INVALID':
      case 'ERR_JOSE_NOT_SUPPORTED':
        return unauthenticated('malformed', 'is not a well-formed JWT');
      default:
        return err instanceof Error ? err : new Error(String(err));
    }
  }
}
