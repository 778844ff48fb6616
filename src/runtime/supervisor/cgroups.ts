// A cgroup per pod and per container, as the kubelet makes them: the containers' memory and CPU
// limits and requests applied, a pids limit per pod, OOM kills counted per container, and the pod's
// CPU and memory read back for `stat` and the dashboard. cgroup v1 (one hierarchy per controller:
// memory, cpu, cpuacct, pids) and v2 (one unified hierarchy) are both handled; the pods' groups sit
// below the control process's own, in `outrigger/<pod's netns name>/<container>`.
import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RuntimeCodes, RuntimeError } from '../errors.js';

/** What a container (or pod) is given: CPU in millicores, memory in bytes; unset means unbounded. */
export interface CgroupLimits {
  readonly cpuRequest?: number;
  readonly cpuLimit?: number;
  readonly memoryLimit?: number;
}

/** Per pod: a backstop against a fork bomb, so that a failure stays in its pod (kubelet's podPidsLimit). */
export const POD_PIDS_MAX = 4096;
/** The CFS period the CPU limit is a share of (the kubelet's default). */
const CFS_PERIOD_US = 100_000;

const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids'] as const;
type V1Controller = (typeof V1_CONTROLLERS)[number];

/** Where the pods' groups go: per controller (v1) or once (v2), the directory `outrigger/` is made in. */
export type CgroupRoots =
  | { readonly version: 1; readonly base: Readonly<Record<V1Controller, string>> }
  | { readonly version: 2; readonly base: string };

/** Parses /proc/self/mountinfo and /proc/self/cgroup into the directories of this process's own
 *  groups: per v1 controller, its mount point joined with the process's path in that hierarchy (less
 *  the mount's root, when only a subtree is mounted); for v2, the unified mount's. Undefined when a
 *  v1 controller we need is not mounted and there is no v2 hierarchy with them either. */
export function cgroupRootsOf(mountinfo: string, selfCgroup: string): CgroupRoots | { problem: string } {
  const mounts = mountinfo
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [pre, post] = l.split(' - ');
      const f = (pre ?? '').split(' ');
      const g = (post ?? '').split(' ');
      return { root: unescape(f[3] ?? ''), point: unescape(f[4] ?? ''), fstype: g[0] ?? '', superOpts: g[2] ?? '' };
    });
  const paths = new Map<string, string>();
  let unified: string | undefined;
  for (const line of selfCgroup.split('\n')) {
    const m = /^[0-9]+:([^:]*):(.*)$/.exec(line);
    if (m === null) continue;
    if (m[1] === '') unified = m[2];
    else for (const c of (m[1] ?? '').split(',')) paths.set(c, m[2] ?? '/');
  }
  const v1 = {} as Record<V1Controller, string>;
  const missing: string[] = [];
  for (const c of V1_CONTROLLERS) {
    const mount = mounts.find((m) => m.fstype === 'cgroup' && m.superOpts.split(',').includes(c));
    const own = paths.get(c);
    if (mount === undefined || own === undefined) {
      missing.push(c);
      continue;
    }
    v1[c] = trimSlash(join(mount.point, relativeTo(own, mount.root)));
  }
  if (missing.length === 0) return { version: 1, base: v1 };
  const v2 = mounts.find((m) => m.fstype === 'cgroup2');
  if (missing.length === V1_CONTROLLERS.length && v2 !== undefined && unified !== undefined) {
    return { version: 2, base: trimSlash(join(v2.point, relativeTo(unified, v2.root))) };
  }
  return {
    problem:
      `cgroup controllers not available: ${missing.join(', ')} (needed: cgroup v1 memory, cpu, cpuacct ` +
      `and pids hierarchies, or cgroup v2 with memory, cpu and pids)`,
  };
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

