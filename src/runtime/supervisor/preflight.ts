// Before a mesh is made: can this machine isolate containers? Tried for real, as the kernel check of
// net/preflight.ts is: a throwaway container (a new mount and PID namespace, a read-only tmpfs, a
// capability bounding set and no_new_privs, as a non-root uid) runs `true`; and the cgroup controllers
// the pods' limits need are found.
import { spawnSync } from 'node:child_process';
import { cgroupRoots } from './cgroups.js';
import { setprivArgs } from './isolation.js';

/** The tools the isolation runs, and the package that has each. */
const TOOLS: readonly (readonly [string, string, string])[] = [
  ['unshare', '--version', 'util-linux'],
  ['nsenter', '--version', 'util-linux'],
  ['setpriv', '--version', 'util-linux'],
  ['mount', '--version', 'util-linux (mount)'],
  ['env', '--version', 'coreutils'],
];

/** What this machine lacks to isolate containers and bound them with cgroups, one line each. */
export async function isolationProblems(): Promise<string[]> {
  const problems: string[] = [];
  for (const [cmd, flag, pkg] of TOOLS) {
    if (spawnSync(cmd, [flag], { stdio: 'ignore' }).error !== undefined)
      problems.push(`missing ${cmd} (package ${pkg})`);
  }
  if (problems.length > 0) return problems;
  const env = spawnSync('env', ['--default-signal=INT', 'true'], { encoding: 'utf8' });
  if (env.status !== 0) problems.push('env --default-signal: coreutils 8.31 or newer is needed');
  const probe = spawnSync(
    'unshare',
    [
      ...['--mount', '--pid', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private', '--'],
      ...['/bin/sh', '-c', 'mount -t tmpfs -o ro,size=4k outrigger-preflight /tmp && exec "$@"', 'preflight'],
      ...['setpriv', ...setprivArgs({ uid: 65534, gid: 65534, capabilities: ['NET_BIND_SERVICE'] }), '--', 'true'],
    ],
    { encoding: 'utf8', timeout: 10_000 },
  );
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || `exit ${probe.status ?? probe.signal}`).trim().split('\n')[0];
    problems.push(`mount and PID namespaces, capability bounding sets and no_new_privs (unshare, setpriv): ${why}`);
  }
  const roots = await cgroupRoots();
  if ('problem' in roots) problems.push(roots.problem);
  return problems;
}
