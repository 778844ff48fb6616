// The trust bundle in a cluster: the ConfigMap `outrigger install` renders in the install namespace (the
// anchors, PEM, with the generation line of src/proxy/identity/bundle.ts), the copies the control plane
// keeps of it in every other namespace (a pod can mount only a ConfigMap of its own namespace; the
// kubelet then updates the mounted file in place and the proxy, which polls it, follows), and the three
// stages of an anchor rotation as manifests, in the order the local `outrigger trust rotate --anchor`
// goes:
//   1 both:   the bundle = old + new anchor;                  wait: every proxy trusts both
//   2 switch: the identity Secret = the new issuer, and the bundle (same anchors) a new generation that
//             names the new issuer;                           wait: every proxy holds a new-issuer leaf
//   3 drop:   the bundle = the new anchor alone;              wait: every proxy trusts only it
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../core/log.js';
import { MeshCa } from '../control/identity/ca.js';
import { formatTrustBundle, parseTrustBundle, type TrustBundle } from '../proxy/identity/bundle.js';
import type { K8sObject } from './render.js';
import {
  IDENTITY_KEYS,
  IDENTITY_SECRET,
  TRUST_BUNDLE_CONFIGMAP,
  TRUST_BUNDLE_COPY_LABEL,
  TRUST_BUNDLE_KEY,
  objectLabels,
} from './names.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** The bundle's ConfigMap in `namespace` holding `text` (a bundle file's text). */
export function trustBundleConfigMap(namespace: string, text: string, labels: Record<string, string> = {}): K8sObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: TRUST_BUNDLE_CONFIGMAP, namespace, labels },
    data: { [TRUST_BUNDLE_KEY]: text },
  };
}

export type RotationStage = 1 | 2 | 3;

/** What each stage applies, what to wait for before the next, and the next. */
export const ROTATION_STAGES: Record<
  RotationStage,
  { readonly does: string; readonly waitFor: string; readonly next: string }
> = {
  1: {
    does: 'publishes a trust bundle of the old and the new anchor',
    waitFor: 'every proxy trusts both anchors (`outrigger check` counts them from their metrics)',
    next: 'stage 2: sign with the new issuer',
  },
  2: {
    does: 'switches the identity Secret to the new issuer and raises the bundle generation, naming the new issuer: proxies renew now',
    waitFor: 'every proxy holds a certificate from the new issuer (`outrigger check` counts them)',
    next: 'stage 3: drop the old anchor',
  },
  3: {
    does: 'publishes the new anchor alone',
    waitFor: 'every proxy trusts only the new anchor; then the rotation is done',
    next: 'nothing: the rotation is done (keep the new anchor key offline)',
  },
};

export interface RotationInput {
  /** The install namespace. */
  readonly namespace: string;
  readonly trustDomain: string;
  readonly stage: RotationStage;
  /** The anchor the mesh trusts now (PEM; the one install was given or generated). */
  readonly oldAnchorPem: string;
  /** The anchor rotated to (PEM). */
  readonly newAnchorPem: string;
  /** The issuer under the new anchor (stage 2): given, or made by `issuerFromAnchorKey`. */
  readonly newIssuer?: { readonly certPem: string; readonly keyPem: string };
  /** Stage 2 without `newIssuer`: the new anchor's key, to sign a new issuer with (the key itself is
   *  never rendered). */
  readonly newAnchorKeyPem?: string;
  /** The bundle's generation: higher than the one applied before (the control plane's copies never go
   *  back to a lower one). */
  readonly generation: number;
  /** Default: install's labels of the identity objects. */
  readonly labels?: Record<string, string>;
}

/** Why `pem` cannot be an anchor (one self-signed CA certificate), or undefined. */
function anchorProblem(pem: string): string | undefined {
  let b: TrustBundle;
  try {
    b = parseTrustBundle(pem, 'it');
  } catch (err) {
    return (err as Error).message;
  }
  if (b.anchors.length !== 1) return `holds ${b.anchors.length} certificates; give one anchor`;
  const a = b.anchors[0] as X509Certificate;
  if (!a.checkIssued(a) || !a.verify(a.publicKey)) return 'is not self-signed: give the root certificate';
  return undefined;
}

