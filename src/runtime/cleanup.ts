// `down` without a control process: the local mesh taken apart from the records it left in the state
// directory (process groups, the pods' namespaces, the network), then the state files removed.
import { removeNodeCgroups } from './dataplane/index.js';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { parseNetRecord, teardownNetwork, type TeardownReport } from './net/index.js';
import {
  Cgroup,
  cgroupRoots,
  killNetnsProcesses,
  killRecordedProcesses,
  podCgroupRel,
  removeCgroupDirs,
  removePodCgroupDirs,
} from './supervisor/index.js';
import { readJson, removeStateFiles, statePaths } from './state.js';

export interface CleanupReport {
  readonly found: boolean;
  readonly killed: string[];
  readonly removed: string[];
  readonly warnings: string[];
}

/** `down` without a control process (it was killed, or crashed): kills every recorded process group
 *  and everything left in the pods' namespaces, then removes the network from its record, then the
 *  state files. Throws (TeardownError) if something could not be removed; the records stay for a retry. */
export async function cleanupFromRecords(stateDir: string): Promise<CleanupReport> {
  const paths = statePaths(stateDir);
  const procs = await killRecordedProcesses(stateDir);
  const warnings = [...procs.problems];
  const raw = await readJson(paths.net);
  let net: TeardownReport = { removed: [], warnings: [] };
  if (raw !== undefined) {
    const rec = parseNetRecord(raw);
    for (const p of rec.pods) {
      const pids = await killNetnsProcesses(p.netns).catch((e: unknown) => void warnings.push((e as Error).message));
      if (pids !== undefined && pids.length > 0) procs.killed.push(`${p.pod}: pids ${pids.join(', ')}`);
    }
    net = await teardownNetwork(rec);
    // The pods' cgroups: where the records say, and where this process would put them (a container
    // that had exited when the control process died has no record left).
    const podGroups = new Set(procs.cgroups.map((d) => dirname(d)));
    const roots = await cgroupRoots();
    if (!('problem' in roots)) {
      for (const p of rec.pods) for (const d of new Cgroup(roots, podCgroupRel(p.netns)).dirs()) podGroups.add(d);
    }
    await removePodCgroupDirs(podGroups).catch((e: unknown) => void warnings.push((e as Error).message));
    // A per-host mesh's node proxies, found by their nodes' cgroups.
    if (!('problem' in roots)) {
      const nodes = await removeNodeCgroups(roots, rec.bridge).catch((e: unknown) => {
        warnings.push((e as Error).message);
        return [];
      });
      procs.killed.push(...nodes);
    }
    const parents = new Set([...podGroups].map((d) => dirname(d)));
    for (const d of parents) await removeCgroupDirs([d]).catch(() => undefined); // once empty
  }
  const found =
    raw !== undefined ||
    procs.killed.length > 0 ||
    (await readFile(paths.pid, 'utf8').then(
      () => true,
      () => false,
    ));
  await removeStateFiles(stateDir);
  return { found, killed: procs.killed, removed: net.removed, warnings: [...warnings, ...net.warnings] };
}
