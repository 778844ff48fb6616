// The report's charts, as hand-written inline SVG: lines over the pods-per-node steps and paired bars
// (sidecar beside per-host). Every chart has axes with ticks and a unit, a legend, and values on its
// bars; the two modes differ by colour and by shape (markers, hatching), so a black-and-white print
// still tells them apart. Every number drawn carries data-value (the figure as in the report), and
// every string is escaped.
import type { LabMode } from '../types.js';
import { escapeHtml, formatNumber, NOT_MEASURED } from './format.js';
import { autoScale, pointPositions, type Scale } from './scale.js';

const W = 520;
// The top margin holds the legend (up to two rows) and the unit above the y axis.
const H = 282;
const M = { left: 60, right: 14, top: 52, bottom: 46 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

export const MODE_COLOUR: Record<LabMode, string> = { sidecar: '#1d5fa8', 'per-host': '#c2571a' };

const n = (v: number) => String(Math.round(v * 10) / 10);

/** One line of a line chart: a mode's figure over the steps (null where not measured). */
export interface LineSeries {
  readonly label: string;
  readonly mode: LabMode;
  readonly dashed?: boolean;
  readonly key: string;
  readonly values: readonly (number | null)[];
}

export interface LineChartSpec {
  /** Unique within the document (used for ids). */
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly xLabel: string;
  readonly xs: readonly number[];
  readonly series: readonly LineSeries[];
}

export interface BarGroup {
  readonly label: string;
  readonly key: string;
  /** The value drawn (already in `unit`, e.g. a share as %) per mode, null when not measured. */
  readonly values: Readonly<Record<LabMode, number | null>>;
}

export interface BarChartSpec {
  readonly id: string;
  readonly title: string;
  readonly unit: string;
  readonly groups: readonly BarGroup[];
  /** How a bar's value is written on it. */
  readonly format?: (v: number) => string;
}

function open(id: string, title: string, kind: string): string {
  const t = escapeHtml(title);
  return (
    `<svg class="chart" id="${escapeHtml(id)}" data-chart="${kind}" viewBox="0 0 ${W} ${H}" ` +
    `xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="${escapeHtml(id)}-t">` +
    `<title id="${escapeHtml(id)}-t">${t}</title>`
  );
}

function yAxis(scale: Scale, unit: string): string {
  const parts: string[] = [];
  for (const t of scale.ticks) {
    const y = M.top + PH - scale.map(t) * PH;
    parts.push(
      `<line class="grid" x1="${M.left}" x2="${M.left + PW}" y1="${n(y)}" y2="${n(y)}"/>`,
      `<text class="tick" x="${M.left - 6}" y="${n(y + 4)}" text-anchor="end">${escapeHtml(scale.tickLabel(t))}</text>`,
    );
  }
  const u = escapeHtml(unit) + (scale.kind === 'log' ? ' (log scale)' : '');
  parts.push(
    `<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PH}"/>`,
    `<text class="unit" x="${M.left - 6}" y="${M.top - 8}" text-anchor="start">${u}</text>`,
  );
  return parts.join('');
}

interface LegendItem {
  readonly label: string;
  readonly mode: LabMode;
  readonly dashed?: boolean;
  readonly swatch: 'line' | 'bar' | 'none';
}

function legend(items: readonly LegendItem[], id: string): string {
  // Laid out left to right from the left edge, wrapping to a second row when needed.
  const parts: string[] = [];
  const left = 4;
  let x = left;
  let y = 12;
  for (const it of items) {
    const w = 26 + it.label.length * 7.5 + 12; // room for the phone's larger font too
    if (x + w > W && x > left) {
      x = left;
      y += 14;
    }
    const c = MODE_COLOUR[it.mode];
    if (it.swatch === 'line') {
      parts.push(
        `<line x1="${n(x)}" x2="${n(x + 20)}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="2"${it.dashed === true ? ' stroke-dasharray="5 3"' : ''}/>`,
        marker(it.mode, x + 10, y),
      );
    } else if (it.swatch === 'bar') {
      parts.push(`<rect x="${n(x + 4)}" y="${y - 6}" width="14" height="12" ${barFill(it.mode, id)} stroke="${c}"/>`);
    }
    const tx = it.swatch === 'none' ? x : x + 26;
    parts.push(`<text class="legend" x="${n(tx)}" y="${y + 4}">${escapeHtml(it.label)}</text>`);
    x += w;
  }
  return `<g class="legend">${parts.join('')}</g>`;
}

function marker(mode: LabMode, x: number, y: number, attrs = '', inner = ''): string {
  const c = MODE_COLOUR[mode];
  return mode === 'sidecar'
    ? `<circle cx="${n(x)}" cy="${n(y)}" r="3.5" fill="${c}"${attrs}>${inner}</circle>`
    : `<rect x="${n(x - 3.5)}" y="${n(y - 3.5)}" width="7" height="7" fill="${c}"${attrs}>${inner}</rect>`;
}

function barFill(mode: LabMode, id: string): string {
  return mode === 'sidecar' ? `fill="${MODE_COLOUR.sidecar}"` : `fill="url(#${escapeHtml(id)}-hatch)"`;
}

function hatch(id: string): string {
  const c = MODE_COLOUR['per-host'];
  return (
    `<defs><pattern id="${escapeHtml(id)}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
    `<rect width="6" height="6" fill="#f6dccb"/><line x1="0" y1="0" x2="0" y2="6" stroke="${c}" stroke-width="3"/></pattern></defs>`
  );
}

/** Lines over the pods-per-node steps, one per series, broken where a value is null (a lone value
 *  between nulls is still drawn, as its marker). */
export function lineChart(spec: LineChartSpec): string {
  const scale = autoScale(spec.series.flatMap((s) => s.values));
  const xs = pointPositions(spec.xs.length).map((p) => M.left + 18 + p * (PW - 36));
  const parts: string[] = [open(spec.id, spec.title, 'line'), yAxis(scale, spec.unit)];
  // The x axis: a tick and label per step.
  parts.push(`<line class="axis" x1="${M.left}" x2="${M.left + PW}" y1="${M.top + PH}" y2="${M.top + PH}"/>`);
  spec.xs.forEach((v, i) => {
    const x = xs[i] ?? 0;
    parts.push(
      `<line class="axis" x1="${n(x)}" x2="${n(x)}" y1="${M.top + PH}" y2="${M.top + PH + 5}"/>`,
      `<text class="tick" x="${n(x)}" y="${M.top + PH + 18}" text-anchor="middle">${escapeHtml(formatNumber(v))}</text>`,
    );
  });
  parts.push(
    `<text class="unit" x="${M.left + PW / 2}" y="${H - 6}" text-anchor="middle">${escapeHtml(spec.xLabel)}</text>`,
  );
  const y = (v: number) => M.top + PH - scale.map(v) * PH;
  for (const s of spec.series) {
    const c = MODE_COLOUR[s.mode];
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1)
        parts.push(
          `<polyline fill="none" stroke="${c}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="5 3"' : ''} points="${run.join(' ')}"/>`,
        );
      run = [];
    };
    s.values.forEach((v, i) => {
      if (v === null) return flush();
      run.push(`${n(xs[i] ?? 0)},${n(y(v))}`);
    });
    flush();
    s.values.forEach((v, i) => {
      const attrs = ` data-mode="${s.mode}" data-key="${escapeHtml(s.key)}" data-step="${spec.xs[i] ?? ''}" data-value="${v ?? 'null'}"`;
      const x = xs[i] ?? 0;
      if (v === null) {
        parts.push(
          `<text class="na point" x="${n(x)}" y="${M.top + PH - 4}" text-anchor="middle"${attrs}>×<title>${escapeHtml(`${s.label} at ${spec.xs[i] ?? ''}: ${NOT_MEASURED}`)}</title></text>`,
        );
      } else {
        const tip = `${s.label} at ${spec.xs[i] ?? ''}: ${formatNumber(v)} ${spec.unit}`;
        parts.push(marker(s.mode, x, y(v), ` class="point"${attrs}`, `<title>${escapeHtml(tip)}</title>`));
      }
    });
  }
  const items: LegendItem[] = spec.series.map((s) => ({ ...s, swatch: 'line' as const }));
  if (spec.series.some((s) => s.values.includes(null)))
    items.push({ label: `× ${NOT_MEASURED}`, mode: 'sidecar', swatch: 'none' });
  parts.push(legend(items, spec.id), '</svg>');
  return parts.join('');
}