function relativeTo(path: string, root: string): string {
  if (root === '/' || root === '') return path;
  return path === root ? '/' : path.startsWith(`${root}/`) ? path.slice(root.length) : path;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The cgroups of this machine as seen by this process (read once). */
export async function cgroupRoots(): Promise<CgroupRoots | { problem: string }> {
  try {
    return cgroupRootsOf(await readFile('/proc/self/mountinfo', 'utf8'), await readFile('/proc/self/cgroup', 'utf8'));
  } catch (err) {
    return { problem: `cannot read this process's cgroups: ${(err as Error).message}` };
  }
}

/** cpu.shares (v1) from a request in millicores, as the kubelet computes it (min 2). */
export function cpuShares(millis: number): number {
  return Math.max(2, Math.floor((millis * 1024) / 1000));
}

/** cpu.weight (v2) from cpu.shares, by the kubelet's and runc's mapping. */
export function cpuWeight(shares: number): number {
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

/** The CFS quota (µs per period) of a limit in millicores; the kernel's minimum is 1000. */
export function cfsQuota(millis: number): number {
  return Math.max(1000, Math.floor((millis * CFS_PERIOD_US) / 1000));
}

/** A set of directories, one per hierarchy (v1) or one (v2), that together are one group. */
export class Cgroup {
  constructor(
    readonly roots: CgroupRoots,
    /** Relative to each base: `outrigger/<pod>[/<container>]`. */
    readonly rel: string,
  ) {}

  dir(c?: V1Controller): string {
    return this.roots.version === 2 ? join(this.roots.base, this.rel) : join(this.roots.base[c ?? 'memory'], this.rel);
  }

  /** Every directory of the group (v1: one per hierarchy, without repeats for co-mounted ones). */
  dirs(): string[] {
    if (this.roots.version === 2) return [this.dir()];
    return [...new Set(V1_CONTROLLERS.map((c) => this.dir(c)))];
  }

  /** Makes the group (and its parents) and applies `limits`. */
  async create(limits: CgroupLimits, pidsMax?: number): Promise<void> {
    if (this.roots.version === 2) await this.enableV2Parents();
    for (const d of this.dirs()) await mkdir(d, { recursive: true });
    await this.apply(limits, pidsMax);
  }

  /** In v2 a group's controllers must be enabled in every parent's cgroup.subtree_control, and a group
   *  with processes cannot enable them for children: the control process's own group is made a parent
   *  by moving the process into a leaf of its own first (as container runtimes do). */
  private async enableV2Parents(): Promise<void> {
    if (this.roots.version !== 2) return;
    const base = this.roots.base;
    const enable = async (dir: string) => {
      const want = ['memory', 'cpu', 'pids'];
      const have = (await readFile(join(dir, 'cgroup.subtree_control'), 'utf8')).trim().split(/\s+/);
      const add = want.filter((c) => !have.includes(c));
      if (add.length > 0) await writeFile(join(dir, 'cgroup.subtree_control'), add.map((c) => `+${c}`).join(' '));
    };
    try {
      await enable(base);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw err;
      const leaf = join(base, 'outrigger-control');
      await mkdir(leaf, { recursive: true });
      await writeFile(join(leaf, 'cgroup.procs'), String(process.pid));
      try {
        await enable(base);
      } catch (again) {
        throw new RuntimeError(
          RuntimeCodes.CGROUP,
          `cgroup v2: cannot enable memory, cpu and pids below ${base} (${(again as Error).message}): other ` +
            `processes share the control process's cgroup; start outrigger in a cgroup of its own ` +
            `(e.g. systemd-run --scope -p Delegate=yes outrigger up ...)`,
        );
      }
    }
    const parts = this.rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const d = join(base, ...parts.slice(0, i));
      await mkdir(d, { recursive: true });
      await enable(d);
    }
  }

  private async apply(l: CgroupLimits, pidsMax?: number): Promise<void> {
    const request = l.cpuRequest ?? l.cpuLimit;
    if (this.roots.version === 1) {
      const mem = this.dir('memory');
      if (l.memoryLimit !== undefined) {
        await writeFile(join(mem, 'memory.limit_in_bytes'), String(l.memoryLimit));
        // No swap past the limit (as the kubelet runs without swap): over it, the OOM killer.
        await writeFile(join(mem, 'memory.memsw.limit_in_bytes'), String(l.memoryLimit)).catch(() => undefined);
        await writeFile(join(mem, 'memory.swappiness'), '0').catch(() => undefined);
      }
      if (request !== undefined) await writeFile(join(this.dir('cpu'), 'cpu.shares'), String(cpuShares(request)));
      if (l.cpuLimit !== undefined) {
        await writeFile(join(this.dir('cpu'), 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
        await writeFile(join(this.dir('cpu'), 'cpu.cfs_quota_us'), String(cfsQuota(l.cpuLimit)));
      }
      if (pidsMax !== undefined) await writeFile(join(this.dir('pids'), 'pids.max'), String(pidsMax));
      return;
    }
    const d = this.dir();
    if (l.memoryLimit !== undefined) {
      await writeFile(join(d, 'memory.max'), String(l.memoryLimit));
      await writeFile(join(d, 'memory.swap.max'), '0').catch(() => undefined);
    }
    if (request !== undefined) await writeFile(join(d, 'cpu.weight'), String(cpuWeight(cpuShares(request))));
    if (l.cpuLimit !== undefined) await writeFile(join(d, 'cpu.max'), `${cfsQuota(l.cpuLimit)} ${CFS_PERIOD_US}`);
    if (pidsMax !== undefined) await writeFile(join(d, 'pids.max'), String(pidsMax));
  }

  /** Moves a process (and so everything it starts later) into the group. */
  async add(pid: number): Promise<void> {
    for (const d of this.dirs()) await writeFile(join(d, 'cgroup.procs'), String(pid));
  }

  /** How many times the kernel's OOM killer killed a process of this group (over its memory limit). */
  async oomKills(): Promise<number> {
    try {
      const text =
        this.roots.version === 1
          ? await readFile(join(this.dir('memory'), 'memory.oom_control'), 'utf8')
          : await readFile(join(this.dir(), 'memory.events'), 'utf8');
      return Number(/^oom_kill ([0-9]+)$/m.exec(text)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** CPU time used (ns) and the memory working set (bytes: usage less inactive file cache, as the
   *  kubelet reports it); undefined when the group is gone. */
  async usage(): Promise<{ readonly cpuNanos: number; readonly memoryBytes: number } | undefined> {
    try {
      if (this.roots.version === 1) {
        const cpu = Number((await readFile(join(this.dir('cpuacct'), 'cpuacct.usage'), 'utf8')).trim());
        const mem = Number((await readFile(join(this.dir('memory'), 'memory.usage_in_bytes'), 'utf8')).trim());
        const stat = await readFile(join(this.dir('memory'), 'memory.stat'), 'utf8');
        const inactive = Number(/^total_inactive_file ([0-9]+)$/m.exec(stat)?.[1] ?? 0);
        return { cpuNanos: cpu, memoryBytes: Math.max(0, mem - inactive) };
      }
      const d = this.dir();
      const cpuStat = await readFile(join(d, 'cpu.stat'), 'utf8');
      const usec = Number(/^usage_usec ([0-9]+)$/m.exec(cpuStat)?.[1] ?? 0);
      const mem = Number((await readFile(join(d, 'memory.current'), 'utf8')).trim());
      const stat = await readFile(join(d, 'memory.stat'), 'utf8');
      const inactive = Number(/^inactive_file ([0-9]+)$/m.exec(stat)?.[1] ?? 0);
      return { cpuNanos: usec * 1000, memoryBytes: Math.max(0, mem - inactive) };
    } catch {
      return undefined;
    }
  }

  /** Removes the group's directories (it must hold no process and no child group); missing is fine. */
  async remove(): Promise<void> {
    await removeCgroupDirs(this.dirs());
  }
}

/** rmdir of cgroup directories (children before parents); a missing one is fine, a busy one is retried
 *  briefly (the kernel frees a group a moment after its last process is reaped). */
export async function removeCgroupDirs(dirs: readonly string[]): Promise<void> {
  const problems: string[] = [];
  for (const d of dirs) {
    for (let i = 0; ; i++) {
      try {
        await rmdir(d);
        break;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code === 'EBUSY' && i < 50) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        problems.push(`${d}: ${(err as Error).message}`);
        break;
      }
    }
  }
  if (problems.length > 0) throw new RuntimeError(RuntimeCodes.CGROUP, `cannot remove cgroups: ${problems.join('; ')}`);
}

/** `outrigger/<netns>` below each base: the pod's group. */
export function podCgroupRel(netns: string): string {
  return `outrigger/${netns}`;
}

/** Removes pod groups (given by their directories) with every container group in them: for pods
 *  whose processes are gone but whose records were lost (a crash, a resume's leftovers). */
export async function removePodCgroupDirs(podDirs: Iterable<string>): Promise<void> {
  const problems: string[] = [];
  for (const pod of podDirs) {
    const children = await readdir(pod, { withFileTypes: true }).catch(() => []);
    const dirs = children.filter((e) => e.isDirectory()).map((e) => join(pod, e.name));
    await removeCgroupDirs([...dirs, pod]).catch((e: unknown) => void problems.push((e as Error).message));
  }
  if (problems.length > 0) throw new RuntimeError(RuntimeCodes.CGROUP, problems.join('; '));
}
