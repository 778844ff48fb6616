// Questions about processes answered from /proc: a process's start time and process group (to tell
// one of ours from an unrelated process that got the same pid later), and a scan for group members.
import { readdir, readFile } from 'node:fs/promises';

export interface ProcStat {
  readonly pid: number;
  readonly pgrp: number;
  /** Start time in clock ticks since boot (field 22 of /proc/<pid>/stat): with the boot id, a
   *  process's identity, since pids are reused. */
  readonly startTicks: number;
  readonly state: string;
}

/** Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself contain
 *  spaces and parentheses, so fields are counted from the last ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open === -1 || close === -1 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state), so field N is rest[N - 3].
  const state = rest[0];
  const pgrp = Number(rest[5 - 3]);
  const startTicks = Number(rest[22 - 3]);
  if (state === undefined || !Number.isInteger(pid) || !Number.isInteger(pgrp) || !Number.isInteger(startTicks))
    return undefined;
  return { pid, pgrp, startTicks, state };
}

export async function procStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // gone
  }
}

let bootIdCache: string | undefined;

/** Changes at every boot: a record from before a reboot names processes that no longer exist. */
export async function bootId(): Promise<string> {
  bootIdCache ??= (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  return bootIdCache;
}

/** Every live process, with its stat (a best-effort snapshot: processes come and go while we read). */
export async function allProcesses(): Promise<ProcStat[]> {
  const names = await readdir('/proc');
  const out: ProcStat[] = [];
  await Promise.all(
    names
      .filter((n) => /^[0-9]+$/.test(n))
      .map(async (n) => {
        const s = await procStat(Number(n));
        if (s !== undefined) out.push(s);
      }),
  );
  return out;
}

/** Whether the process's initial environment holds `NAME=value` exactly. */
export async function environHas(pid: number, entry: string): Promise<boolean> {
  try {
    const env = await readFile(`/proc/${pid}/environ`);
    return env.toString('utf8').split('\0').includes(entry);
  } catch {
    return false;
  }
}

/** Live members of process group `pgid` (zombies are dead already and do not count). */
export async function groupMembers(pgid: number): Promise<ProcStat[]> {
  return (await allProcesses()).filter((p) => p.pgrp === pgid && p.state !== 'Z' && p.state !== 'X');
}

/** Whether a process is gone (a zombie counts as gone: it runs nothing and its parent will reap it). */
export async function isGone(pid: number): Promise<boolean> {
  const s = await procStat(pid);
  return s === undefined || s.state === 'Z' || s.state === 'X';
}
