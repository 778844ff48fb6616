// `outrigger lab --html FILE`: the report as one self-contained HTML document. No script, font,
// image or stylesheet is fetched (CSS and SVG are inline, and a Content-Security-Policy forbids any
// load should something slip in); it reads without JavaScript, on a phone's width and printed. The
// findings come first, then the machine and workload, then per phase a chart and a table of both
// modes side by side, the method beside every figure. Every string from the report is escaped.
import type { Figure, LabMode, LabReport, ModeResult, OverheadStep } from '../types.js';
import { LAB_MODES } from '../types.js';
import {
  escapeHtml,
  formatFigure,
  formatNumber,
  formatValue,
  NOT_MEASURED,
  OVERHEAD_FIGURES,
  overheadSteps,
  PHASES,
  type FigureKind,
  type OverheadFigureKey,
} from './format.js';
import { barChart, lineChart, type LineSeries } from './svg.js';

const e = escapeHtml;

function stepOf(mode: ModeResult, podsPerNode: number): OverheadStep | undefined {
  return mode.overhead.find((s) => s.pods_per_node === podsPerNode);
}

/** A table cell for one figure: the value (or "not measured") and, beside it, the method. */
function figureCell(
  f: Figure | undefined,
  mode: LabMode,
  key: string,
  kind: FigureKind,
  showMethod: boolean,
  step?: number,
): string {
  const stepAttr = step === undefined ? '' : ` data-step="${step}"`;
  if (f === undefined)
    return `<td class="fig" data-mode="${mode}" data-key="${e(key)}"${stepAttr} data-value="null"><span class="v na">${NOT_MEASURED}</span><span class="method">this mode has no run at this step</span></td>`;
  const v =
    f.value === null
      ? `<span class="v na">${NOT_MEASURED}</span>`
      : `<span class="v">${e(formatFigure(f, kind))}</span>`;
  const method =
    f.value === null
      ? `<span class="method"><span class="why">why: </span>${e(f.method)}</span>`
      : showMethod
        ? `<span class="method">${e(f.method)}</span>`
        : '';
  return `<td class="fig" data-mode="${mode}" data-key="${e(key)}"${stepAttr} data-value="${f.value ?? 'null'}">${v}${method}</td>`;
}

function head(): string {
  return `<thead><tr><th scope="col">figure</th><th scope="col" class="mode sidecar">sidecar</th><th scope="col" class="mode per-host">per-host</th></tr></thead>`;
}

function mostCommon(xs: readonly string[]): string | undefined {
  const count = new Map<string, number>();
  for (const x of xs) count.set(x, (count.get(x) ?? 0) + 1);
  let best: string | undefined;
  for (const [x, c] of count) if (best === undefined || c > (count.get(best) ?? 0)) best = x;
  return best;
}

function overheadTable(report: LabReport, steps: readonly number[]): string {
  const rows: string[] = [];
  for (const spec of OVERHEAD_FIGURES) {
    // A figure's method is usually the same at every step: written once under the figure's name, and
    // in a cell only where it differs (a null figure always says why).
    const common: Record<LabMode, string | undefined> = { sidecar: undefined, 'per-host': undefined };
    for (const m of LAB_MODES)
      common[m] = mostCommon(
        report.modes[m].overhead
          .map((s) => s[spec.key])
          .filter((f) => f.value !== null)
          .map((f) => f.method),
      );
    const methods =
      common.sidecar === common['per-host']
        ? `<span class="method">${e(common.sidecar ?? '')}</span>`
        : LAB_MODES.map((m) => `<span class="method"><b>${m}:</b> ${e(common[m] ?? '')}</span>`).join('');
    rows.push(`<tr class="group"><th scope="rowgroup" colspan="3">${e(spec.label)}${methods}</th></tr>`);
    for (const step of steps) {
      const cells = LAB_MODES.map((m) => {
        const f = stepOf(report.modes[m], step)?.[spec.key];
        return figureCell(f, m, spec.key, spec.kind, f !== undefined && f.method !== common[m], step);
      });
      rows.push(`<tr><th scope="row" class="step">${formatNumber(step)} pods/node</th>${cells.join('')}</tr>`);
    }
  }
  // The counts beside the figures: what the figures were measured over.
  const counts: { key: 'data_plane_processes' | 'requests' | 'failed_requests'; label: string }[] = [
    { key: 'data_plane_processes', label: 'data-plane processes' },
    { key: 'requests', label: 'requests sent' },
    { key: 'failed_requests', label: 'failed requests' },
  ];
  for (const c of counts) {
    rows.push(
      `<tr class="group"><th scope="rowgroup" colspan="3">${c.label}<span class="method">counted by the lab during the step</span></th></tr>`,
    );
    for (const step of steps) {
      const cells = LAB_MODES.map((m) => {
        const s = stepOf(report.modes[m], step);
        return s === undefined
          ? `<td class="fig" data-mode="${m}" data-key="${c.key}" data-step="${step}" data-value="null"><span class="v na">${NOT_MEASURED}</span></td>`
          : `<td class="fig" data-mode="${m}" data-key="${c.key}" data-step="${step}" data-value="${s[c.key]}"><span class="v">${formatNumber(s[c.key])}</span></td>`;
      });
      rows.push(`<tr><th scope="row" class="step">${formatNumber(step)} pods/node</th>${cells.join('')}</tr>`);
    }
  }
  return `<div class="table"><table class="figures">${head()}<tbody>${rows.join('')}</tbody></table></div>`;
}

