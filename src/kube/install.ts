// `outrigger install`: every object a cluster needs, in the order `kubectl apply -f -` should create
// them: the namespace, the CRDs, RBAC, the Secrets (the mesh CA, the injector's serving certificate),
// the control plane Deployment, its Services and PodDisruptionBudget, then the webhook configuration
// last (so the API server never calls a webhook whose Service does not exist yet).
import type { DefaultPolicyName } from '../api/policy.js';
import { MeshCa } from '../control/identity/ca.js';
import { ANNOTATION, CONTROL_PLANE_LABEL, IDENTITY_TOKEN_AUDIENCE } from '../manifests/contract.js';
import { makeServingTls, serviceDnsNames } from './certs.js';
import { crd } from './crds.js';
import { trustBundleConfigMap } from './trust.js';
import { formatTrustBundle } from '../proxy/identity/bundle.js';
import { POLICY_CRDS, POLICY_RESOURCES, POLICY_GROUP } from './policy-crds.js';
import {
  CONTROL_ADMIN_PORT,
  CONTROL_PLANE,
  CONTROL_SERVICE,
  DEFAULT_CLUSTER_NETWORKS,
  GRPC_PORT,
  IDENTITY_DIR,
  IDENTITY_KEYS,
  IDENTITY_SECRET,
  INJECTOR_SERVICE,
  INJECTOR_TLS_DIR,
  INJECTOR_TLS_SECRET,
  SERVICE_ACCOUNT,
  TRUST_BUNDLE_CONFIGMAP,
  TRUST_BUNDLE_DIR,
  TRUST_BUNDLE_VOLUME,
  WEBHOOK_CONFIGURATION,
  objectLabels,
  WEBHOOK_NAME,
  WEBHOOK_PATH,
  WEBHOOK_PORT,
} from './names.js';

import type { K8sObject } from './render.js';
export type { K8sObject };

/** The control plane's uid: not the proxy's (2102), so that proxy-init's exemption never covers it. */
export const CONTROL_UID = 2103;

export interface InstallOptions {
  readonly namespace: string;
  readonly trustDomain: string;
  /** Lifetime of the proxies' certificates (s). */
  readonly identityLifetimeSeconds: number;
  readonly image: string;
  readonly replicas: number;
  /** `Ignore` (default): a webhook that cannot answer never blocks pods; `Fail`: no pod starts
   *  unmeshed in an injected namespace, at the price of blocking pod creation while it is down. */
  readonly failurePolicy: 'Ignore' | 'Fail';
  /** The trust bundle's generation (the ConfigMap's `# outrigger-trust-generation` line): the control
   *  plane's copies in other namespaces never go back to a lower one. Default: the time in seconds. */
  readonly trustGeneration?: number;
  /** The mesh CA as PEM; generated when absent. */
  readonly ca?: { readonly trustAnchorPem: string; readonly issuerCertPem: string; readonly issuerKeyPem: string };
  /** The injector's serving certificate as PEM; generated when absent. */
  readonly injectorTls?: { readonly caPem: string; readonly certPem: string; readonly keyPem: string };
  /** The mesh-wide default inbound policy (the control plane's `--default-inbound-policy`, and the
   *  injected proxies' until the policy service answers). Default all-unauthenticated. */
  readonly defaultInboundPolicy?: DefaultPolicyName;
  /** The cluster's pod networks (IPv4 CIDRs), for cluster-authenticated. Default: DEFAULT_CLUSTER_NETWORKS. */
  readonly clusterNetworks?: readonly string[];
  /** Which parts: everything (default), the CRDs alone, or everything but the CRDs. */
  readonly part?: 'all' | 'crds' | 'control-plane';
}

export const INSTALL_DEFAULTS = {
  trustDomain: 'cluster.local',
  identityLifetimeSeconds: 24 * 3600,
  replicas: 2,
  failurePolicy: 'Ignore',
} as const;

const labels = objectLabels;

const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** The namespaces the webhook never sees: the system ones and the mesh's own. */
export function excludedNamespaces(ns: string): string[] {
  return ['kube-system', 'kube-node-lease', 'kube-public', ns];
}

export function crdObjects(): K8sObject[] {
  return POLICY_CRDS.map((k) => crd(k, labels('crds')) as K8sObject);
}

