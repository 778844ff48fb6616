// `outrigger get dataplane`: the table of every data-plane process of the running mesh (found and asked
// by src/daemon/dataplane.ts, which `outrigger lab` uses too).
import type { DataPlaneProcess } from '../daemon/dataplane.js';

export { dataPlaneProcesses, type DataPlaneProcess } from '../daemon/dataplane.js';

/** The table of `get dataplane`. */
export function dataPlaneRows(procs: readonly DataPlaneProcess[]): string[][] {
  return [
    ['NAME', 'MODE', 'NODE', 'PID', 'PODS', 'KEYS', 'CGROUP'],
    ...procs.map((p) => [
      p.name,
      p.mode,
      p.node,
      p.pid !== undefined ? String(p.pid) : '-',
      String(p.pods.length),
      p.error !== undefined ? '?' : String(p.identities.length),
      p.cgroups[0] ?? '-',
    ]),
  ];
}
