// Which Server covers which port of a pod: label selectors and named container ports. Shared by the
// policy service (authorizations per port) and the destination service (a Server that declares a port
// opaque makes clients treat it as opaque too).
import { matchesSelector } from '../../manifests/labels.js';
import type { PodEntry, PolicyEntries, ServerEntry } from '../store/store.js';

/** The container port a Server names on this pod, or undefined when the pod has no port of that name. */
export function serverPort(server: ServerEntry, pod: PodEntry): number | undefined {
  if (typeof server.port === 'number') return server.port;
  return pod.ports?.find((p) => p.name === server.port)?.containerPort;
}

/** The Servers covering each port of `pod` (the first by name when several claim one port). */
export function podServers(policy: PolicyEntries, pod: PodEntry): Map<number, ServerEntry> {
  const out = new Map<number, ServerEntry>();
  for (const s of policy.servers) {
    if (s.namespace !== pod.namespace || !matchesSelector(s.podSelector, pod.labels)) continue;
    const port = serverPort(s, pod);
    if (port !== undefined && !out.has(port)) out.set(port, s);
  }
  return out;
}
