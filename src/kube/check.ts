// `outrigger check`: one line per check (✓ or ✗ with a hint), before installing (`--pre`: can this
// cluster and this user take Outrigger?) and after (is it running, reachable, and are its certificates
// good?). Each check is a small function over the Kubernetes API; a failed check never stops the rest
// unless it makes them meaningless (no API server).
import { X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { x509 } from '../control/identity/x509.js';
import { crdName } from './crds.js';
import { POLICY_CRDS } from './policy-crds.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';
import {
  CONTROL_PLANE,
  IDENTITY_KEYS,
  IDENTITY_SECRET,
  INJECTOR_SERVICE,
  INJECTOR_TLS_SECRET,
  KUBE_ANNOTATION,
  PROXY_CONTAINER,
  TRUST_BUNDLE_CONFIGMAP,
  TRUST_BUNDLE_KEY,
  SERVICE_ACCOUNT,
  VERSION,
  WEBHOOK_CONFIGURATION,
} from './names.js';

/** Native sidecars (restartPolicy: Always on init containers) are on by default from 1.29. */
export const MIN_KUBERNETES = { major: 1, minor: 29 };
/** A certificate that expires sooner than this is reported (ms). */
export const NEAR_EXPIRY_MS = 30 * 24 * 3600 * 1000;

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail?: string;
  readonly hint?: string;
}

export interface CheckContext {
  readonly kubeConfig: k8s.KubeConfig;
  readonly namespace: string;
  readonly now?: Date;
}

type Check = (c: CheckContext) => Promise<CheckResult | CheckResult[]>;

const ok = (name: string, detail?: string): CheckResult => ({
  name,
  ok: true,
  ...(detail !== undefined ? { detail } : {}),
});
const bad = (name: string, detail: string, hint: string): CheckResult => ({ name, ok: false, detail, hint });

function why(err: unknown): string {
  const e = err as { code?: unknown; message?: string; body?: unknown };
  const body = typeof e.body === 'string' ? e.body : '';
  const msg = /"message":"([^"]*)"/.exec(body)?.[1];
  return typeof e.code === 'number'
    ? `HTTP ${e.code}${msg !== undefined ? `: ${msg}` : ''}`
    : (e.message ?? String(err));
}
const status = (err: unknown): number | undefined => {
  const c = (err as { code?: unknown }).code;
  return typeof c === 'number' ? c : undefined;
};

const apiReachable: Check = async (c) => {
  try {
    const v = await c.kubeConfig.makeApiClient(k8s.VersionApi).getCode();
    const major = Number(v.major);
    const minor = Number.parseInt(v.minor, 10);
    const version =
      major > MIN_KUBERNETES.major || (major === MIN_KUBERNETES.major && minor >= MIN_KUBERNETES.minor)
        ? ok(`Kubernetes version ${v.gitVersion} (at least ${MIN_KUBERNETES.major}.${MIN_KUBERNETES.minor})`)
        : bad(
            `Kubernetes version ${v.gitVersion}`,
            `older than ${MIN_KUBERNETES.major}.${MIN_KUBERNETES.minor}`,
            'the injector uses native sidecars (init containers with restartPolicy: Always); upgrade the cluster',
          );
    return [ok(`API server reachable (${c.kubeConfig.getCurrentCluster()?.server ?? '?'})`), version];
  } catch (err) {
    return bad(
      'API server reachable',
      why(err),
      'check your kubeconfig context (`kubectl config current-context`) and that the cluster is up',
    );
  }
};

/** What `outrigger install` creates: the user must be allowed to. */
const INSTALL_PERMISSIONS: readonly { group: string; resource: string; namespaced: boolean }[] = [
  { group: '', resource: 'namespaces', namespaced: false },
  { group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions', namespaced: false },
  { group: 'rbac.authorization.k8s.io', resource: 'clusterroles', namespaced: false },
  { group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings', namespaced: false },
  { group: 'admissionregistration.k8s.io', resource: 'mutatingwebhookconfigurations', namespaced: false },
  { group: 'apps', resource: 'deployments', namespaced: true },
  { group: '', resource: 'secrets', namespaced: true },
  { group: '', resource: 'configmaps', namespaced: true },
  { group: '', resource: 'services', namespaced: true },
  { group: 'policy', resource: 'poddisruptionbudgets', namespaced: true },
];

const rbac: Check = async (c) => {
  const api = c.kubeConfig.makeApiClient(k8s.AuthorizationV1Api);
  const denied: string[] = [];
  try {
    for (const p of INSTALL_PERMISSIONS) {
      const r = await api.createSelfSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: {
            resourceAttributes: {
              verb: 'create',
              group: p.group,
              resource: p.resource,
              ...(p.namespaced ? { namespace: c.namespace } : {}),
            },
          },
        },
      });
      if (r.status?.allowed !== true) denied.push(`${p.resource}${p.group !== '' ? `.${p.group}` : ''}`);
    }
  } catch (err) {
    return bad(
      'RBAC: can create what install creates',
      why(err),
      'your user must be allowed to create SelfSubjectAccessReviews',
    );
  }
  return denied.length === 0
    ? ok('RBAC: can create what install creates')
    : bad(
        'RBAC: can create what install creates',
        `not allowed to create ${denied.join(', ')}`,
        'install as a cluster administrator',
      );
};

