// A pod's whole iptables state as one iptables-restore file: proxy-init (meshed pods) and the Service
// rules, which play kube-proxy's part inside the pod's own namespace.
//
// Why in each pod: a Service IP exists nowhere, so something must translate it before the packet
// leaves the pod. Doing it in the client's namespace keeps the connection-tracking entry there, so the
// reply (which crosses the bridge straight from the server pod) is translated back without the host
// needing br_netfilter or a masquerade that would hide the client's address. In a meshed pod the app's
// connections never reach these rules (proxy-init redirects them to the proxy first, which balances
// per request); they serve unmeshed pods, skipped outbound ports, and the proxy's own fallback.
//
// The file replaces the pod's nat and filter tables whole (atomically); connections already open keep
// their translation, so rewriting on every endpoint change disturbs nothing.
import { formatCidr, type Cidr } from './cidr.js';
import { NAT_BUILTINS, proxyInitNat, type ProxyInitConfig } from './proxy-init.js';

export const SERVICES_CHAIN = 'OUTR-SERVICES';

/** One Service port as the rules see it: the virtual address and the ready endpoints behind it. */
export interface ServiceRule {
  /** `namespace/name:port`, for the comment. */
  readonly label: string;
  readonly ip: string;
  readonly port: number;
  readonly endpoints: readonly { readonly ip: string; readonly port: number }[];
}

export interface PodRules {
  /** `namespace/name` of the pod, for the file's comment. */
  readonly pod: string;
  /** Absent for an unmeshed pod. */
  readonly proxyInit?: ProxyInitConfig;
  readonly services: readonly ServiceRule[];
  /** Connections to an address in it that no rule translated are refused at once. */
  readonly serviceCidr?: Cidr;
}

/** The iptables-restore input for a pod's nat and filter tables. */
export function renderPodRules(r: PodRules): string {
  const nat = r.proxyInit !== undefined ? proxyInitNat(r.proxyInit) : { chains: [], rules: [] };
  const dnat: string[] = [];
  const reject: string[] = [];
  for (const s of r.services) {
    const match = `-d ${s.ip}/32 -p tcp -m tcp --dport ${s.port}`;
    const comment = `-m comment --comment "${s.label.replace(/"/g, '')}"`;
    if (s.endpoints.length === 0) {
      reject.push(`-A ${SERVICES_CHAIN} ${match} ${comment} -j REJECT --reject-with tcp-reset`);
      continue;
    }
    // Uniform choice in one pass: rule i takes 1/(n-i) of what reaches it; the last takes the rest.
    s.endpoints.forEach((e, i) => {
      const left = s.endpoints.length - i;
      const chance = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(10)}` : '';
      dnat.push(`-A ${SERVICES_CHAIN} ${match} ${comment}${chance} -j DNAT --to-destination ${e.ip}:${e.port}`);
    });
  }
  if (r.serviceCidr !== undefined) {
    reject.push(
      `-A ${SERVICES_CHAIN} -d ${formatCidr(r.serviceCidr)} -p tcp -m comment --comment "no such service port" -j REJECT --reject-with tcp-reset`,
    );
  }
  const lines = [
    `# outrigger rules for pod ${r.pod}`,
    '*nat',
    ...NAT_BUILTINS,
    ...nat.chains,
    `:${SERVICES_CHAIN} - [0:0]`,
    // After proxy-init's jump: only what it let through (the proxy's own connections, skipped ports,
    // all of an unmeshed pod's) is translated here.
    ...nat.rules,
    `-A OUTPUT -p tcp -m comment --comment "outrigger: service addresses" -j ${SERVICES_CHAIN}`,
    ...dnat,
    'COMMIT',
    '*filter',
    ':INPUT ACCEPT [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    `:${SERVICES_CHAIN} - [0:0]`,
    `-A OUTPUT -p tcp -m comment --comment "outrigger: service addresses" -j ${SERVICES_CHAIN}`,
    ...reject,
    'COMMIT',
    '',
  ];
  return lines.join('\n');
}