function unitOf(report: LabReport, key: OverheadFigureKey, fallback: string): string {
  for (const m of LAB_MODES) for (const s of report.modes[m].overhead) if (s[key].unit !== '') return s[key].unit;
  return fallback;
}

function overheadSection(report: LabReport): string {
  const steps = overheadSteps(report);
  const series = (key: OverheadFigureKey, label: string, dashed = false): LineSeries[] =>
    LAB_MODES.map((m) => ({
      label: `${m} ${label}`.trim(),
      mode: m,
      dashed,
      key,
      values: steps.map((st) => stepOf(report.modes[m], st)?.[key].value ?? null),
    }));
  const chart = (id: string, title: string, key: OverheadFigureKey, fallbackUnit: string, s: LineSeries[]) =>
    `<figure><figcaption>${e(title)}</figcaption>${lineChart({ id, title, unit: unitOf(report, key, fallbackUnit), xLabel: 'pods per node', xs: steps, series: s })}</figure>`;
  const latency = [...series('added_p99_ms', 'p99'), ...series('added_p50_ms', 'p50', true)];
  return (
    `<section id="overhead" class="phase"><h2>Overhead</h2>` +
    `<p class="question">What the data plane adds, at a fixed rate, as pods per node grow: latency over the same pods and load without a proxy, its CPU per request, and its private memory.</p>` +
    `<div class="charts">` +
    chart(
      'chart-added-latency',
      'Added latency (through the data plane minus without it)',
      'added_p99_ms',
      'ms',
      latency,
    ) +
    chart('chart-cpu', 'Data-plane CPU per request', 'cpu_ms_per_request', 'ms', series('cpu_ms_per_request', '')) +
    chart(
      'chart-mem-total',
      'Data-plane private memory, total',
      'data_plane_private_mb_total',
      'MB',
      series('data_plane_private_mb_total', ''),
    ) +
    chart(
      'chart-mem-per-pod',
      'Data-plane private memory per pod',
      'data_plane_private_mb_per_pod',
      'MB',
      series('data_plane_private_mb_per_pod', ''),
    ) +
    `</div>${overheadTable(report, steps)}</section>`
  );
}

function phaseSection(report: LabReport, phase: (typeof PHASES)[number]): string {
  const charts = phase.charts.map((figs, i) => {
    const first = figs[0];
    if (first === undefined) return '';
    const kind = first.kind;
    const unit =
      kind === 'share' ? '%' : (LAB_MODES.map((m) => report.modes[m][first.key].unit).find((u) => u !== '') ?? '');
    const title = figs.length === 1 ? first.label : phase.title;
    const svg = barChart({
      id: `chart-${phase.id}-${i}`,
      title,
      unit,
      format: (v) => (kind === 'share' ? `${formatNumber(v)} %` : formatNumber(v)),
      groups: figs.map((f) => ({
        label: f.label,
        key: f.key,
        values: {
          sidecar: scaled(report.modes.sidecar[f.key].value, kind),
          'per-host': scaled(report.modes['per-host'][f.key].value, kind),
        },
      })),
    });
    return `<figure><figcaption>${e(title)}</figcaption>${svg}</figure>`;
  });
  const rows = phase.charts
    .flat()
    .map(
      (f) =>
        `<tr><th scope="row">${e(f.label)}</th>${LAB_MODES.map((m) => figureCell(report.modes[m][f.key], m, f.key, f.kind, true)).join('')}</tr>`,
    );
  if (phase.id === 'key-exposure')
    rows.push(
      `<tr><th scope="row">confused deputy: a connection from one pod with another pod's address</th>${LAB_MODES.map((m) => deputyCell(report.modes[m])).join('')}</tr>`,
    );
  const statement = phase.id === 'key-exposure' ? deputyStatement(report) : '';
  return (
    `<section id="${phase.id}" class="phase"><h2>${e(phase.title)}</h2><p class="question">${e(phase.question)}</p>` +
    statement +
    `<div class="charts${charts.length === 1 ? ' single' : ''}">${charts.join('')}</div>` +
    `<div class="table"><table class="figures">${head()}<tbody>${rows.join('')}</tbody></table></div></section>`
  );
}