/** What the control plane's ServiceAccount must be allowed (install's ClusterRole), checked as that
 *  account with SubjectAccessReviews: a ClusterRole edited by hand, or a binding lost, shows here. */
export const CONTROL_PLANE_PERMISSIONS: readonly { verb: string; group: string; resource: string }[] = [
  ...['pods', 'services', 'namespaces', 'serviceaccounts'].flatMap((resource) =>
    ['list', 'watch'].map((verb) => ({ verb, group: '', resource })),
  ),
  ...['list', 'watch'].map((verb) => ({ verb, group: 'discovery.k8s.io', resource: 'endpointslices' })),
  { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' },
  // The trust bundle's copies in every namespace.
  ...['get', 'create', 'update'].map((verb) => ({ verb, group: '', resource: 'configmaps' })),
];

const controlPlaneRbac: Check = async (c) => {
  const api = c.kubeConfig.makeApiClient(k8s.AuthorizationV1Api);
  const user = `system:serviceaccount:${c.namespace}:${SERVICE_ACCOUNT}`;
  const denied: string[] = [];
  try {
    for (const p of CONTROL_PLANE_PERMISSIONS) {
      const r = await api.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${c.namespace}`],
            resourceAttributes: { verb: p.verb, group: p.group, resource: p.resource },
          },
        },
      });
      if (r.status?.allowed !== true) denied.push(`${p.verb} ${p.resource}${p.group !== '' ? `.${p.group}` : ''}`);
    }
  } catch (err) {
    return bad(
      'RBAC: the control plane may watch what it needs',
      why(err),
      'your user must be allowed to create SubjectAccessReviews',
    );
  }
  return denied.length === 0
    ? ok('RBAC: the control plane may watch what it needs')
    : bad(
        'RBAC: the control plane may watch what it needs',
        `${user} may not ${denied.join(', ')}`,
        '`outrigger install --control-plane | kubectl apply -f -` restores the ClusterRole and its binding',
      );
};

const crds: Check = async (c) => {
  const api = c.kubeConfig.makeApiClient(k8s.ApiextensionsV1Api);
  const missing: string[] = [];
  for (const k of POLICY_CRDS) {
    try {
      const d = await api.readCustomResourceDefinition({ name: crdName(k) });
      if (!(d.status?.conditions ?? []).some((x) => x.type === 'Established' && x.status === 'True'))
        missing.push(`${crdName(k)} (not established)`);
    } catch (err) {
      missing.push(status(err) === 404 ? crdName(k) : `${crdName(k)} (${why(err)})`);
    }
  }
  return missing.length === 0
    ? ok(`CRDs installed (${POLICY_CRDS.length})`)
    : bad('CRDs installed', `missing: ${missing.join(', ')}`, '`outrigger install --crds | kubectl apply -f -`');
};

const controlPlaneReady: Check = async (c) => {
  try {
    const d = await c.kubeConfig
      .makeApiClient(k8s.AppsV1Api)
      .readNamespacedDeployment({ name: CONTROL_PLANE, namespace: c.namespace });
    const want = d.spec?.replicas ?? 1;
    const ready = d.status?.readyReplicas ?? 0;
    if (ready >= want) return ok(`control plane ready (${ready}/${want})`);
    return bad(
      'control plane ready',
      `${ready}/${want} replicas ready`,
      `\`kubectl -n ${c.namespace} describe deploy/${CONTROL_PLANE}\` and its pods' logs`,
    );
  } catch (err) {
    return bad(
      'control plane ready',
      why(err),
      status(err) === 404 ? '`outrigger install | kubectl apply -f -`' : 'check your access to the namespace',
    );
  }
};

const webhook: Check = async (c) => {
  const results: CheckResult[] = [];
  let caBundle: string | undefined;
  try {
    const w = await c.kubeConfig
      .makeApiClient(k8s.AdmissionregistrationV1Api)
      .readMutatingWebhookConfiguration({ name: WEBHOOK_CONFIGURATION });
    caBundle = w.webhooks?.[0]?.clientConfig.caBundle;
    results.push(
      caBundle !== undefined && caBundle !== ''
        ? ok('webhook configured')
        : bad('webhook configured', 'no caBundle', 'install again'),
    );
  } catch (err) {
    return bad('webhook configured', why(err), '`outrigger install --control-plane | kubectl apply -f -`');
  }
  try {
    // Through the API server's service proxy: the same network path the API server takes to call it.
    await c.kubeConfig.makeApiClient(k8s.CoreV1Api).connectGetNamespacedServiceProxyWithPath({
      name: `https:${INJECTOR_SERVICE}:443`,
      namespace: c.namespace,
      path: 'live',
    });
    results.push(ok('webhook reachable'));
  } catch (err) {
    results.push(
      bad(
        'webhook reachable',
        why(err),
        `pods are admitted unmeshed meanwhile; \`kubectl -n ${c.namespace} get endpointslices -l kubernetes.io/service-name=${INJECTOR_SERVICE}\``,
      ),
    );
  }
  return results;
};

function certCheck(name: string, pem: string | undefined, now: Date, issuer?: string): CheckResult {
  if (pem === undefined) return bad(name, 'missing from its Secret', 'install again, or put your certificate back');
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(pem);
  } catch {
    return bad(name, 'not a PEM certificate', 'install again with good files');
  }
  const left = cert.notAfter.getTime() - now.getTime();
  if (cert.notBefore.getTime() > now.getTime())
    return bad(name, `not valid before ${cert.notBefore.toISOString()}`, 'check the clocks');
  if (left <= 0)
    return bad(name, `expired ${cert.notAfter.toISOString()}`, 'rotate it (see the README, Kubernetes: certificates)');
  if (left < NEAR_EXPIRY_MS)
    return bad(
      name,
      `expires ${cert.notAfter.toISOString()}, in ${Math.floor(left / 86_400_000)} days`,
      'rotate it soon',
    );
  if (issuer !== undefined && cert.issuer !== new x509.X509Certificate(issuer).subject)
    return bad(name, 'not issued by the trust anchor', 'the issuer and trust anchor Secrets do not belong together');
  return ok(name, `valid until ${cert.notAfter.toISOString()}`);
}

