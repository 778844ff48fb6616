// The pods of a mesh as the reconcile sees them: what a running pod is, when a new plan changes it, and
// which pods an apply creates, replaces, removes, or rolls out one at a time per Deployment.
import { templateHash, type DeploymentObject, type PodPlan } from './manifests/index.js';
import type { PodNet } from './net/index.js';
import type { PodProcesses } from './supervisor/index.js';

export interface RunningPod {
  readonly plan: PodPlan;
  /** metadata.uid: tokens are bound to it. */
  readonly uid: string;
  /** What makes two plans of one pod name equivalent (spec, labels, mesh settings). */
  readonly fingerprint: string;
  readonly net: PodNet;
  readonly pp: PodProcesses;
  terminating: boolean;
  /** The simulated node it was placed on (per-host data plane). */
  readonly node?: string;
}

/** `namespace/name`: how the mesh keys pods and Services. */
export function podKey(p: { readonly namespace: string; readonly name: string }): string {
  return `${p.namespace}/${p.name}`;
}

/** What must stay the same for a running pod to be kept as it is. */
export function fingerprint(p: PodPlan): string {
  return JSON.stringify({ spec: p.spec, labels: p.labels, annotations: p.annotations, mesh: p.mesh });
}

/** A Deployment whose template changed: its new pods, each paired with an old-template pod to remove. */
export interface Rollout {
  readonly news: PodPlan[];
  readonly olds: RunningPod[];
}

export interface ReconcilePlan {
  /** New pods that replace nothing. */
  readonly creates: readonly PodPlan[];
  /** Bare pods whose spec changed: they keep their name, so the old one goes first. */
  readonly replaces: readonly PodPlan[];
  /** Pods no plan wants, outside any rollout. */
  readonly deletes: readonly RunningPod[];
  /** By Deployment `namespace/name`. */
  readonly rollouts: ReadonlyMap<string, Rollout>;
  readonly unchanged: number;
}

/** Compares the running pods with the plans (pure: nothing is started or stopped). */
export function planReconcile(
  running: ReadonlyMap<string, RunningPod>,
  plans: readonly PodPlan[],
  deployments: readonly DeploymentObject[],
): ReconcilePlan {
  const desired = new Map(plans.map((p) => [podKey(p), p]));
  const creates: PodPlan[] = [];
  const replaces: PodPlan[] = [];
  const deletes: RunningPod[] = [];
  let unchanged = 0;
  for (const p of plans) {
    const r = running.get(podKey(p));
    if (r === undefined) creates.push(p);
    else if (r.fingerprint !== fingerprint(p)) replaces.push(p);
    else unchanged++;
  }
  for (const [k, r] of running) if (!desired.has(k) && !r.terminating) deletes.push(r);

  // A Deployment's new pods pair with its old-template pods: each new one ready, then one old one goes.
  const rollouts = new Map<string, Rollout>();
  const rolloutOf = (ns: string, name: string): Rollout => {
    const k = `${ns}/${name}`;
    let r = rollouts.get(k);
    if (r === undefined) rollouts.set(k, (r = { news: [], olds: [] }));
    return r;
  };
  const plainCreates: PodPlan[] = [];
  for (const p of creates) {
    const o = p.owner;
    const oldTemplate = (r: RunningPod) =>
      r.plan.owner?.name === o?.name &&
      r.plan.namespace === p.namespace &&
      r.plan.owner?.templateHash !== o?.templateHash;
    if (o !== undefined && [...running.values()].some(oldTemplate)) rolloutOf(p.namespace, o.name).news.push(p);
    else plainCreates.push(p);
  }
  const plainDeletes: RunningPod[] = [];
  for (const r of deletes) {
    const o = r.plan.owner;
    const ro = o !== undefined ? rollouts.get(`${r.plan.namespace}/${o.name}`) : undefined;
    const d =
      o !== undefined
        ? deployments.find((x) => x.metadata.namespace === r.plan.namespace && x.metadata.name === o.name)
        : undefined;
    const changed = d !== undefined && o !== undefined && o.templateHash !== templateHash(d.spec.template);
    if (ro !== undefined && changed) ro.olds.push(r);
    else plainDeletes.push(r);
  }
  return { creates: plainCreates, replaces, deletes: plainDeletes, rollouts, unchanged };
}
