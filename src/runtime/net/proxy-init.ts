// The rules a proxy-init container would install in a pod's namespace: inbound TCP to the proxy's
// inbound port, the app's outbound TCP to its outbound port, with the exemptions that prevent loops.
//
// Rendered into the pod's one iptables-restore file (pod-rules.ts, with the Service rules) and applied
// atomically: the pod's namespace holds no other rules, so its tables are replaced whole, which also
// makes applying twice harmless.
import { PROXY_INBOUND_PORT, PROXY_OUTBOUND_PORT, PROXY_OWN_PORTS, PROXY_UID } from '../../manifests/contract.js';
import { NetConfigError } from './cidr.js';
import type { Runner } from './exec.js';

/** Inclusive port ranges (structurally the manifests' PortList). */
export type PortRanges = readonly { readonly from: number; readonly to: number }[];

export interface ProxyInitConfig {
  /** The proxy's inbound listener port; inbound TCP is redirected here. */
  readonly inboundPort: number;
  /** The proxy's outbound listener port; the app's outbound TCP is redirected here. */
  readonly outboundPort: number;
  /** The uid the proxy runs as: its own connections are never redirected. */
  readonly proxyUid: number;
  /** Ports of the proxy itself (admin, tap) that peers reach directly, never redirected inbound. */
  readonly proxyPorts: readonly number[];
  /** Inbound destination ports left alone (config.outrigger.io/skip-inbound-ports). */
  readonly skipInboundPorts: PortRanges;
  /** Outbound destination ports left alone (config.outrigger.io/skip-outbound-ports). */
  readonly skipOutboundPorts: PortRanges;
}

export const DEFAULT_PROXY_INIT: ProxyInitConfig = {
  inboundPort: PROXY_INBOUND_PORT,
  outboundPort: PROXY_OUTBOUND_PORT,
  proxyUid: PROXY_UID,
  proxyPorts: PROXY_OWN_PORTS,
  skipInboundPorts: [],
  skipOutboundPorts: [],
};

export const INBOUND_CHAIN = 'OUTR-INBOUND';
export const OUTBOUND_CHAIN = 'OUTR-OUTBOUND';

/** xt_multiport matches at most 15 ports, a range counting as two. */
const MULTIPORT_SLOTS = 15;

/** `--dports` values for xt_multiport, split into as many rules as needed. */
export function multiportChunks(ranges: PortRanges): string[] {
  const chunks: string[] = [];
  let cur: string[] = [];
  let slots = 0;
  for (const r of ranges) {
    const need = r.from === r.to ? 1 : 2;
    if (slots + need > MULTIPORT_SLOTS) {
      chunks.push(cur.join(','));
      cur = [];
      slots = 0;
    }
    cur.push(r.from === r.to ? String(r.from) : `${r.from}:${r.to}`);
    slots += need;
  }
  if (cur.length > 0) chunks.push(cur.join(','));
  return chunks;
}

function checkPort(what: string, p: number): void {
  if (!Number.isInteger(p) || p < 1 || p > 65535)
    throw new NetConfigError(`proxy-init: ${what} must be an integer from 1 to 65535, got ${p}`);
}

/** The nat-table chains and rules of proxy-init, for a pod's rules file (see pod-rules.ts). */
export function proxyInitNat(cfg: ProxyInitConfig): { readonly chains: string[]; readonly rules: string[] } {
  checkPort('inboundPort', cfg.inboundPort);
  checkPort('outboundPort', cfg.outboundPort);
  for (const p of cfg.proxyPorts) checkPort('proxyPorts', p);

  for (const r of [...cfg.skipInboundPorts, ...cfg.skipOutboundPorts]) {
    checkPort('skip port', r.from);
    checkPort('skip port', r.to);
  }
  if (!Number.isInteger(cfg.proxyUid) || cfg.proxyUid < 0)
    throw new NetConfigError(`proxy-init: proxyUid must be a non-negative integer, got ${cfg.proxyUid}`);

  const inboundSkips = [...cfg.proxyPorts.map((p) => ({ from: p, to: p })), ...cfg.skipInboundPorts];
  return {
    chains: [`:${INBOUND_CHAIN} - [0:0]`, `:${OUTBOUND_CHAIN} - [0:0]`],
    rules: [
      // Inbound: everything that arrives for the pod goes to the proxy, except the proxy's own ports and
      // the skipped ones. REDIRECT keeps the original destination for SO_ORIGINAL_DST.
      `-A PREROUTING -p tcp -m comment --comment "outrigger: inbound to the proxy" -j ${INBOUND_CHAIN}`,
      ...multiportChunks(inboundSkips).map(
        (ports) => `-A ${INBOUND_CHAIN} -p tcp -m multiport --dports ${ports} -j RETURN`,
      ),
      `-A ${INBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${cfg.inboundPort}`,
      // Outbound: the app's connections go to the proxy. Not the proxy's own (it would loop), not to
      // loopback (pod-local traffic, including the proxy's port itself), not the skipped ports.
      `-A OUTPUT -p tcp -m comment --comment "outrigger: outbound to the proxy" -j ${OUTBOUND_CHAIN}`,
      `-A ${OUTBOUND_CHAIN} -m owner --uid-owner ${cfg.proxyUid} -j RETURN`,
      `-A ${OUTBOUND_CHAIN} -o lo -j RETURN`,
      ...multiportChunks(cfg.skipOutboundPorts).map(
        (ports) => `-A ${OUTBOUND_CHAIN} -p tcp -m multiport --dports ${ports} -j RETURN`,
      ),
      `-A ${OUTBOUND_CHAIN} -p tcp -j REDIRECT --to-ports ${cfg.outboundPort}`,
    ],
  };
}

/** The iptables-restore input for a pod's nat table with proxy-init alone (no Service rules). */
export function renderProxyInitRules(cfg: ProxyInitConfig, label = 'pod'): string {
  const { chains, rules } = proxyInitNat(cfg);
  return [`# outrigger proxy-init for ${label}`, '*nat', ...NAT_BUILTINS, ...chains, ...rules, 'COMMIT', ''].join('\n');
}

export const NAT_BUILTINS = [
  ':PREROUTING ACCEPT [0:0]',
  ':INPUT ACCEPT [0:0]',
  ':OUTPUT ACCEPT [0:0]',
  ':POSTROUTING ACCEPT [0:0]',
];

/** The command that loads an iptables-restore file: inside the network namespace `netns` (the local
 *  runtime, from the host), or in the current one (`outrigger proxy-init`, the Kubernetes init
 *  container, which already runs in the pod's namespace). */
export function restoreCommand(iptables: string, netns?: string): { readonly file: string; readonly args: string[] } {
  const restore = [`${iptables}-restore`, '-w'];
  return netns === undefined
    ? { file: restore[0] as string, args: restore.slice(1) }
    : { file: 'ip', args: ['netns', 'exec', netns, ...restore] };
}

/** Installs proxy-init's rules alone (no Service rules: in a cluster kube-proxy does that part),
 *  replacing the nat table whole, so that running it twice is harmless. Returns the rules written. */
export async function applyProxyInit(
  run: Runner,
  cfg: ProxyInitConfig,
  o: { readonly iptables: string; readonly netns?: string; readonly label?: string },
): Promise<string> {
  const text = renderProxyInitRules(cfg, o.label);
  const { file, args } = restoreCommand(o.iptables, o.netns);
  await run(file, args, { input: text });
  return text;
}