/** What one meshed pod's proxy trusts and holds, from its metrics (`identity_trust_anchors`,
 *  `identity_cert_issuer`, `identity_trust_bundle_generation`), or why it could not be read. */
export interface ProxyTrust {
  readonly pod: string;
  readonly anchors: readonly string[];
  readonly issuer?: string;
  readonly generation: number;
  readonly error?: string;
}

/** A proxy's trust facts from its Prometheus text. */
export function proxyTrustFromMetrics(pod: string, text: string): ProxyTrust {
  const anchors: string[] = [];
  let issuer: string | undefined;
  let generation = 0;
  for (const l of text.split('\n')) {
    const fpLabel = /fingerprint="([0-9A-F:]+)"/.exec(l)?.[1];
    if (l.startsWith('identity_trust_anchors{') && fpLabel !== undefined && / 1$/.test(l)) anchors.push(fpLabel);
    else if (l.startsWith('identity_cert_issuer{') && fpLabel !== undefined && / 1$/.test(l)) issuer = fpLabel;
    else if (l.startsWith('identity_trust_bundle_generation ')) generation = Number(l.split(' ')[1]);
  }
  return { pod, anchors, ...(issuer !== undefined ? { issuer } : {}), generation };
}

/** The command that renders a stage, for a hint. */
const stageCommand = (stage: number, namespace: string) =>
  `outrigger install trust-rotation -n ${namespace} --stage ${stage} --old-anchor OLD.crt --new-anchor NEW.crt${stage === 2 ? ' --new-issuer-cert ISSUER.crt --new-issuer-key ISSUER.key' : ''} | kubectl apply -f -`;