/** The objects to `kubectl apply` for one stage; throws an Error naming each bad input. */
export async function rotationStageObjects(i: RotationInput): Promise<K8sObject[]> {
  const problems: string[] = [];
  const oldProblem = anchorProblem(i.oldAnchorPem);
  if (oldProblem !== undefined) problems.push(`the old anchor: ${oldProblem}`);
  const newProblem = anchorProblem(i.newAnchorPem);
  if (newProblem !== undefined) problems.push(`the new anchor: ${newProblem}`);
  if (
    oldProblem === undefined &&
    newProblem === undefined &&
    new X509Certificate(i.oldAnchorPem).fingerprint256 === new X509Certificate(i.newAnchorPem).fingerprint256
  )
    problems.push('the old and the new anchor are the same certificate');
  if (!Number.isSafeInteger(i.generation) || i.generation < 1)
    problems.push(`the generation must be a whole number from 1, got ${i.generation}`);
  if (i.stage === 2 && i.newIssuer === undefined && i.newAnchorKeyPem === undefined)
    problems.push("stage 2 needs the new issuer (certificate and key) or the new anchor's key to sign one");
  if (problems.length > 0) throw new Error(problems.join('; '));

  const labels = i.labels ?? objectLabels('identity');
  const cm = (anchorsPem: string, issuer?: string) =>
    trustBundleConfigMap(
      i.namespace,
      formatTrustBundle({ anchorsPem, generation: i.generation, ...(issuer !== undefined ? { issuer } : {}) }),
      labels,
    );
  const both = i.oldAnchorPem.trim() + '\n' + i.newAnchorPem.trim() + '\n';
  if (i.stage === 1) return [cm(both)];
  if (i.stage === 3) return [cm(i.newAnchorPem)];

  const issuer =
    i.newIssuer !== undefined
      ? { trustAnchorPem: i.newAnchorPem, issuerCertPem: i.newIssuer.certPem, issuerKeyPem: i.newIssuer.keyPem }
      : await MeshCa.issuerUnder(i.newAnchorPem, i.newAnchorKeyPem as string, i.trustDomain);
  // Checked as the control plane will load it: signed by the new anchor, the key its own, not expired.
  await MeshCa.fromPems(
    issuer,
    { trustDomain: i.trustDomain },
    {
      trustAnchor: '(the new anchor)',
      issuerCert: '(the new issuer)',
      issuerKey: '(the new issuer key)',
    },
  );
  return [
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: IDENTITY_SECRET, namespace: i.namespace, labels },
      type: 'Opaque',
      data: {
        [IDENTITY_KEYS.trustAnchor]: b64(issuer.trustAnchorPem),
        [IDENTITY_KEYS.issuerCert]: b64(issuer.issuerCertPem),
        [IDENTITY_KEYS.issuerKey]: b64(issuer.issuerKeyPem),
      },
    },
    cm(both, new X509Certificate(issuer.issuerCertPem).fingerprint256),
  ];
}

export interface TrustCopiesOptions {
  readonly kubeConfig: k8s.KubeConfig;
  /** The install namespace (it holds the source ConfigMap: never written here). */
  readonly namespace: string;
  /** Namespaces that get no copy (the system ones). */
  readonly skip: readonly string[];
  /** Every namespace now (the store's cache). */
  readonly namespaces: () => readonly string[];
  /** The bundle text to publish now, or undefined while this replica's issuer and bundle disagree (its
   *  mounted Secret and ConfigMap are updated one after the other). */
  readonly text: () => string | undefined;
  /** How often the copies are checked (ms); default 5000. Every 60th pass reads every copy again, so
   *  that one edited or deleted by hand is put back. */
  readonly intervalMs?: number;
  /** How long a copy of a higher generation than this replica's is left alone (ms): long enough for
   *  the kubelet to bring this replica's mounted bundle up to the replica that wrote it, not so long
   *  that a copy edited by hand with a high generation stays. Default 3 minutes. */
  readonly aheadGraceMs?: number;
  readonly log: Logger;
}

