// Offline validation of Kubernetes objects against the Kubernetes OpenAPI schemas, with the npm package
// kubernetes-models (its generated validators; no cluster). One model class per apiVersion and kind.
// kubernetes-models checks types, required fields, enums and formats; it does not refuse unknown
// fields, so `unknownFields` below checks the field names of what we print, by hand, where it matters.
import { Pod } from 'kubernetes-models/v1/Pod';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Secret } from 'kubernetes-models/v1/Secret';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';

type ModelClass = new (data: never) => { validate(): void };

const MODELS: Record<string, ModelClass> = {
  'v1/Pod': Pod as unknown as ModelClass,
  'v1/Namespace': Namespace as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'apps/v1/StatefulSet': StatefulSet as unknown as ModelClass,
  'apps/v1/DaemonSet': DaemonSet as unknown as ModelClass,
  'batch/v1/Job': Job as unknown as ModelClass,
  'batch/v1/CronJob': CronJob as unknown as ModelClass,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole as unknown as ModelClass,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding as unknown as ModelClass,
  'rbac.authorization.k8s.io/v1/Role': Role as unknown as ModelClass,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': MutatingWebhookConfiguration as unknown as ModelClass,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition as unknown as ModelClass,
};

/** Throws with the object's kind and name when it does not validate (or its kind is not known here). */
export function validateK8s(o: unknown): void {
  const obj = o as { apiVersion?: string; kind?: string; metadata?: { name?: string } };
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  const name = `${obj.apiVersion}/${obj.kind} ${obj.metadata?.name ?? '?'}`;
  if (Model === undefined) throw new Error(`${name}: no model to validate it with`);
  try {
    new Model(structuredClone(o) as never).validate();
  } catch (err) {
    throw new Error(`${name}: ${(err as Error).message}`, { cause: err });
  }
}

/** Field names a container may have (core/v1 Container), to catch a misspelt field that
 *  kubernetes-models would let through. */
const CONTAINER_FIELDS = new Set([
  'name',
  'image',
  'command',
  'args',
  'workingDir',
  'ports',
  'envFrom',
  'env',
  'resources',
  'resizePolicy',
  'restartPolicy',
  'volumeMounts',
  'volumeDevices',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
  'lifecycle',
  'terminationMessagePath',
  'terminationMessagePolicy',
  'imagePullPolicy',
  'securityContext',
  'stdin',
  'stdinOnce',
  'tty',
]);
const SECURITY_CONTEXT_FIELDS = new Set([
  'capabilities',
  'privileged',
  'seLinuxOptions',
  'windowsOptions',
  'runAsUser',
  'runAsGroup',
  'runAsNonRoot',
  'readOnlyRootFilesystem',
  'allowPrivilegeEscalation',
  'procMount',
  'seccompProfile',
  'appArmorProfile',
]);

export function unknownContainerFields(containers: readonly Record<string, unknown>[]): string[] {
  const out: string[] = [];
  for (const c of containers) {
    for (const k of Object.keys(c)) if (!CONTAINER_FIELDS.has(k)) out.push(`${String(c.name)}.${k}`);
    for (const k of Object.keys((c.securityContext as Record<string, unknown> | undefined) ?? {}))
      if (!SECURITY_CONTEXT_FIELDS.has(k)) out.push(`${String(c.name)}.securityContext.${k}`);
  }
  return out;
}