export function rbacObjects(o: Pick<InstallOptions, 'namespace'>): K8sObject[] {
  const read = ['get', 'list', 'watch'];
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: SERVICE_ACCOUNT, namespace: o.namespace, labels: labels('control-plane') },
      automountServiceAccountToken: true,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: CONTROL_PLANE, labels: labels('control-plane') },
      // Read-only on what the store watches, and TokenReview for the identity service. No Secrets: the
      // control plane reads its own from mounted volumes. ConfigMaps: it writes the trust bundle's
      // copy into every namespace (get, create, update; no list or watch, and it replaces only its own).
      rules: [
        { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'create', 'update'] },
        { apiGroups: [''], resources: ['pods', 'services', 'namespaces', 'serviceaccounts'], verbs: read },
        { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: read },
        { apiGroups: ['gateway.networking.k8s.io'], resources: ['httproutes', 'grpcroutes'], verbs: read },
        { apiGroups: [POLICY_GROUP], resources: [...POLICY_RESOURCES], verbs: read },
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: CONTROL_PLANE, labels: labels('control-plane') },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROL_PLANE },
      subjects: [{ kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: o.namespace }],
    },
  ];
}

function controlPlaneDeployment(o: InstallOptions): K8sObject {
  const selector = { 'app.kubernetes.io/name': 'outrigger', 'app.kubernetes.io/component': 'control-plane' };
  const probe = (path: string, extra: Record<string, number>) => ({
    httpGet: { path, port: 'admin' },
    timeoutSeconds: 1,
    ...extra,
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: CONTROL_PLANE, namespace: o.namespace, labels: labels('control-plane') },
    spec: {
      replicas: o.replicas,
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: {
          labels: { ...labels('control-plane'), ...selector, [CONTROL_PLANE_LABEL]: 'true' },
          annotations: { [ANNOTATION.inject]: 'disabled' },
        },
        spec: {
          serviceAccountName: SERVICE_ACCOUNT,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: CONTROL_UID,
            runAsGroup: CONTROL_UID,
            fsGroup: CONTROL_UID,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                {
                  weight: 100,
                  podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: selector } },
                },
              ],
            },
          },
          terminationGracePeriodSeconds: 30,
          containers: [
            {
              name: 'control-plane',
              image: o.image,
              imagePullPolicy: 'IfNotPresent',
              args: [
                'control-plane',
                '--store',
                'kubernetes',
                '--namespace',
                o.namespace,
                '--trust-domain',
                o.trustDomain,
                '--identity-lifetime',
                String(o.identityLifetimeSeconds),
                '--token-audience',
                IDENTITY_TOKEN_AUDIENCE,
                '--grpc-port',
                String(GRPC_PORT),
                '--webhook-port',
                String(WEBHOOK_PORT),
                '--admin-port',
                String(CONTROL_ADMIN_PORT),
                '--image',
                o.image,
                '--default-inbound-policy',
                o.defaultInboundPolicy ?? 'all-unauthenticated',
                '--cluster-networks',
                (o.clusterNetworks ?? DEFAULT_CLUSTER_NETWORKS).join(','),
              ],
              env: [{ name: 'OUTRIGGER_POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } }],
              ports: [
                { name: 'grpc', containerPort: GRPC_PORT, protocol: 'TCP' },
                { name: 'webhook', containerPort: WEBHOOK_PORT, protocol: 'TCP' },
                { name: 'admin', containerPort: CONTROL_ADMIN_PORT, protocol: 'TCP' },
              ],
              startupProbe: probe('/ready', { periodSeconds: 2, failureThreshold: 60 }),
              readinessProbe: probe('/ready', { periodSeconds: 5, failureThreshold: 3 }),
              livenessProbe: probe('/live', { periodSeconds: 10, failureThreshold: 3 }),
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                runAsNonRoot: true,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
              volumeMounts: [
                { name: 'identity', mountPath: IDENTITY_DIR, readOnly: true },
                { name: 'injector-tls', mountPath: INJECTOR_TLS_DIR, readOnly: true },
                { name: TRUST_BUNDLE_VOLUME, mountPath: TRUST_BUNDLE_DIR, readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'identity', secret: { secretName: IDENTITY_SECRET, defaultMode: 0o440 } },
            { name: 'injector-tls', secret: { secretName: INJECTOR_TLS_SECRET, defaultMode: 0o440 } },
            { name: TRUST_BUNDLE_VOLUME, configMap: { name: TRUST_BUNDLE_CONFIGMAP } },
          ],
        },
      },
    },
  };
}