const generationOf = (text: string | undefined): number =>
  Number(/^# outrigger-trust-generation: (\d{1,15})\s*$/m.exec(text ?? '')?.[1] ?? '0');

/**
 * Keeps a copy of the trust bundle in every namespace, as Istio's control plane does with its root
 * certificate: created where missing, replaced where it differs. A copy of a higher generation is left
 * alone (another replica of the control plane is ahead of this one), and so is a ConfigMap of the same
 * name without the copy label (someone else's: said once in the log).
 */
export class TrustCopies {
  readonly #o: TrustCopiesOptions;
  readonly #api: k8s.CoreV1Api;
  /** What this replica knows each namespace's copy holds. */
  readonly #known = new Map<string, string>();
  readonly #warned = new Set<string>();
  /** Since when each namespace's copy has been ahead of this replica (ms since the epoch). */
  readonly #ahead = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #passes = 0;
  /** Copies created or replaced, and writes that failed (the control plane's log says which). */
  written = 0;
  failures = 0;

  constructor(o: TrustCopiesOptions) {
    this.#o = o;
    this.#api = o.kubeConfig.makeApiClient(k8s.CoreV1Api);
  }

  start(): this {
    this.#timer = setInterval(() => void this.sync(), this.#o.intervalMs ?? 5000);
    this.#timer.unref();
    void this.sync();
    return this;
  }

  /** One pass over every namespace (a pass already running is waited for instead). */
  sync(): Promise<void> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #pass(): Promise<void> {
    const text = this.#o.text();
    if (text === undefined) return;
    if (++this.#passes % 60 === 0) this.#known.clear();
    for (const ns of this.#o.namespaces()) {
      if (ns === this.#o.namespace || this.#o.skip.includes(ns) || this.#known.get(ns) === text) continue;
      try {
        await this.#ensure(ns, text);
      } catch (err) {
        this.failures++;
        this.#o.log.warn(
          { namespace: ns, err: (err as Error).message },
          'trust bundle copy: cannot write it; trying again',
        );
      }
    }
  }

  async #ensure(ns: string, text: string): Promise<void> {
    let have: k8s.V1ConfigMap | undefined;
    try {
      have = await this.#api.readNamespacedConfigMap({ name: TRUST_BUNDLE_CONFIGMAP, namespace: ns });
    } catch (err) {
      if ((err as { code?: unknown }).code !== 404) throw err;
    }
    const body = {
      ...trustBundleConfigMap(ns, text, {
        [TRUST_BUNDLE_COPY_LABEL]: `${this.#o.namespace}.${TRUST_BUNDLE_CONFIGMAP}`,
      }),
    } as k8s.V1ConfigMap;
    if (have === undefined) {
      await this.#api.createNamespacedConfigMap({ namespace: ns, body });
      this.written++;
      this.#o.log.info({ namespace: ns, generation: generationOf(text) }, 'trust bundle copy created');
    } else if (have.metadata?.labels?.[TRUST_BUNDLE_COPY_LABEL] === undefined) {
      if (!this.#warned.has(ns))
        this.#o.log.warn(
          { namespace: ns, configMap: TRUST_BUNDLE_CONFIGMAP },
          'trust bundle copy: a ConfigMap of that name is not ours (no copy label); left alone, so meshed pods there trust what it says',
        );
      this.#warned.add(ns);
      return;
    } else {
      const theirs = have.data?.[TRUST_BUNDLE_KEY];
      if (theirs !== text && generationOf(theirs) > generationOf(text)) {
        const since = this.#ahead.get(ns) ?? Date.now();
        this.#ahead.set(ns, since);
        if (Date.now() - since < (this.#o.aheadGraceMs ?? 180_000)) return;
        this.#o.log.warn(
          { namespace: ns, generation: generationOf(theirs), ours: generationOf(text) },
          'trust bundle copy: ahead of this control plane for longer than a replica can be; replaced',
        );
      }
      this.#ahead.delete(ns);
      if (theirs !== text) {
        body.metadata = { ...body.metadata, resourceVersion: have.metadata.resourceVersion } as k8s.V1ObjectMeta;
        await this.#api.replaceNamespacedConfigMap({ name: TRUST_BUNDLE_CONFIGMAP, namespace: ns, body });
        this.written++;
        this.#o.log.info(
          { namespace: ns, generation: generationOf(text), before: generationOf(theirs) },
          'trust bundle copy replaced',
        );
      }
    }
    this.#known.set(ns, text);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#running;
  }
}
