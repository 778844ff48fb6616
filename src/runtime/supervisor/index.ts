// The local runtime's process side: containers started in their pod's network namespace, restarted
// with backoff, probed for readiness and stopped as whole process groups; a pod's proxy-then-apps
// start order; and finding and killing recorded processes after a crash. The one entry point.
export {
  PodProcesses,
  PodStartError,
  podPhase,
  killNetnsProcesses,
  proxyContainerSpec,
  tailFile,
  PROXY_CONTAINER,
  type PodProcessesOptions,
  type ProxyOptions,
  type PodStatus,
  type PodPhase,
  type PodEvents,
} from './pod.js';
export {
  Container,
  type ContainerSpec,
  type ContainerOptions,
  type ContainerStatus,
  type ContainerState,
  type ContainerEvents,
  type Termination,
} from './container.js';
export { Backoff, DEFAULT_BACKOFF, shouldRestart, type BackoffOptions, type ExitStatus } from './backoff.js';
export {
  resolveProbe,
  runProbe,
  ProbeLoop,
  type ProbeAction,
  type ProbeContext,
  type ProbeResult,
  type ResolvedProbe,
  type ProbeRunner,
} from './probe.js';
export {
  applyProbeResult,
  nextProbeDelay,
  probeTiming,
  INITIAL_READINESS,
  type ProbeTiming,
  type ReadinessState,
} from './probe-schedule.js';
export {
  resolveProxyCommand,
  stageProxyFiles,
  copyProxyFiles,
  productionPackages,
  PACKAGE_ROOT,
  ProxyCommandError,
  type ProxyCommand,
  type ProxyCommandOptions,
} from './proxy-command.js';
export {
  killRecordedProcesses,
  podStateDir,
  logPath,
  recordPath,
  parseProcessRecord,
  RUN_MARKER_ENV,
  type ProcessRecord,
  type KillReport,
} from './record.js';
export { baseEnv, containerEnv, expandVars, type PodFacts } from './env.js';
export { placedArgv, type RunAs, type Placement } from './launch.js';
export {
  cgroupRoots,
  cgroupRootsOf,
  Cgroup,
  removeCgroupDirs,
  removePodCgroupDirs,
  podCgroupRel,
  type CgroupRoots,
  type CgroupLimits,
} from './cgroups.js';
export {
  containerInitPid,
  enterArgv,
  isolatedArgv,
  setprivArgs,
  type Isolation,
  type Privileges,
} from './isolation.js';
export { containerLimits, proxyFlags, SERVICE_ACCOUNT_DIR, type PodDataPlane, type PodUsage } from './pod.js';
export { isolationProblems } from './preflight.js';
