// The hosts files of a mesh's pods: every Service's names (short, namespaced, cluster-qualified, as a
// pod in that namespace would resolve them) pointing at its virtual IP.
import type { ServiceObject } from './manifests/index.js';
import { serviceHostNames, type HostEntry, type PodNetwork } from './net/index.js';
import { podKey, type RunningPod } from './mesh-pods.js';

/** The hosts entries of a pod in `podNamespace`; Services without an address yet are left out. */
export function hostEntries(
  services: readonly ServiceObject[],
  addressOf: (service: string) => string | undefined,
  podNamespace: string,
): HostEntry[] {
  return services.flatMap((s) => {
    const ip = addressOf(podKey(s.metadata));
    if (ip === undefined) return [];
    return [{ ip, names: serviceHostNames(s.metadata.name, s.metadata.namespace, podNamespace) }];
  });
}

/** Writes every running pod's hosts file anew (after Services or their addresses changed). */
export async function rewriteHosts(
  net: PodNetwork,
  pods: Iterable<RunningPod>,
  services: readonly ServiceObject[],
  addressOf: (service: string) => string | undefined,
): Promise<void> {
  await Promise.all(
    [...pods].map((r) =>
      net.writePodFiles(
        r.net.netns,
        { namespace: r.plan.namespace, name: r.plan.name, hostname: r.plan.hostname },
        hostEntries(services, addressOf, r.plan.namespace),
      ),
    ),
  );
}
