// The files `ip netns exec` bind-mounts over /etc for a pod: hosts (how pods resolve Services and
// their own hostname: there is no DNS server) and resolv.conf. Rendering here; writing in network.ts.
import { parseIPv4 } from './cidr.js';
import { NetConfigError } from './cidr.js';

export const CLUSTER_DOMAIN = 'cluster.local';

export interface HostEntry {
  readonly ip: string;
  readonly names: readonly string[];
}

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/** The names a Service answers to from a pod: `<svc>` only from its own namespace (glibc applies
 *  resolv.conf's search list to DNS queries, never to /etc/hosts, so every form is listed). */
export function serviceHostNames(
  service: string,
  serviceNamespace: string,
  podNamespace: string,
  domain = CLUSTER_DOMAIN,
): string[] {
  const names = [
    `${service}.${serviceNamespace}`,
    `${service}.${serviceNamespace}.svc`,
    `${service}.${serviceNamespace}.svc.${domain}`,
  ];
  return serviceNamespace === podNamespace ? [service, ...names] : names;
}

/** /etc/hosts for a pod: loopback, the pod's own hostname, then the given entries (Services). */
export function renderHosts(
  pod: { readonly namespace: string; readonly name: string; readonly hostname: string; readonly ip: string },
  entries: readonly HostEntry[],
): string {
  const lines = [
    `# Written by outrigger for pod ${pod.namespace}/${pod.name}; rewritten in place when Services change.`,
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    line({ ip: pod.ip, names: [pod.hostname] }),
    ...entries.map(line),
  ];
  return `${lines.join('\n')}\n`;
}

function line(e: HostEntry): string {
  if (parseIPv4(e.ip) === undefined) {
    throw new NetConfigError(`hosts entry: ${JSON.stringify(e.ip)} is not an IPv4 address`);
  }
  for (const n of e.names) {
    if (!HOST_NAME.test(n)) throw new NetConfigError(`hosts entry: ${JSON.stringify(n)} is not a host name`);
  }
  return `${e.ip}\t${e.names.join(' ')}`;
}

/** resolv.conf for a pod: Kubernetes' search list, and a nameserver on the pod's own loopback where
 *  nothing listens, so a name missing from /etc/hosts fails at once instead of after a DNS timeout
 *  (pods have no route off the machine). */
export function renderResolvConf(podNamespace: string, domain = CLUSTER_DOMAIN): string {
  return [
    '# Written by outrigger: names resolve from /etc/hosts; no DNS server is reachable from a pod.',
    `search ${podNamespace}.svc.${domain} svc.${domain} ${domain}`,
    'nameserver 127.0.0.1',
    '',
  ].join('\n');
}
