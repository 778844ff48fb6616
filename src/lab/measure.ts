// What the lab reads back: latencies from the load generators' files (percentiles), CPU time and memory
// of cgroups (the kernel's accounting: cpuacct/memory in v1, cpu.stat/memory.current in v2), and the
// private (USS) and resident (RSS) memory of processes from /proc/<pid>/smaps_rollup.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Cgroup, type CgroupRoots } from '../runtime/supervisor/index.js';
import { LabCodes, LabError } from './errors.js';

/** The `q` quantile (0..1) of sorted samples, nearest rank; null without samples. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}

/** What one load generator wrote. */
export interface LoadResult {
  readonly lat: number[];
  readonly ok: number;
  readonly fail: number;
  /** Epoch ms of each failed request. */
  readonly fail_t: number[];
  /** Every request sent, those of the warm-up second too (for CPU per request). */
  readonly sent: number;
}

/** A load generator running in a pod's network namespace. */
export class Load {
  private readonly proc: ChildProcess;
  private readonly exited: Promise<number | null>;
  private stderr = '';

  constructor(
    readonly pod: string,
    netns: string,
    script: string,
    target: string,
    opts: { rate: number; seconds: number; out: string; stopFile?: string; conns?: number },
  ) {
    const args = [
      'netns',
      'exec',
      netns,
      'python3',
      script,
      target,
      String(opts.rate),
      String(opts.seconds),
      opts.out,
      opts.stopFile ?? '-',
      String(opts.conns ?? 1),
    ];
    this.proc = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr?.setEncoding('utf8');
    this.proc.stderr?.on('data', (c: string) => {
      if (this.stderr.length < 4000) this.stderr += c;
    });
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code) => resolve(code));
      this.proc.once('error', () => resolve(-1));
    });
    running.add(this);
    void this.exited.then(() => running.delete(this));
    this.out = opts.out;
  }

  private readonly out: string;

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Resolves once its first recorded request (after the warm-up) is over, so that what a phase does
   *  next falls in what is measured; throws when it ends first or `ms` pass. */
  async measuring(ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (!existsSync(`${this.out}.measuring`)) {
      if (exited)
        throw new LabError(
          LabCodes.LOAD,
          `the load generator in pod ${this.pod} ended before it measured: ${this.stderr.trim()}`,
        );
      if (Date.now() > deadline)
        throw new LabError(LabCodes.LOAD, `the load generator in pod ${this.pod} measured nothing within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits for it to end and reads its results. */
  async result(): Promise<LoadResult> {
    const code = await this.exited;
    try {
      return JSON.parse(await readFile(this.out, 'utf8')) as LoadResult;
    } catch (err) {
      throw new LabError(
        LabCodes.LOAD,
        `the load generator in pod ${this.pod} wrote no results (exit ${code}): ${this.stderr.trim() || (err as Error).message}`,
      );
    }
  }

  /** Ends it now (SIGKILL, by its pid), for an interrupted lab. */
  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

/** Every load generator still running (killed on Ctrl-C). */
const running = new Set<Load>();

export function killLoads(): void {
  for (const l of running) l.kill();
}

/** CPU (ns) and working-set memory (bytes) of cgroups given relative to the roots, summed; groups that
 *  are gone count 0. */
export async function cgroupUsage(
  roots: CgroupRoots,
  rels: readonly string[],
): Promise<{ cpuNanos: number; memoryBytes: number }> {
  let cpuNanos = 0;
  let memoryBytes = 0;
  for (const rel of rels) {
    const u = await new Cgroup(roots, rel).usage();
    cpuNanos += u?.cpuNanos ?? 0;
    memoryBytes += u?.memoryBytes ?? 0;
  }
  return { cpuNanos, memoryBytes };
}

/** The processes in a cgroup (its memory hierarchy in v1). */
export async function cgroupPids(roots: CgroupRoots, rel: string): Promise<number[]> {
  const g = new Cgroup(roots, rel);
  const dir = roots.version === 2 ? g.dir() : g.dir('memory');
  const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/** USS (private clean + private dirty) and RSS of a process, in bytes; zero when it is gone. */
export async function processMemory(pid: number): Promise<{ uss: number; rss: number }> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').catch(() => '');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+([0-9]+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  return { uss: kb('Private_Clean') + kb('Private_Dirty'), rss: kb('Rss') };
}

/** The runtime's own steps around a container's process (its init chain), not the data plane. */
const WRAPPERS = new Set(['unshare', 'sh', 'dash', 'bash', 'setpriv', 'nsenter', 'env', 'ip']);

/** The data plane's own processes in a cgroup: every process of it but the runtime's wrappers. */
export async function dataPlanePids(roots: CgroupRoots, rel: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await cgroupPids(roots, rel)) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (comm !== '' && !WRAPPERS.has(comm)) out.push(pid);
  }
  return out;
}
