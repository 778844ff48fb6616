// The identity service's token check on Kubernetes: the API server reviews the projected
// ServiceAccount token (TokenReview, with our audience, so a token minted for anything else is refused),
// and then the pod it is bound to must exist now with the same uid (the store's pod cache), so a token
// that outlives its pod is worth nothing. The second implementation of TokenReviewer (tokens.ts).
import * as k8s from '@kubernetes/client-node';
import { IdentityCodes, IdentityError, type TokenProblem } from './errors.js';
import { MAX_TOKEN_BYTES, type PodExists, type TokenReviewer, type TokenSubject } from './tokens.js';

const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';
const SA_PREFIX = 'system:serviceaccount:';

export interface KubernetesTokenReviewerOptions {
  readonly kubeConfig: k8s.KubeConfig;
  /** The audience the injector's projected token carries. */
  readonly audience: string;
  readonly podExists: PodExists;
}

function unauthenticated(problem: TokenProblem, message: string): IdentityError {
  return new IdentityError(IdentityCodes.UNAUTHENTICATED, `token: ${message}`, { tokenProblem: problem });
}

export class KubernetesTokenReviewer implements TokenReviewer {
  readonly #api: k8s.AuthenticationV1Api;
  readonly #o: KubernetesTokenReviewerOptions;

  constructor(o: KubernetesTokenReviewerOptions) {
    this.#o = o;
    this.#api = o.kubeConfig.makeApiClient(k8s.AuthenticationV1Api);
  }

  async review(token: string): Promise<TokenSubject> {
    token = token.trim();
    if (token === '') throw unauthenticated('missing', 'no token given');
    if (token.length > MAX_TOKEN_BYTES) throw unauthenticated('malformed', `is longer than ${MAX_TOKEN_BYTES} bytes`);
    let review: k8s.V1TokenReview;
    try {
      review = await this.#api.createTokenReview({
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [this.#o.audience] },
        },
      });
    } catch (err) {
      // Not the token's fault: the API server is unreachable or refuses us (RBAC). Never echo the token.
      const code = (err as { code?: unknown }).code;
      throw new Error(
        `token review: the API server did not answer${typeof code === 'number' ? ` (HTTP ${code})` : ''}`,
        { cause: err },
      );
    }
    const status = review.status;
    if (status?.authenticated !== true) {
      const why = status?.error ?? '';
      if (/expired/i.test(why)) throw unauthenticated('expired', 'expired (TokenReview)');
      if (/audience/i.test(why)) throw unauthenticated('wrong-audience', `is not for audience "${this.#o.audience}"`);
      throw unauthenticated('bad-signature', 'the API server did not authenticate it (TokenReview)');
    }
    if (status.audiences !== undefined && !status.audiences.includes(this.#o.audience)) {
      throw unauthenticated('wrong-audience', `is not for audience "${this.#o.audience}"`);
    }
    const username = status.user?.username ?? '';
    if (!username.startsWith(SA_PREFIX)) throw unauthenticated('missing-claims', 'is not a ServiceAccount token');
    const [namespace, serviceAccount] = username.slice(SA_PREFIX.length).split(':');
    const podName = status.user?.extra?.[POD_NAME]?.[0];
    const podUid = status.user?.extra?.[POD_UID]?.[0];
    if (namespace === undefined || serviceAccount === undefined || podName === undefined || podUid === undefined) {
      throw unauthenticated('missing-claims', 'is not bound to a pod (use the projected token the injector mounts)');
    }
    const pod = { name: podName, uid: podUid };
    if (!(await this.#o.podExists(namespace, pod))) {
      throw unauthenticated(
        'pod-not-found',
        `is bound to pod ${namespace}/${podName} (uid ${podUid}), which does not exist now`,
      );
    }
    return { namespace, serviceAccount, pod };
  }
}
