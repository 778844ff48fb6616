// Names of everything the pod network creates, all derived from the bridge name so that cleanup can
// find a mesh's objects (and only that mesh's) even without a record.
//
//   bridge     <bridge>                      e.g. outr0 (configurable; [a-z][a-z0-9]*, at most 15)
//   namespace  outr-<bridge>-<ns>.<pod>      e.g. outr-outr0-default.web-0 (a namespace name has no '.')
//   host veth  vo<10 hex of sha256(netns)>   12 characters: Linux allows 15 (IFNAMSIZ 16 with the NUL)
//   pod side   eth0                          inside the pod's namespace, so it never collides
//   chain      OUTR-FWD-<bridge>             in the host's filter table; iptables allows 28 characters
import { createHash } from 'node:crypto';
import { NetConfigError } from './cidr.js';

export const NETNS_PREFIX = 'outr-';
export const VETH_PREFIX = 'vo';
export const POD_INTERFACE = 'eth0';
/** Linux's limit on interface names (IFNAMSIZ minus the terminating NUL). */
export const MAX_INTERFACE_NAME = 15;
export const DEFAULT_BRIDGE = 'outr0';

const BRIDGE_NAME = /^[a-z][a-z0-9]{0,14}$/;

/** Bridge names are restricted (no '-') so that `outr-<bridge>-` prefixes never overlap. */
export function checkBridgeName(name: string): void {
  if (!BRIDGE_NAME.test(name)) {
    throw new NetConfigError(
      `bridge name must be 1 to ${MAX_INTERFACE_NAME} lowercase letters and digits, starting with a letter, got ${JSON.stringify(name)}`,
    );
  }
}

/** Every namespace of the mesh on this bridge starts with this. */
export function netnsPrefix(bridge: string): string {
  return `${NETNS_PREFIX}${bridge}-`;
}

/** Well under NAME_MAX (255): the name is also a directory under /etc/netns and /run/netns. */
const MAX_NETNS_NAME = 200;

export function netnsName(bridge: string, podNamespace: string, podName: string): string {
  const name = `${netnsPrefix(bridge)}${podNamespace}.${podName}`;
  if (name.length <= MAX_NETNS_NAME) return name;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  return `${name.slice(0, MAX_NETNS_NAME - 9)}-${hash}`;
}

/** The host end of a pod's veth pair; unique per namespace name, hence per bridge and pod. */
export function vethName(netns: string): string {
  return `${VETH_PREFIX}${createHash('sha256').update(netns).digest('hex').slice(0, 10)}`;
}

/** The host filter-table chain that keeps pod traffic on the bridge (see bridge.ts). */
export function forwardChain(bridge: string): string {
  return `OUTR-FWD-${bridge}`;
}
