// The local runtime's data planes beside the sidecar: the per-host one (node proxies) and where pods go.
export {
  NodeProxies,
  nodeCgroupRel,
  removeNodeCgroups,
  type NodePod,
  type NodeProxiesOptions,
  type NodeProxyStatus,
} from './node-proxies.js';
export {
  DATA_PLANE_MODES,
  DEFAULT_NODES,
  MAX_NODES,
  SIDECAR,
  dataPlaneSettings,
  nodeName,
  nodeNames,
  placePod,
  type DataPlaneMode,
  type DataPlaneSettings,
} from './placement.js';