/**
 * Where a cluster is in a trust rotation, from the trust bundle (the ConfigMap's text: its anchors, one
 * or two, and its generation) and the issuer that signs, and how far the meshed proxies have followed
 * (when `proxies` is given): no rotation (one anchor, the issuer under it), stage 1 (two anchors, the
 * issuer under the older), stage 2 (two anchors, the issuer under the newer), stage 3 (one anchor while
 * some proxy still trusts another), or broken (the issuer under none of them). Says what to wait for and
 * what to apply next.
 */
export function trustStage(
  bundleText: string,
  issuerPem: string,
  proxies?: readonly ProxyTrust[],
  namespace = 'outrigger',
): CheckResult[] {
  const name = 'trust rotation stage';
  const blocks = bundleText.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  const generation = Number(/^# outrigger-trust-generation: (\d{1,15})\s*$/m.exec(bundleText)?.[1] ?? '0');
  let anchors: X509Certificate[];
  let issuer: X509Certificate;
  try {
    anchors = blocks.map((b) => new X509Certificate(b));
    issuer = new X509Certificate(issuerPem);
  } catch {
    return [
      bad(name, 'a certificate of the trust bundle or the issuer does not parse', 'install again with good files'),
    ];
  }
  if (anchors.length === 0) return [bad(name, 'the trust bundle holds no certificate', 'install again')];
  const signer = anchors.findIndex((a) => issuer.checkIssued(a) && issuer.verify(a.publicKey));
  const short = (fp: string | undefined) => (fp ?? '').slice(0, 23);
  if (signer < 0)
    return [
      bad(
        name,
        `the issuer chains to none of the ${anchors.length} trusted anchor(s): no proxy accepts its certificates`,
        `put the issuer back, or publish its anchor first (\`${stageCommand(1, namespace)}\`)`,
      ),
    ];
  if (anchors.length > 2)
    return [
      bad(name, `${anchors.length} anchors trusted`, 'a rotation needs two at most: drop the ones no issuer uses'),
    ];
  const want = anchors.map((a) => a.fingerprint256);
  const issuerFp = issuer.fingerprint256;
  const sameSet = (p: ProxyTrust) => p.anchors.length === want.length && want.every((f) => p.anchors.includes(f));
  // The newer of two is the one being rotated to.
  const newer =
    anchors.length === 2 && new Date(anchors[0]?.validFrom ?? 0) > new Date(anchors[1]?.validFrom ?? 0) ? 0 : 1;
  let stage: 0 | 1 | 2 | 3;
  let waitFor: string;
  let caughtUp: (p: ProxyTrust) => boolean;
  if (anchors.length === 2 && signer !== newer) {
    stage = 1;
    waitFor = 'every proxy trusts both anchors';
    caughtUp = (p) => p.generation >= generation && sameSet(p);
  } else if (anchors.length === 2) {
    stage = 2;
    waitFor = `every proxy holds a certificate from the new issuer (${short(issuerFp)})`;
    caughtUp = (p) => p.generation >= generation && sameSet(p) && p.issuer === issuerFp;
  } else {
    caughtUp = (p) => p.generation >= generation && sameSet(p);
    stage = (proxies ?? []).some((p) => p.error === undefined && !caughtUp(p)) ? 3 : 0;
    waitFor = `every proxy trusts only the anchor ${short(want[0])}`;
  }
  const results: CheckResult[] = [];
  const what = {
    0: `no rotation: one anchor (${short(want[0])}), the issuer under it, generation ${generation}`,
    1: `stage 1 of 3: both anchors trusted, the old issuer signs (under ${short(want[signer])}), generation ${generation}`,
    2: `stage 2 of 3: both anchors trusted, the new issuer signs (under ${short(want[signer])}), generation ${generation}`,
    3: `stage 3 of 3: the new anchor alone (${short(want[0])}), generation ${generation}`,
  }[stage];
  const next = { 1: stageCommand(2, namespace), 2: stageCommand(3, namespace), 3: undefined, 0: undefined }[stage];
  if (proxies === undefined) {
    results.push(ok(name, `${what}; wait until ${waitFor}${next !== undefined ? `, then \`${next}\`` : ''}`));
    return results;
  }
  const lagging = proxies.filter((p) => !caughtUp(p));
  const done = proxies.length - lagging.length;
  if (stage === 0) results.push(ok(name, what));
  else
    results.push(
      ok(
        name,
        lagging.length === 0
          ? `${what}; every proxy is there (${done}/${proxies.length})${next !== undefined ? `: next, \`${next}\`` : ': the rotation is done'}`
          : `${what}; waiting until ${waitFor} (${done}/${proxies.length})${next !== undefined ? `, then \`${next}\`` : ''}`,
      ),
    );
  const follow = 'proxies follow the trust bundle';
  results.push(
    lagging.length === 0
      ? ok(follow, `${proxies.length}/${proxies.length}`)
      : bad(
          follow,
          `${done}/${proxies.length}; not yet: ${lagging
            .slice(0, 5)
            .map(
              (p) =>
                `${p.pod} (${p.error ?? `generation ${p.generation}, ${p.anchors.length} anchor(s), issuer ${short(p.issuer) || 'none'}`})`,
            )
            .join(', ')}${lagging.length > 5 ? ', ...' : ''}`,
          `wait: the kubelet updates a mounted ConfigMap within about a minute, and a proxy reads it every second and renews at once when the issuer changed; if one stays behind, \`kubectl logs POD -c ${PROXY_CONTAINER}\`, and \`kubectl get configmap ${TRUST_BUNDLE_CONFIGMAP} -n POD_NAMESPACE\` (the control plane's copy)`,
        ),
  );
  return results;
}

const certificates: Check = async (c) => {
  const api = c.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const now = c.now ?? new Date();
  const dec = (s: k8s.V1Secret, k: string) =>
    s.data?.[k] !== undefined ? Buffer.from(s.data[k], 'base64').toString('utf8') : undefined;
  try {
    const id = await api.readNamespacedSecret({ name: IDENTITY_SECRET, namespace: c.namespace });
    const tls = await api.readNamespacedSecret({ name: INJECTOR_TLS_SECRET, namespace: c.namespace });
    const anchor = dec(id, IDENTITY_KEYS.trustAnchor);
    return [
      certCheck('trust anchor certificate', anchor, now),
      certCheck('issuer certificate', dec(id, IDENTITY_KEYS.issuerCert), now, anchor),
      certCheck('injector certificate', dec(tls, 'tls.crt'), now, dec(tls, 'ca.crt')),
    ];
  } catch (err) {
    return bad(
      'certificates',
      why(err),
      `the Secrets ${IDENTITY_SECRET} and ${INJECTOR_TLS_SECRET} in ${c.namespace} must exist (and you must be allowed to read them)`,
    );
  }
};

const proxies: Check = async (c) => {
  try {
    const pods = await c.kubeConfig.makeApiClient(k8s.CoreV1Api).listPodForAllNamespaces();
    const meshed = pods.items.filter((p) => p.metadata?.annotations?.[KUBE_ANNOTATION.injected] !== undefined);
    const old = meshed.filter((p) => p.metadata?.annotations?.[KUBE_ANNOTATION.injected] !== VERSION);
    const notRunning = meshed.filter(
      (p) => !(p.status?.initContainerStatuses ?? []).some((s) => s.name === PROXY_CONTAINER && s.ready === true),
    );
    const results = [
      old.length === 0
        ? ok(`proxies at version ${VERSION} (${meshed.length} meshed pods)`)
        : bad(
            "proxies' versions",
            `${old.length} of ${meshed.length} meshed pods run another version: ${old
              .slice(0, 5)
              .map(
                (p) =>
                  `${p.metadata?.namespace}/${p.metadata?.name} (${p.metadata?.annotations?.[KUBE_ANNOTATION.injected]})`,
              )
              .join(', ')}`,
            'restart them (`kubectl rollout restart deploy/NAME`) to get the new proxy',
          ),
    ];
    if (notRunning.length > 0)
      results.push(
        bad(
          'proxies ready',
          `${notRunning.length} meshed pods' proxies are not ready: ${notRunning
            .slice(0, 5)
            .map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`)
            .join(', ')}`,
          '`kubectl logs POD -c outrigger-proxy`',
        ),
      );
    return results;
  } catch (err) {
    return bad("proxies' versions", why(err), 'you must be allowed to list pods');
  }
};

/** The meshed pods whose proxy is ready (their metrics can be read). */
async function meshedPods(c: CheckContext): Promise<k8s.V1Pod[]> {
  const pods = await c.kubeConfig.makeApiClient(k8s.CoreV1Api).listPodForAllNamespaces();
  return pods.items.filter(
    (p) =>
      p.metadata?.annotations?.[KUBE_ANNOTATION.injected] !== undefined &&
      (p.status?.initContainerStatuses ?? []).some((s) => s.name === PROXY_CONTAINER && s.ready === true),
  );
}

/** The trust rotation's stage, and how far the proxies have followed it: each ready proxy's metrics,
 *  read through the API server's pod proxy (the admin port answers /metrics to anyone). */
const trust: Check = async (c) => {
  const api = c.kubeConfig.makeApiClient(k8s.CoreV1Api);
  const dec = (s: k8s.V1Secret, k: string) =>
    s.data?.[k] !== undefined ? Buffer.from(s.data[k], 'base64').toString('utf8') : undefined;
  let bundle: string | undefined;
  let issuer: string | undefined;
  try {
    const id = await api.readNamespacedSecret({ name: IDENTITY_SECRET, namespace: c.namespace });
    issuer = dec(id, IDENTITY_KEYS.issuerCert);
    try {
      const cm = await api.readNamespacedConfigMap({ name: TRUST_BUNDLE_CONFIGMAP, namespace: c.namespace });
      bundle = cm.data?.[TRUST_BUNDLE_KEY];
    } catch (err) {
      if (status(err) !== 404) throw err;
    }
    if (bundle === undefined)
      return bad(
        'trust bundle',
        `the ConfigMap ${TRUST_BUNDLE_CONFIGMAP} (key ${TRUST_BUNDLE_KEY}) is missing in ${c.namespace}`,
        'an install from before the bundle: `outrigger install --control-plane` with your CA files, then `kubectl apply -f -`; proxies injected before it have their anchor inline and follow no rotation until their pods are recreated',
      );
  } catch (err) {
    return bad(
      'trust rotation stage',
      why(err),
      `the Secret ${IDENTITY_SECRET} and the ConfigMap ${TRUST_BUNDLE_CONFIGMAP} must be readable`,
    );
  }
  if (issuer === undefined)
    return bad('trust rotation stage', 'the issuer certificate is missing from its Secret', 'install again');
  let proxies: ProxyTrust[] | undefined;
  try {
    const pods = await meshedPods(c);
    proxies = [];
    // A few at a time: one request each through the API server.
    for (let i = 0; i < pods.length; i += 8)
      proxies.push(
        ...(await Promise.all(
          pods.slice(i, i + 8).map(async (p) => {
            const ns = p.metadata?.namespace ?? '';
            const name = p.metadata?.name ?? '';
            try {
              const text = await api.connectGetNamespacedPodProxyWithPath({
                name: `${name}:${PROXY_ADMIN_PORT}`,
                namespace: ns,
                path: 'metrics',
              });
              return proxyTrustFromMetrics(`${ns}/${name}`, String(text));
            } catch (err) {
              return { pod: `${ns}/${name}`, anchors: [], generation: 0, error: `metrics: ${why(err)}` };
            }
          }),
        )),
      );
  } catch {
    proxies = undefined; // listing pods is the proxies check's to report
  }
  return trustStage(bundle, issuer, proxies, c.namespace);
};

const namespaceFree: Check = async (c) => {
  try {
    await c.kubeConfig.makeApiClient(k8s.CoreV1Api).readNamespace({ name: c.namespace });
    return bad(
      `namespace ${c.namespace} is free`,
      'it exists already',
      'Outrigger may be installed; run `outrigger check` (without --pre), or choose another --namespace',
    );
  } catch (err) {
    return status(err) === 404
      ? ok(`namespace ${c.namespace} is free`)
      : bad(`namespace ${c.namespace} is free`, why(err), 'check your access');
  }
};

export const PRE_CHECKS: readonly Check[] = [apiReachable, rbac, namespaceFree];
export const POST_CHECKS: readonly Check[] = [
  apiReachable,
  controlPlaneRbac,
  crds,
  controlPlaneReady,
  webhook,
  certificates,
  proxies,
  trust,
];

/** Runs the checks in order; stops after a failed API check (nothing else can work). */
export async function runChecks(
  c: CheckContext,
  pre: boolean,
  onResult: (r: CheckResult) => void = () => {},
): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const [i, check] of (pre ? PRE_CHECKS : POST_CHECKS).entries()) {
    const r = await check(c);
    for (const x of Array.isArray(r) ? r : [r]) {
      out.push(x);
      onResult(x);
    }
    if (i === 0 && out.some((x) => !x.ok && x.name.startsWith('API server'))) break;
  }
  return out;
}

export function formatResult(r: CheckResult): string {
  if (r.ok) return `✓ ${r.name}${r.detail !== undefined ? ` (${r.detail})` : ''}`;
  return `✗ ${r.name}: ${r.detail ?? 'failed'}\n    hint: ${r.hint ?? ''}`;
}