/** Paired bars: per group a sidecar bar and a per-host bar on one scale, each with its value written
 *  on it ("not measured" where null). */
export function barChart(spec: BarChartSpec): string {
  const fmt = spec.format ?? formatNumber;
  const scale = autoScale(spec.groups.flatMap((g) => [g.values.sidecar, g.values['per-host']]));
  const parts: string[] = [open(spec.id, spec.title, 'bar'), hatch(spec.id), yAxis(scale, spec.unit)];
  const base = scale.kind === 'log' ? scale.lo : Math.min(Math.max(0, scale.lo), scale.hi);
  const y = (v: number) => M.top + PH - Math.min(1, Math.max(0, scale.map(v))) * PH;
  const slot = PW / Math.max(1, spec.groups.length);
  const bw = Math.min(56, slot * 0.32);
  spec.groups.forEach((g, gi) => {
    const cx = M.left + slot * (gi + 0.5);
    (['sidecar', 'per-host'] as const).forEach((mode, mi) => {
      const v = g.values[mode];
      const x = cx + (mi === 0 ? -bw - 2 : 2);
      const attrs = `data-mode="${mode}" data-key="${escapeHtml(g.key)}" data-value="${v ?? 'null'}"`;
      if (v === null) {
        parts.push(
          `<text class="bar na" ${attrs} x="${n(x + bw / 2)}" y="${n(y(base) - 6)}" text-anchor="start" transform="rotate(-90 ${n(x + bw / 2)} ${n(y(base) - 6)})">${NOT_MEASURED}</text>`,
        );
        return;
      }
      const y0 = y(base);
      const y1 = y(v);
      const top = Math.min(y0, y1);
      const h = Math.max(Math.abs(y0 - y1), v === 0 ? 0 : 1); // a non-zero value is at least a hairline
      parts.push(
        `<rect class="bar" ${attrs} x="${n(x)}" y="${n(top)}" width="${n(bw)}" height="${n(h)}" ${barFill(mode, spec.id)} stroke="${MODE_COLOUR[mode]}">` +
          `<title>${escapeHtml(`${g.label}, ${mode}: ${fmt(v)}`)}</title></rect>`,
        `<text class="value" x="${n(x + bw / 2)}" y="${n(v < 0 ? top + h + 12 : top - 4)}" text-anchor="middle">${escapeHtml(fmt(v))}</text>`,
      );
    });
    parts.push(
      `<text class="tick" x="${n(cx)}" y="${M.top + PH + 18}" text-anchor="middle">${escapeHtml(g.label)}</text>`,
    );
  });
  parts.push(`<line class="axis" x1="${M.left}" x2="${M.left + PW}" y1="${n(y(base))}" y2="${n(y(base))}"/>`);
  parts.push(
    legend(
      [
        { label: 'sidecar', mode: 'sidecar', swatch: 'bar' },
        { label: 'per-host', mode: 'per-host', swatch: 'bar' },
      ],
      spec.id,
    ),
    '</svg>',
  );
  return parts.join('');
}
