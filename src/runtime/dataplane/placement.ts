// The per-host data plane's settings and where a pod goes: which simulated node, as a scheduler would
// place it (spec.nodeName when it names one of the mesh's nodes, else spread evenly).
import { createHash } from 'node:crypto';
import { RuntimeCodes, RuntimeError } from '../errors.js';

export const DATA_PLANE_MODES = ['sidecar', 'per-host'] as const;
export type DataPlaneMode = (typeof DATA_PLANE_MODES)[number];
export const DEFAULT_NODES = 2;
export const MAX_NODES = 64;

/** The data plane a mesh runs: one proxy per pod, or one per simulated node. */
export interface DataPlaneSettings {
  readonly mode: DataPlaneMode;
  /** Simulated nodes (per-host only; node-1..node-N). */
  readonly nodes: number;
}

export const SIDECAR: DataPlaneSettings = { mode: 'sidecar', nodes: DEFAULT_NODES };

/** Checks `--data-plane` and `--nodes` as the user gave them; throws naming what is wrong. */
export function dataPlaneSettings(mode: string | undefined, nodes: string | number | undefined): DataPlaneSettings {
  const problems: string[] = [];
  const m = mode ?? 'sidecar';
  if (!(DATA_PLANE_MODES as readonly string[]).includes(m))
    problems.push(`--data-plane must be ${DATA_PLANE_MODES.join(' or ')}, got "${m}"`);
  const n = nodes === undefined ? DEFAULT_NODES : Number(nodes);
  if (!Number.isInteger(n) || n < 1 || n > MAX_NODES)
    problems.push(`--nodes must be a whole number from 1 to ${MAX_NODES}, got "${String(nodes)}"`);
  if (nodes !== undefined && m !== 'per-host') problems.push('--nodes applies to --data-plane per-host only');
  if (problems.length > 0) throw new RuntimeError(RuntimeCodes.DATA_PLANE, problems.join('; '));
  return { mode: m as DataPlaneMode, nodes: n };
}

export function nodeName(i: number): string {
  return `node-${i}`;
}

/** The nodes' names, node-1 first. */
export function nodeNames(nodes: number): string[] {
  return Array.from({ length: nodes }, (_, i) => nodeName(i + 1));
}

/**
 * The node of a new pod: `spec.nodeName` when it is one of node-1..node-N; otherwise the node with
 * the fewest pods now (`load`), ties broken by a hash of the pod's namespace and name, so that the
 * same pods on the same nodes always place a pod alike, and a Deployment's replicas spread.
 */
export function placePod(
  pod: { readonly namespace: string; readonly name: string; readonly nodeName?: string | undefined },
  nodes: number,
  load: ReadonlyMap<string, number>,
): string {
  const names = nodeNames(nodes);
  if (pod.nodeName !== undefined && names.includes(pod.nodeName)) return pod.nodeName;
  const h = createHash('sha256').update(`${pod.namespace}/${pod.name}`).digest().readUInt32BE(0);
  const least = Math.min(...names.map((n) => load.get(n) ?? 0));
  const candidates = names.filter((n) => (load.get(n) ?? 0) === least);
  return candidates[h % candidates.length] as string;
}
