// The Linux capabilities a container may hold, by Kubernetes' names (no `CAP_` prefix), and the set a
// container runtime gives by default: what `securityContext.capabilities` adds to and drops from.

/** Every capability of Linux 6.x, by number order. */
export const CAPABILITIES: readonly string[] = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
];

/** The default set of containerd and CRI-O less NET_RAW (which recent runtimes drop too: it allows
 *  forged packets on the pod network; a container that needs ping asks for it). No NET_ADMIN, no
 *  SYS_ADMIN, no SYS_PTRACE. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

/** The container's capability set: the default one, less `drop` (ALL drops all), plus `add` (ALL adds
 *  every one), Kubernetes' order (drop, then add). */
export function effectiveCapabilities(c: {
  readonly add?: readonly string[];
  readonly drop?: readonly string[];
}): string[] {
  const add = c.add ?? [];
  const drop = c.drop ?? [];
  let set = drop.includes('ALL') ? [] : DEFAULT_CAPABILITIES.filter((x) => !drop.includes(x));
  if (add.includes('ALL')) set = [...CAPABILITIES];
  else for (const x of add) if (!set.includes(x)) set.push(x);
  return CAPABILITIES.filter((x) => set.includes(x));
}
