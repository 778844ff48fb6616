// Typed errors of the local runtime (mesh, pod network, processes, state directory), with stable codes
// as the proxy's have: callers and tests tell cases apart by code, not by message. docs/errors.md says
// what each means and what to do.
import { OutriggerError } from '../core/errors.js';

export const RuntimeCodes = {
  /** A network setting cannot be used: a CIDR, bridge name, address or hosts entry that is malformed,
   *  too small, outside its range or taken. */
  NET_CONFIG: 'OUTR_ERR_NET_CONFIG',
  /** A command that builds the network (ip, iptables, ...) failed or timed out. */
  NET_COMMAND: 'OUTR_ERR_NET_COMMAND',
  /** Taking the network down left something behind (namespace, link, rule, process). */
  NET_TEARDOWN: 'OUTR_ERR_NET_TEARDOWN',
  /** A pod's network cannot be made or found: the pod already has one, or there is none by that name. */
  POD_NETWORK: 'OUTR_ERR_RUNTIME_POD_NETWORK',
  /** The Services' rules (virtual IP to endpoints) could not be written into some pods. */
  SERVICE_RULES: 'OUTR_ERR_RUNTIME_SERVICE_RULES',
  /** A record in the state directory is missing, unreadable or damaged (resume.json, net.json, a pod's
   *  process record, state.json). */
  STATE_RECORD: 'OUTR_ERR_RUNTIME_STATE_RECORD',
  /** The mesh is not Ready (starting, failed or stopping), so an apply is refused. */
  NOT_READY: 'OUTR_ERR_RUNTIME_NOT_READY',
  /** The mesh was stopped while a pod was being started. */
  STOPPED: 'OUTR_ERR_RUNTIME_STOPPED',
  /** A pod did not become ready in time, ended, or its process vanished while starting. */
  POD_START: 'OUTR_ERR_RUNTIME_POD_START',
  /** A pod's processes cannot be run as given: an empty command, the proxy's reserved container name,
   *  a meshed pod without a proxy command or network namespace. */
  POD_SPEC: 'OUTR_ERR_RUNTIME_POD_SPEC',
  /** Stopping left something running: a process group that survived SIGKILL, processes left in a pod's
   *  namespace, or a part of the mesh that failed to stop. */
  STOP: 'OUTR_ERR_RUNTIME_STOP',
  /** The proxies' uid cannot reach their token files: a parent of the state directory is not
   *  searchable by others. */
  TOKEN_ACCESS: 'OUTR_ERR_RUNTIME_TOKEN_ACCESS',
  /** The proxy cannot be run as its uid: a package is missing, or Node or the project cannot be reached
   *  or staged for that uid. */
  PROXY_COMMAND: 'OUTR_ERR_RUNTIME_PROXY_COMMAND',
  /** A probe's check did not answer within its timeoutSeconds. */
  PROBE_TIMEOUT: 'OUTR_ERR_RUNTIME_PROBE_TIMEOUT',
  /** A pod's cgroup cannot be made, limited or removed (controllers missing, or cgroup v2 without a
   *  delegated group of its own). */
  CGROUP: 'OUTR_ERR_RUNTIME_CGROUP',
  /** The kernel or a tool lacks what isolates a container (mount or PID namespaces, unshare, nsenter,
   *  setpriv with capability support), or a container's isolation cannot be set up as asked (a
   *  volumeMount's path that does not exist on this machine). */
  ISOLATION: 'OUTR_ERR_RUNTIME_ISOLATION',
  /** The per-host data plane: a bad --data-plane or --nodes, a node proxy that cannot be started, or
   *  one that cannot serve a pod (its listeners cannot be opened in the pod's namespace, the node proxy
   *  refuses the pod's settings, or the pod's view is not ready in time). */
  DATA_PLANE: 'OUTR_ERR_RUNTIME_DATA_PLANE',
} as const;

export type RuntimeCode = (typeof RuntimeCodes)[keyof typeof RuntimeCodes];

export class RuntimeError extends OutriggerError {
  declare readonly code: RuntimeCode;
  constructor(code: RuntimeCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'RuntimeError';
  }
}
