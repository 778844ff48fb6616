// The record of a running container process, written before the process may run anything (see
// launch.ts) and removed once it is stopped, so that `down` after the runtime crashed or was killed can
// find every process group and kill it, without ever killing an unrelated process that reused a pid.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { killGroup } from './launch.js';
import { allProcesses, bootId, environHas, procStat } from './proc.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';

/** Set in every container process's environment (and so inherited by its children): `<runId>`. */
export const RUN_MARKER_ENV = 'OUTRIGGER_CONTAINER_RUN';

const processRecord = z.object({
  version: z.literal(1),
  /** `namespace/name` of the pod. */
  pod: z.string(),
  container: z.string(),
  netns: z.string().nullable(),
  /** The process group leader's pid; the group id is the same (the process leads its own session). */
  pid: z.number().int().min(2),
  startTicks: z.number().int().min(0),
  bootId: z.string(),
  /** The value of RUN_MARKER_ENV in the process's environment: unique per start. */
  runId: z.string().min(8),
  /** The container's cgroup directories (one per hierarchy), removed with it after a crash. */
  cgroups: z.array(z.string()).optional(),
});

export type ProcessRecord = z.output<typeof processRecord>;

/** `<stateDir>/pods/<namespace>/<pod>`: a pod's logs and process records. */
export function podStateDir(stateDir: string, namespace: string, pod: string): string {
  return join(stateDir, 'pods', namespace, pod);
}

export function recordPath(podDir: string, container: string): string {
  return join(podDir, `${container}.proc.json`);
}

export function logPath(podDir: string, container: string): string {
  return join(podDir, `${container}.log`);
}

/** Writes the record atomically (a reader never sees half a file). */
export async function writeProcessRecord(path: string, rec: ProcessRecord): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(rec) + '\n', { mode: 0o644 });
  await rename(tmp, path);
}

export async function removeProcessRecord(path: string): Promise<void> {
  await rm(path, { force: true });
}

export function parseProcessRecord(data: unknown): ProcessRecord {
  const r = processRecord.safeParse(data);
  if (!r.success) {
    const first = r.error.issues[0];
    const why = `${first?.path.join('.') ?? ''}: ${first?.message ?? 'invalid'}`;
    throw new RuntimeError(RuntimeCodes.STATE_RECORD, `process record is damaged: ${why}`);
  }
  return r.data;
}

/** Whether the record's process group still has members, judged safely: the leader itself (same pid
 *  and start time, this boot), or a member of that group carrying the record's run marker (the leader
 *  exited but its children live on). A group id whose processes are all gone is free for the kernel to
 *  hand out again, which is why a bare `kill(-pgid)` from an old record would be wrong. */
export async function recordedGroupAlive(rec: ProcessRecord): Promise<boolean> {
  if (rec.bootId !== (await bootId())) return false;
  const leader = await procStat(rec.pid);
  if (leader !== undefined && leader.startTicks === rec.startTicks && leader.pgrp === rec.pid) return true;
  const marker = `${RUN_MARKER_ENV}=${rec.runId}`;
  for (const p of await allProcesses()) {
    if (p.pgrp === rec.pid && p.startTicks >= rec.startTicks && (await environHas(p.pid, marker))) return true;
  }
  return false;
}

export interface KillReport {
  /** `ns/pod/container (pgid N)` for each group killed. */
  readonly killed: string[];
  /** Records that could not be read. */
  readonly problems: string[];
  /** The recorded containers' cgroup directories, for the caller to remove once the pods are gone. */
  readonly cgroups: string[];
}

/** Kills (SIGKILL) every process group recorded under `<stateDir>/pods` and removes the records: for
 *  `down` after a crash. Records whose processes are already gone are just removed. */
export async function killRecordedProcesses(stateDir: string): Promise<KillReport> {
  const killed: string[] = [];
  const problems: string[] = [];
  const cgroups: string[] = [];
  for (const file of await findRecords(join(stateDir, 'pods'))) {
    let rec: ProcessRecord;
    try {
      rec = parseProcessRecord(JSON.parse(await readFile(file, 'utf8')));
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
      continue;
    }
    if (await recordedGroupAlive(rec)) {
      if (killGroup(rec.pid, 'SIGKILL')) killed.push(`${rec.pod}/${rec.container} (pgid ${rec.pid})`);
    }
    cgroups.push(...(rec.cgroups ?? []));
    await rm(file, { force: true });
  }
  return { killed, problems, cgroups };
}

async function findRecords(dir: string): Promise<string[]> {
  const out: string[] = [];
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await findRecords(p)));
    else if (e.isFile() && e.name.endsWith('.proc.json')) out.push(p);
  }
  return out;
}

/** Creates a pod's state directory (0755: the logs in it are 0600). */
export async function ensurePodStateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
}
