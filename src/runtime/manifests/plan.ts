// From loaded manifests to the pods the runtime will run: Deployments expanded into named replicas,
// each pod's mesh settings resolved against its namespace, and which pods (and ports) a Service selects.
//
// Naming: a Deployment's pods are `<deployment>-<template hash>-<n>`, n counting from 0. The hash (10
// characters from Kubernetes' vowel-free alphabet, so it never spells a word) is of the pod template,
// as Kubernetes' `pod-template-hash` label is: changing the template (command, env, ...) renames the
// pods, so a rollout can start a new pod beside the old one; changing only `replicas` does not.
// Names are stable across runs, so `outrigger get` and logs keep pointing at the same pod.
import { createHash } from 'node:crypto';
import { meshSettings, type MeshAnnotations, type MeshSettings } from '../../manifests/annotations.js';
import { formatPath, ManifestError, type ManifestProblem } from '../../manifests/errors.js';
import { matchesMap } from '../../manifests/labels.js';
import type { Container, PodSpec } from '../../manifests/schema.js';
import type {
  DeploymentObject,
  ManifestSet,
  ResolvedServicePort,
  ServiceObject,
  Source,
} from '../../manifests/types.js';
import { internalError } from '../../core/errors.js';

/** A container whose command is known (from `command` or a known image). */
export type RunnableContainer = Container & { readonly command: readonly string[] };

/** One pod to run: a Pod document, or one replica of a Deployment. */
export interface PodPlan {
  readonly namespace: string;
  readonly name: string;
  /** What the pod's hosts file maps to its own IP: spec.hostname, or the name cut to 63 characters. */
  readonly hostname: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly owner?: {
    readonly kind: 'Deployment';
    readonly name: string;
    readonly templateHash: string;
    readonly index: number;
  };
  readonly spec: Omit<PodSpec, 'containers'> & { readonly containers: readonly RunnableContainer[] };
  readonly mesh: MeshSettings;
  readonly source: Source;
}

export const TEMPLATE_HASH_LABEL = 'pod-template-hash';

/** Every pod the manifests describe, in file order. Throws ManifestError if two pods get one name
 *  (a Pod document named like a Deployment's replica). */
