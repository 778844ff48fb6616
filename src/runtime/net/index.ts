// The local runtime's pod networking: a bridge, one network namespace per pod, hosts files, the
// proxy-init iptables rules, and a teardown that works from a record. The one entry point for callers.
export {
  PodNetwork,
  netnsExecArgv,
  DEFAULT_POD_CIDR,
  DEFAULT_SERVICE_CIDR,
  DEFAULT_ETC_NETNS_DIR,
  type NetworkOptions,
  type PodNet,
  type PodIdentity,
} from './network.js';
export {
  teardownNetwork,
  sweepBridge,
  removePodNetwork,
  TeardownError,
  type TeardownReport,
  type TeardownOptions,
} from './teardown.js';
export { parseNetRecord, type NetRecord, type PodNetRecord } from './record.js';
export {
  renderProxyInitRules,
  applyProxyInit,
  restoreCommand,
  DEFAULT_PROXY_INIT,
  INBOUND_CHAIN,
  OUTBOUND_CHAIN,
  type ProxyInitConfig,
  type PortRanges,
} from './proxy-init.js';
export { renderHosts, renderResolvConf, serviceHostNames, CLUSTER_DOMAIN, type HostEntry } from './hosts.js';
export {
  checkBridgeName,
  netnsName,
  netnsPrefix,
  vethName,
  forwardChain,
  DEFAULT_BRIDGE,
  NETNS_PREFIX,
  VETH_PREFIX,
  POD_INTERFACE,
} from './names.js';
export { NetConfigError, parseCidr } from './cidr.js';
export { CommandError, runCommand, type Runner } from './exec.js';
export { listLinks, listNetns, netnsPids } from './host.js';
export { renderPodRules, SERVICES_CHAIN, type ServiceRule, type PodRules } from './pod-rules.js';
export { IpPool } from './ipam.js';
export { kernelProblems } from './preflight.js';
