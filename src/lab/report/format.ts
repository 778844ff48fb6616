// The report's small pieces shared by the HTML and the text renderers: escaping, number formatting,
// and the list of figures each phase shows (label, key, how to format). Pure functions only.
import type { Figure, LabMode, LabReport, ModeResult, OverheadStep } from '../types.js';
import { LAB_MODES } from '../types.js';

/** Escapes text for HTML content and for quoted attribute values (both `"` and `'`), so any string
 *  from the report (a method, a finding, a CPU model) stays text. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Removes what a terminal would act on (ESC sequences, carriage returns, other C0/C1 controls but
 *  tab) from a report string printed as text; a newline becomes a space. */
export function plainText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/\r?\n/g, ' ').replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/g, '');
}

/** A number as a reader wants it: thousands grouped, integers as integers, from 1,000 up no
 *  decimals, from 10 one, from 1 two, below 1 three significant digits; trailing zeros dropped and
 *  never exponent notation (a report's magnitudes do not need it). */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return group(String(Math.abs(v)), v < 0);
  const a = Math.abs(v);
  const decimals = a >= 1000 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(a)));
  const s = a
    .toFixed(decimals)
    .replace(/(\.\d*?)0+$/, '$1')
    .replace(/\.$/, '');
  if (s === '0') return '0';
  const [int = '0', frac] = s.split('.');
  return group(int, v < 0) + (frac === undefined ? '' : `.${frac}`);
}

function group(int: string, negative: boolean): string {
  return (negative ? '-' : '') + int.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** How a figure's value reads: a share (0..1) as a percentage, anything else as number and unit. */
export type FigureKind = 'share' | 'plain';

export function formatValue(value: number, unit: string, kind: FigureKind = 'plain'): string {
  if (kind === 'share') return `${formatNumber(Math.round(value * 1000) / 10)} %`;
  return unit === '' ? formatNumber(value) : `${formatNumber(value)} ${value === 1 ? (SINGULAR[unit] ?? unit) : unit}`;
}

/** Count units written in the plural, and their singular for a value of 1 ("1 pod"). */
const SINGULAR: Record<string, string> = {
  pods: 'pod',
  requests: 'request',
  identities: 'identity',
  processes: 'process',
  connections: 'connection',
};

export const NOT_MEASURED = 'not measured';

/** A figure as text: its value and unit, or "not measured". */
export function formatFigure(f: Figure, kind: FigureKind = 'plain'): string {
  return f.value === null ? NOT_MEASURED : formatValue(f.value, f.unit, kind);
}

export const MODE_LABEL: Record<LabMode, string> = { sidecar: 'sidecar', 'per-host': 'per-host' };

/** The pods-per-node steps of the report: the workload's, plus any step a mode measured besides. */
export function overheadSteps(report: LabReport): number[] {
  const all = new Set<number>(report.workload.pods_per_node_steps);
  for (const m of LAB_MODES) for (const s of report.modes[m].overhead) all.add(s.pods_per_node);
  return [...all].sort((a, b) => a - b);
}

/** Keys of the overhead figures, in the order the report shows them. */
export type OverheadFigureKey = {
  [K in keyof OverheadStep]: OverheadStep[K] extends Figure ? K : never;
}[keyof OverheadStep];
export type ModeFigureKey = { [K in keyof ModeResult]: ModeResult[K] extends Figure ? K : never }[keyof ModeResult];

export interface FigureSpec<K> {
  readonly key: K;
  readonly label: string;
  readonly kind: FigureKind;
}

export const OVERHEAD_FIGURES: readonly FigureSpec<OverheadFigureKey>[] = [
  { key: 'added_p50_ms', label: 'added latency p50', kind: 'plain' },
  { key: 'added_p99_ms', label: 'added latency p99', kind: 'plain' },
  { key: 'p50_ms', label: 'latency p50 (through the data plane)', kind: 'plain' },
  { key: 'p99_ms', label: 'latency p99 (through the data plane)', kind: 'plain' },
  { key: 'baseline_p50_ms', label: 'latency p50 (no data plane)', kind: 'plain' },
  { key: 'baseline_p99_ms', label: 'latency p99 (no data plane)', kind: 'plain' },
  { key: 'cpu_ms_per_request', label: 'data-plane CPU per request', kind: 'plain' },
  { key: 'data_plane_private_mb_total', label: 'data-plane private memory, total', kind: 'plain' },
  { key: 'data_plane_private_mb_per_pod', label: 'data-plane private memory per pod', kind: 'plain' },
  { key: 'data_plane_rss_mb_total', label: 'data-plane RSS, total', kind: 'plain' },
];

/** The phases after overhead: each a group of figures of ModeResult. Figures of one chart share a
 *  unit; a phase whose figures have different units gets one chart per figure. */
export interface PhaseSpec {
  readonly id: string;
  readonly title: string;
  readonly question: string;
  /** Charts: each a list of figures drawn as paired bars on one scale. */
  readonly charts: readonly (readonly FigureSpec<ModeFigureKey>[])[];
}

export const PHASES: readonly PhaseSpec[] = [
  {
    id: 'attribution',
    title: 'Attribution',
    question: "How much of the data plane's CPU and memory is charged to the cgroup of the pod that caused it.",
    charts: [
      [
        { key: 'attributed_cpu_share', label: 'CPU charged to the pod', kind: 'share' },
        { key: 'attributed_memory_share', label: 'memory charged to the pod', kind: 'share' },
      ],
    ],
  },
  {
    id: 'noisy-neighbour',
    title: 'Noisy neighbour',
    question: 'One pod floods its peer as fast as it can: the p99 of a quiet pod on the same node, before and during.',
    charts: [
      [
        { key: 'quiet_pod_p99_ms_before', label: 'quiet pod p99 before', kind: 'plain' },
        { key: 'quiet_pod_p99_ms_during_flood', label: 'quiet pod p99 during the flood', kind: 'plain' },
      ],
    ],
  },
  {
    id: 'blast-radius',
    title: 'Blast radius',
    question:
      'kill -9 of the data-plane process serving one pod: how many pods see failed requests, how many, for how long.',
    charts: [
      [{ key: 'blast_radius_pods', label: 'pods with failed requests', kind: 'plain' }],
      [{ key: 'blast_radius_failed_requests', label: 'failed requests', kind: 'plain' }],
      [{ key: 'blast_radius_window_ms', label: 'failure window', kind: 'plain' }],
    ],
  },
  {
    id: 'upgrade',
    title: 'Upgrade',
    question: 'The data plane of one node replaced under load (sidecar: pod by pod; per-host: the node proxy).',
    charts: [
      [{ key: 'upgrade_failed_requests', label: 'failed requests', kind: 'plain' }],
      [{ key: 'upgrade_window_ms', label: 'failure window', kind: 'plain' }],
    ],
  },
  {
    id: 'key-exposure',
    title: 'Key exposure',
    question:
      "How many identities' private keys one data-plane process holds, and what a caller gets by posing as another pod.",
    charts: [[{ key: 'identities_per_process', label: 'identities per data-plane process', kind: 'plain' }]],
  },
];