export function planPods(set: ManifestSet): PodPlan[] {
  const nsMesh = new Map<string, MeshAnnotations>(set.namespaces.map((n) => [n.metadata.name, n.mesh]));
  const pods: PodPlan[] = [];
  for (const o of set.objects) {
    if (o.kind === 'Pod') {
      pods.push({
        namespace: o.metadata.namespace,
        name: o.metadata.name,
        hostname: o.spec.hostname ?? hostnameOf(o.metadata.name),
        labels: o.metadata.labels,
        annotations: o.metadata.annotations,
        spec: runnable(o.spec),
        mesh: meshSettings(o.mesh, nsMesh.get(o.metadata.namespace) ?? {}),
        source: o.source,
      });
    } else if (o.kind === 'Deployment') {
      pods.push(...deploymentPods(o, nsMesh.get(o.metadata.namespace) ?? {}));
    }
  }
  const byName = new Map<string, PodPlan>();
  const problems: ManifestProblem[] = [];
  for (const p of pods) {
    const key = `${p.namespace}/${p.name}`;
    const first = byName.get(key);
    if (first === undefined) {
      byName.set(key, p);
      continue;
    }
    const clash = p.owner === undefined ? p : first;
    const other = clash === p ? first : p;
    problems.push({
      file: clash.source.file,
      document: clash.source.document,
      kind: clash.owner === undefined ? 'Pod' : 'Deployment',
      name: clash.owner === undefined ? key : `${clash.namespace}/${clash.owner.name}`,
      path: formatPath(['metadata', 'name']),
      message: `pod name "${key}" is also the name of ${describeOrigin(other)}`,
    });
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return pods;
}

/** A Deployment's replicas, named `<deployment>-<hash>-<n>`. */
export function deploymentPods(d: DeploymentObject, namespaceMesh: MeshAnnotations): PodPlan[] {
  const tmpl = d.spec.template;
  const hash = templateHash(tmpl);
  const out: PodPlan[] = [];
  for (let i = 0; i < d.spec.replicas; i++) {
    const name = fitName(d.metadata.name, `-${hash}-${i}`);
    out.push({
      namespace: d.metadata.namespace,
      name,
      hostname: tmpl.spec.hostname ?? hostnameOf(name),
      labels: { ...tmpl.metadata.labels, [TEMPLATE_HASH_LABEL]: hash },
      annotations: tmpl.metadata.annotations,
      owner: { kind: 'Deployment', name: d.metadata.name, templateHash: hash, index: i },
      spec: runnable(tmpl.spec),
      mesh: meshSettings(d.mesh, namespaceMesh),
      source: d.source,
    });
  }
  return out;
}

/** Kubernetes' SafeEncodeString alphabet: no vowels, no look-alike characters. */
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** A stable 10-character hash of a pod template (key order does not matter). */
export function templateHash(template: unknown): string {
  const digest = createHash('sha256').update(canonicalJson(template)).digest();
  let out = '';
  for (let i = 0; i < 10; i++) out += SAFE_ALPHABET[(digest[i] ?? 0) % SAFE_ALPHABET.length];
  return out;
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The pods in the Service's namespace whose labels carry every pair of its selector. */
export function selectPods(service: ServiceObject, pods: readonly PodPlan[]): PodPlan[] {
  const selector = service.spec.selector ?? {};
  return pods.filter((p) => p.namespace === service.metadata.namespace && matchesMap(selector, p.labels));
}

/** Where a Service port's traffic goes on one pod. */
export interface ServiceTarget {
  readonly pod: PodPlan;
  readonly port: number;
}

/** For each Service port, the selected pods and the port on each. A named targetPort is looked up
 *  per pod (pods may number it differently); a pod without that name is not a target of that port,
 *  as in Kubernetes. */
export function serviceTargets(
  service: ServiceObject,
  pods: readonly PodPlan[],
): { readonly port: ResolvedServicePort; readonly targets: readonly ServiceTarget[] }[] {
  const selected = selectPods(service, pods);
  return service.spec.ports.map((sp) => {
    const targets: ServiceTarget[] = [];
    for (const pod of selected) {
      const port = typeof sp.targetPort === 'number' ? sp.targetPort : namedPort(pod, sp.targetPort, sp.protocol);
      if (port !== undefined) targets.push({ pod, port });
    }
    return { port: sp, targets };
  });
}

function namedPort(pod: PodPlan, name: string, protocol: string): number | undefined {
  for (const c of pod.spec.containers) {
    for (const p of c.ports) if (p.name === name && p.protocol === protocol) return p.containerPort;
  }
  return undefined;
}

function runnable(spec: PodSpec): PodPlan['spec'] {
  // load() has already failed on a container without a command or a known image.
  const containers = spec.containers.map((c) => {
    if (c.command === undefined) throw internalError(`container "${c.name}" has no command after loading`);
    return { ...c, command: c.command };
  });
  return { ...spec, containers };
}

/** Kubernetes' rule: a pod's hostname is its name, cut to 63 characters without a trailing '-' or '.'. */
function hostnameOf(name: string): string {
  return name.slice(0, 63).replace(/[-.]+$/, '');
}

/** Keeps `<base><suffix>` within the 253 characters of a DNS subdomain, cutting the base. */
function fitName(base: string, suffix: string): string {
  const room = 253 - suffix.length;
  return (base.length > room ? base.slice(0, room).replace(/[-.]+$/, '') : base) + suffix;
}

function describeOrigin(p: PodPlan): string {
  const where = `${p.source.file} document ${p.source.document}`;
  return p.owner === undefined
    ? `the Pod in ${where}`
    : `replica ${p.owner.index} of Deployment "${p.namespace}/${p.owner.name}" in ${where}`;
}