export async function controlPlaneObjects(o: InstallOptions): Promise<K8sObject[]> {
  const ca = o.ca ?? (await MeshCa.generatePems(o.trustDomain));
  // Load it once: a bad CA given by the user stops the install here, not in the cluster.
  await MeshCa.fromPems(ca, { trustDomain: o.trustDomain });
  const tls = o.injectorTls ?? (await makeServingTls(serviceDnsNames(INJECTOR_SERVICE, o.namespace)));
  const selector = { 'app.kubernetes.io/name': 'outrigger', 'app.kubernetes.io/component': 'control-plane' };
  return [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: o.namespace,
        labels: { ...labels('control-plane'), 'pod-security.kubernetes.io/enforce': 'restricted' },
        annotations: { [ANNOTATION.inject]: 'disabled' },
      },
    },
    ...rbacObjects(o),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: IDENTITY_SECRET, namespace: o.namespace, labels: labels('identity') },
      type: 'Opaque',
      data: {
        [IDENTITY_KEYS.trustAnchor]: b64(ca.trustAnchorPem),
        [IDENTITY_KEYS.issuerCert]: b64(ca.issuerCertPem),
        [IDENTITY_KEYS.issuerKey]: b64(ca.issuerKeyPem),
      },
    },
    // The trust bundle: one anchor until a rotation (`install trust-rotation`) publishes two.
    trustBundleConfigMap(
      o.namespace,
      formatTrustBundle({
        anchorsPem: ca.trustAnchorPem,
        generation: o.trustGeneration ?? Math.floor(Date.now() / 1000),
      }),
      labels('identity'),
    ),
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: INJECTOR_TLS_SECRET, namespace: o.namespace, labels: labels('injector') },
      type: 'kubernetes.io/tls',
      data: { 'tls.crt': b64(tls.certPem), 'tls.key': b64(tls.keyPem), 'ca.crt': b64(tls.caPem) },
    },
    controlPlaneDeployment(o),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: CONTROL_SERVICE, namespace: o.namespace, labels: labels('control-plane') },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [
          { name: 'grpc', port: GRPC_PORT, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'kubernetes.io/h2c' },
        ],
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: INJECTOR_SERVICE, namespace: o.namespace, labels: labels('injector') },
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{ name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' }],
      },
    },
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: CONTROL_PLANE, namespace: o.namespace, labels: labels('control-plane') },
      spec: { ...(o.replicas > 1 ? { minAvailable: 1 } : { maxUnavailable: 1 }), selector: { matchLabels: selector } },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: WEBHOOK_CONFIGURATION, labels: labels('injector') },
      webhooks: [
        {
          name: WEBHOOK_NAME,
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: o.failurePolicy,
          matchPolicy: 'Equivalent',
          reinvocationPolicy: 'Never',
          timeoutSeconds: 10,
          clientConfig: {
            service: { name: INJECTOR_SERVICE, namespace: o.namespace, path: WEBHOOK_PATH, port: 443 },
            caBundle: b64(tls.caPem),
          },
          rules: [
            { operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' },
          ],
          // Annotations cannot be selected on: the webhook reads outrigger.io/inject itself. Never the
          // system namespaces, nor the control plane's own pods (it could not start to inject itself).
          namespaceSelector: {
            matchExpressions: [
              { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: excludedNamespaces(o.namespace) },
            ],
          },
          objectSelector: { matchExpressions: [{ key: CONTROL_PLANE_LABEL, operator: 'DoesNotExist' }] },
        },
      ],
    },
  ];
}

/** Every object, in apply order. */
export async function installObjects(o: InstallOptions): Promise<K8sObject[]> {
  const part = o.part ?? 'all';
  const crds = part === 'control-plane' ? [] : crdObjects();
  const rest = part === 'crds' ? [] : await controlPlaneObjects(o);
  // The Namespace first, then the CRDs, then the rest.
  return [...rest.slice(0, 1), ...crds, ...rest.slice(1)];
}

/** What `outrigger uninstall` prints for `kubectl delete -f -`: each object by kind and name, the
 *  webhook first (so no pod waits on a webhook being removed), the namespace last. */
export function uninstallObjects(o: { namespace: string; keepCrds?: boolean }): K8sObject[] {
  const ref = (apiVersion: string, kind: string, name: string, namespace?: string): K8sObject => ({
    apiVersion,
    kind,
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}) },
  });
  return [
    ref('admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration', WEBHOOK_CONFIGURATION),
    ref('rbac.authorization.k8s.io/v1', 'ClusterRoleBinding', CONTROL_PLANE),
    ref('rbac.authorization.k8s.io/v1', 'ClusterRole', CONTROL_PLANE),
    ...(o.keepCrds === true
      ? []
      : crdObjects().map((c) => ref('apiextensions.k8s.io/v1', 'CustomResourceDefinition', c.metadata.name))),
    ref('v1', 'Namespace', o.namespace),
  ];
}
