// What the lab's figures say, in sentences computed from them: each compares the two modes on one
// figure and names the mode the figure favours (or says they tie, or that it could not be measured).
// Nothing here is written in advance: a figure that comes out the other way gives the other sentence.
import type { Figure, LabReport, ModeResult } from './types.js';

type Partial = Omit<LabReport, 'findings'>;

/** Within 5% (or 0.05 of the unit) counts as a tie: the lab's runs are short. */
function tie(a: number, b: number): boolean {
  return Math.abs(a - b) <= Math.max(0.05, 0.05 * Math.max(Math.abs(a), Math.abs(b)));
}

const f = (n: number) =>
  Number.isInteger(n) ? String(n) : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2);

/** "lower is better" comparison of one figure; a sentence. */
function compare(what: string, s: Figure, p: Figure, where: string): string {
  if (s.value === null || p.value === null)
    return `${what}${where}: not compared (${s.value === null ? `sidecar: ${s.method}` : `per-host: ${p.method}`}).`;
  const u = s.unit === 'ms' ? ' ms' : s.unit === 'MB' ? ' MB' : ` ${s.unit}`;
  if (tie(s.value, p.value))
    return `${what}${where}: about the same (sidecar ${f(s.value)}${u}, per-host ${f(p.value)}${u}); neither mode favoured.`;
  const [win, lose, wv, lv] =
    s.value < p.value ? ['sidecar', 'per-host', s.value, p.value] : ['per-host', 'sidecar', p.value, s.value];
  const ratio = wv > 0 ? ` (${(lv / wv).toFixed(1)}×)` : '';
  return `${what}${where}: ${win} ${f(wv)}${u} against ${lose} ${f(lv)}${u}${ratio}; favours ${win}.`;
}

export function labFindings(r: Partial): string[] {
  const s: ModeResult = r.modes.sidecar;
  const p: ModeResult = r.modes['per-host'];
  const out: string[] = [];
  for (const [i, ss] of s.overhead.entries()) {
    const ps = p.overhead[i];
    if (ps === undefined) continue;
    const at = ` at ${ss.pods_per_node} pods per node`;
    out.push(
      compare(
        `Data-plane private memory in total (${ss.data_plane_processes} sidecar processes, ${ps.data_plane_processes} node proxies)`,
        ss.data_plane_private_mb_total,
        ps.data_plane_private_mb_total,
        at,
      ),
    );
    out.push(compare('Added p99 latency', ss.added_p99_ms, ps.added_p99_ms, at));
    out.push(compare('Data-plane CPU per request', ss.cpu_ms_per_request, ps.cpu_ms_per_request, at));
  }
  const share = (m: ModeResult) => m.attributed_cpu_share.value;
  if (share(s) !== null && share(p) !== null) {
    const sv = share(s) as number;
    const pv = share(p) as number;
    out.push(
      `Attribution: ${Math.round(sv * 100)}% of the sidecars' CPU was charged to the pods that caused it, ${Math.round(pv * 100)}% of the node proxies'; ` +
        (tie(sv, pv)
          ? 'neither mode favoured.'
          : `favours ${sv > pv ? 'sidecar' : 'per-host'} (a pod's limits ${sv > pv ? 'cover' : 'miss'} its data plane's cost).`),
    );
  }
  const growth = (m: ModeResult) =>
    m.quiet_pod_p99_ms_before.value !== null &&
    m.quiet_pod_p99_ms_during_flood.value !== null &&
    m.quiet_pod_p99_ms_before.value > 0
      ? m.quiet_pod_p99_ms_during_flood.value / m.quiet_pod_p99_ms_before.value
      : null;
  const gs = growth(s);
  const gp = growth(p);
  if (gs !== null && gp !== null) {
    const win = tie(gs, gp) ? undefined : gs < gp ? 'sidecar' : 'per-host';
    out.push(
      `Noisy neighbour: a flood from a pod on the same node multiplied the quiet pod's p99 by ${gs.toFixed(1)} with sidecars and by ${gp.toFixed(1)} per-host; ` +
        (win !== undefined ? `favours ${win}.` : 'neither mode favoured.'),
    );
  } else {
    out.push('Noisy neighbour: not compared (a quiet p99 was not measured).');
  }
  out.push(
    compare(
      'Blast radius of one data-plane process killed (pods with failures)',
      s.blast_radius_pods,
      p.blast_radius_pods,
      '',
    ),
  );
  out.push(
    compare('Requests failed when it was killed', s.blast_radius_failed_requests, p.blast_radius_failed_requests, ''),
  );
  out.push(
    compare(
      "Requests failed while one node's data plane was replaced",
      s.upgrade_failed_requests,
      p.upgrade_failed_requests,
      '',
    ),
  );
  out.push(
    compare(
      'Private keys of distinct identities held by one data-plane process',
      s.identities_per_process,
      p.identities_per_process,
      '',
    ),
  );
  const cd = p.confused_deputy;
  if (cd.attempted)
    out.push(
      cd.refused
        ? "Confused deputy: the node proxy refused a pod using another pod's address (it holds that pod's key, and must check every connection's source); a sidecar has no other pod's key to give; favours sidecar (one guard fewer to get right)."
        : "Confused deputy: the node proxy did NOT refuse a pod using another pod's address; favours sidecar.",
    );
  return out;
}
