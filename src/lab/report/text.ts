// The terminal summary `outrigger lab` prints at the end: the machine in a line, the findings, and a
// compact side-by-side table per phase (sidecar beside per-host), column widths computed from the
// content. Plain text only: no colour codes, and control characters from the report are dropped so a
// hostile string cannot move the cursor. Every figure not measured is marked and its reason listed
// below the tables; the methods are in the HTML and JSON reports.
import type { Figure, LabReport } from '../types.js';
import { LAB_MODES } from '../types.js';
import {
  formatFigure,
  formatNumber,
  NOT_MEASURED,
  overheadSteps,
  PHASES,
  plainText,
  type FigureKind,
  type OverheadFigureKey,
} from './format.js';

/** How many columns a string takes in a terminal (code points; the report's text is not CJK). */
export function textWidth(s: string): number {
  return [...s].length;
}

export type Align = 'left' | 'right';

/** Lays rows out in columns two spaces apart, each as wide as its widest cell; trailing spaces are
 *  trimmed. A row with a single cell (a heading) is written as is. */
export function layoutColumns(rows: readonly (readonly string[])[], align: readonly Align[]): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    if (r.length < 2) continue;
    r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, textWidth(c))));
  }
  return rows.map((r) => {
    if (r.length < 2) return r[0] ?? '';
    return r
      .map((c, i) => {
        const pad = ' '.repeat((widths[i] ?? 0) - textWidth(c));
        return align[i] === 'right' ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd();
  });
}

const SUMMARY_OVERHEAD: readonly { key: OverheadFigureKey; label: string }[] = [
  { key: 'added_p50_ms', label: 'added latency p50' },
  { key: 'added_p99_ms', label: 'added latency p99' },
  { key: 'cpu_ms_per_request', label: 'CPU per request' },
  { key: 'data_plane_private_mb_total', label: 'private memory, total' },
  { key: 'data_plane_private_mb_per_pod', label: 'private memory per pod' },
];

export function renderLabText(report: LabReport): string {
  const notes: string[] = [];
  const cell = (f: Figure | undefined, where: string, kind: FigureKind = 'plain'): string => {
    if (f === undefined) return '-';
    if (f.value !== null) return plainText(formatFigure(f, kind));
    notes.push(`${where}: ${plainText(f.method)}`);
    return `${NOT_MEASURED} [${notes.length}]`;
  };
  const m = report.machine;
  const w = report.workload;
  const out: string[] = [
    `Outrigger lab ${plainText(report.version)}${report.quick ? ' (quick run: rougher figures)' : ''}: ` +
      `${formatNumber(m.cpus)} × ${plainText(m.cpu_model)}, ${formatNumber(m.memory_gb)} GB, ` +
      `kernel ${plainText(m.kernel)}, Node.js ${plainText(m.node)}, cgroup ${m.cgroup}`,
    `Workload: ${formatNumber(w.nodes)} nodes, ${w.pods_per_node_steps.map(formatNumber).join(', ')} pods per node, ` +
      `${formatNumber(w.rate_rps)} requests/s, ${formatNumber(w.duration_s)} s per measurement`,
    '',
  ];
  if (report.findings.length > 0) {
    out.push('Findings');
    for (const f of report.findings) out.push(`  - ${plainText(f)}`);
    out.push('');
  }
  // One table for all phases, so the columns line up from one phase to the next.
  const rows: string[][] = [['', 'pods/node', ...LAB_MODES]];
  rows.push(['Overhead']);
  const steps = overheadSteps(report);
  for (const spec of SUMMARY_OVERHEAD) {
    steps.forEach((step, i) => {
      const values = LAB_MODES.map((mode) =>
        cell(
          report.modes[mode].overhead.find((s) => s.pods_per_node === step)?.[spec.key],
          `${mode} ${spec.label} at ${formatNumber(step)} pods/node`,
        ),
      );
      rows.push([i === 0 ? `  ${spec.label}` : '', formatNumber(step), ...values]);
    });
  }
  steps.forEach((step, i) =>
    rows.push([
      i === 0 ? '  data-plane processes' : '',
      formatNumber(step),
      ...LAB_MODES.map((mode) => {
        const s = report.modes[mode].overhead.find((x) => x.pods_per_node === step);
        return s === undefined ? '-' : formatNumber(s.data_plane_processes);
      }),
    ]),
  );
  for (const phase of PHASES) {
    rows.push([phase.title]);
    for (const f of phase.charts.flat())
      rows.push([
        `  ${f.label}`,
        '',
        ...LAB_MODES.map((mode) => cell(report.modes[mode][f.key], `${mode} ${f.label}`, f.kind)),
      ]);
    if (phase.id === 'key-exposure')
      rows.push([
        '  confused deputy',
        '',
        ...LAB_MODES.map((mode) => {
          const d = report.modes[mode].confused_deputy;
          return !d.attempted ? 'not attempted' : d.refused ? 'refused' : 'NOT REFUSED';
        }),
      ]);
  }
  out.push(...layoutColumns(rows, ['left', 'right', 'right', 'right']));
  if (notes.length > 0) {
    out.push('', 'Not measured:');
    notes.forEach((n, i) => out.push(`  [${i + 1}] ${n}`));
  }
  out.push('', 'The method of every figure is in the HTML report (--html FILE) and the JSON (--json FILE).', '');
  return out.join('\n');
}