function scaled(v: number | null, kind: FigureKind): number | null {
  return v === null || kind !== 'share' ? v : Math.round(v * 1000) / 10;
}

function deputyVerdict(r: ModeResult): { cls: string; text: string } {
  const d = r.confused_deputy;
  if (!d.attempted) return { cls: 'na', text: 'not attempted' };
  return d.refused ? { cls: 'ok', text: 'refused' } : { cls: 'bad', text: 'NOT refused' };
}

function deputyCell(r: ModeResult): string {
  const v = deputyVerdict(r);
  return `<td class="fig deputy" data-mode="${r.mode}" data-key="confused_deputy" data-value="${v.text}"><span class="v ${v.cls}">${v.text}</span><span class="method">${e(r.confused_deputy.detail)}</span></td>`;
}

/** Key exposure and the confused-deputy attempt as plain sentences. */
function deputyStatement(report: LabReport): string {
  const items = LAB_MODES.map((m) => {
    const r = report.modes[m];
    const ids = r.identities_per_process;
    const keys =
      ids.value === null
        ? `the identities one process holds were ${NOT_MEASURED} (${e(ids.method)})`
        : `one data-plane process holds the private keys of ${e(formatValue(ids.value, ''))} ${ids.value === 1 ? 'identity' : 'identities'}`;
    const d = r.confused_deputy;
    const attempt = !d.attempted
      ? 'the confused-deputy connection was not attempted'
      : d.refused
        ? 'a connection from one pod posing as another was refused'
        : '<strong>a connection from one pod posing as another was NOT refused</strong>';
    return `<li class="statement ${deputyVerdict(r).cls}"><b>${m}:</b> ${keys}; ${attempt}: ${e(d.detail)}</li>`;
  });
  return `<ul class="statements">${items.join('')}</ul>`;
}

function machineSection(report: LabReport): string {
  const mc = report.machine;
  const w = report.workload;
  const dl = (rows: [string, string][]) =>
    `<dl>${rows.map(([k, v]) => `<div><dt>${e(k)}</dt><dd>${e(v)}</dd></div>`).join('')}</dl>`;
  return (
    `<section id="machine"><h2>Machine and workload</h2><div class="cols"><div><h3>Machine</h3>` +
    dl([
      ['CPUs', `${formatNumber(mc.cpus)} × ${mc.cpu_model}`],
      ['memory', `${formatNumber(mc.memory_gb)} GB`],
      ['kernel', mc.kernel],
      ['Node.js', mc.node],
      ['cgroups', mc.cgroup],
    ]) +
    `</div><div><h3>Workload</h3>` +
    dl([
      ['nodes', formatNumber(w.nodes)],
      ['pods per node', w.pods_per_node_steps.map(formatNumber).join(', ')],
      ['rate', `${formatNumber(w.rate_rps)} requests/s`],
      ['duration', `${formatNumber(w.duration_s)} s per measurement`],
      ['what runs', w.description],
    ]) +
    `</div></div></section>`
  );
}

const CSS = `
:root{color-scheme:light;--side:#1d5fa8;--host:#c2571a;--muted:#555;--line:#ddd}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#fff;margin:0 auto;max-width:64rem;padding:1rem}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.25rem;margin:2rem 0 .4rem;border-bottom:2px solid var(--line);padding-bottom:.2rem}h3{font-size:1rem;margin:.6rem 0 .3rem}
p,li,dd,td,th{overflow-wrap:anywhere}
.meta{color:var(--muted);margin:.2rem 0}.meta span{white-space:nowrap}
.question{color:var(--muted);margin:.2rem 0 .8rem}
#findings ul{padding-left:1.2rem}#findings li{margin:.3rem 0}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,20rem),1fr));gap:0 2rem}
dl{margin:0}dl div{display:flex;gap:.8rem;border-bottom:1px solid #eee;padding:.15rem 0}dt{flex:0 0 8rem;color:var(--muted)}dd{margin:0;flex:1}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,24rem),1fr));gap:1rem}
.charts.single{grid-template-columns:minmax(0,32rem)}
figure{margin:0;break-inside:avoid}figcaption{font-weight:600;font-size:.9rem;margin-bottom:.2rem}
svg.chart{width:100%;height:auto;display:block;overflow:visible}
svg .grid{stroke:#e6e6e6}svg .axis{stroke:#333}
svg text{font-family:inherit;fill:#222}svg .tick{font-size:11px}svg .unit{font-size:11px;fill:var(--muted)}svg .legend{font-size:11px}
svg .value{font-size:11px;font-weight:600}svg .na{font-size:10px;fill:var(--muted)}
.table{overflow-x:auto;margin-top:.8rem}
table.figures{border-collapse:collapse;width:100%;font-size:.9rem}
table.figures th,table.figures td{border-bottom:1px solid var(--line);padding:.3rem .4rem;text-align:left;vertical-align:top}
table.figures thead th{border-bottom:2px solid #999}
th.mode.sidecar{color:var(--side)}th.mode.per-host{color:var(--host)}
tr.group th{background:#f4f4f4;padding-top:.5rem}th.step{font-weight:400;padding-left:1rem;white-space:nowrap}
td.fig{width:38%}
.v{font-weight:600;font-variant-numeric:tabular-nums}.v.na{font-weight:400;font-style:italic;color:var(--muted)}
.method{display:block;font-size:.78rem;color:var(--muted);font-weight:400}
.v.ok{color:#17692b}.v.bad,.statement.bad{color:#a31515}
.statements{padding-left:1.2rem}
footer{margin-top:2rem;color:var(--muted);font-size:.85rem}
@media (max-width:32rem){body{padding:.6rem}svg .tick,svg .unit,svg .legend,svg .value{font-size:14px}svg .na{font-size:13px}dt{flex-basis:6rem}}
@media print{body{max-width:none;font-size:11pt;padding:0}h2{break-after:avoid}tr,figure{break-inside:avoid}.table{overflow:visible}}
`;

/** An ISO time as "2026-12-03 18:02:11 UTC"; anything else as it is. */
export function readableTime(iso: string): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : `${new Date(t).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** How long the run took, from its two times ("39 m 46 s"); unknown when either is not a time. */
export function took(startedAt: string, finishedAt: string): string {
  const ms = Date.parse(finishedAt) - Date.parse(startedAt);
  if (!Number.isFinite(ms) || ms < 0) return `until ${finishedAt}`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} m`;
}

/** The whole report as one HTML document (UTF-8). */
export function renderLabHtml(report: LabReport): string {
  const findings =
    report.findings.length === 0
      ? '<p class="meta">The run recorded no findings.</p>'
      : `<ul>${report.findings.map((f) => `<li>${e(f)}</li>`).join('')}</ul>`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
    '<title>Outrigger lab: sidecar and per-host data planes, measured</title>',
    `<style>${CSS}</style></head><body>`,
    '<header><h1>Outrigger lab: sidecar and per-host data planes, measured</h1>',
    `<p class="meta"><span>Outrigger ${e(report.version)}</span> · <span>started ${e(readableTime(report.started_at))}</span> · ` +
      `<span>took ${e(took(report.started_at, report.finished_at))}</span>` +
      (report.quick ? ' · <strong>quick run</strong> (shorter measurements, fewer steps: rougher figures)' : '') +
      '</p></header>',
    `<section id="findings"><h2>Findings</h2>${findings}</section>`,
    machineSection(report),
    overheadSection(report),
    ...PHASES.map((p) => phaseSection(report, p)),
    '<footer>Written by <code>outrigger lab</code>; the same figures, with their methods, are in its JSON output (<code>--json FILE</code>).</footer>',
    '</body></html>',
    '',
  ].join('\n');
}
