// Axis scales for the report's charts: a linear scale with "nice" ticks that always includes zero
// (bars and lines start from an honest baseline), a decade log scale for positive values spanning
// orders of magnitude, and a point scale for the pods-per-node steps. Nulls are left out; no values,
// all zeros or a single value still give a usable axis.

export interface Scale {
  readonly kind: 'linear' | 'log';
  /** The domain the axis covers (lo < hi). */
  readonly lo: number;
  readonly hi: number;
  readonly ticks: readonly number[];
  /** Maps a value to 0..1 along the axis (0 at lo). */
  map(v: number): number;
  /** A tick's label (as many decimals as the step needs). */
  tickLabel(v: number): string;
}

/** Values whose largest is at least this many times the smallest (all positive) get a log scale. */
export const LOG_RATIO = 100;

function finite(values: readonly (number | null)[]): number[] {
  return values.filter((v): v is number => v !== null && Number.isFinite(v));
}

/** A step of 1, 2, 2.5 or 5 times a power of ten near span/count. */
export function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  const nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
  return nice * p;
}

function decimalsOf(step: number): number {
  if (step >= 1 && Number.isInteger(step)) return 0;
  // The smallest number of decimals that writes the step exactly (2.5e-3 → 4).
  for (let d = 0; d < 12; d++) if (Math.abs(Number(step.toFixed(d)) - step) < step * 1e-9) return d;
  return 12;
}

function labelWith(decimals: number): (v: number) => string {
  return (v) => {
    const s = v.toFixed(decimals);
    if (Number(s) === 0) return '0';
    const [int = '0', frac] = s.split('.');
    return int.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (frac === undefined ? '' : `.${frac}`);
  };
}

/** A linear scale from min(0, values) to max(0, values) with about `count` nice ticks. */
export function linearScale(values: readonly (number | null)[], count = 5): Scale {
  const vs = finite(values);
  let min = Math.min(0, ...vs);
  let max = Math.max(0, ...vs);
  // No values, all zeros, or values so close to zero (under 1e-6) that they are noise: 0..1.
  if (max - min < 1e-6) {
    min = 0;
    max = 1;
  }
  const step = niceStep(max - min, count);
  min = Math.floor(min / step + 1e-9) * step;
  max = Math.ceil(max / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let i = 0; min + i * step <= max + step * 1e-9; i++) ticks.push(roundTo(min + i * step, step));
  const lo = ticks[0] ?? min;
  const hi = ticks[ticks.length - 1] ?? max;
  return { kind: 'linear', lo, hi, ticks, map: (v) => (v - lo) / (hi - lo), tickLabel: labelWith(decimalsOf(step)) };
}

function roundTo(v: number, step: number): number {
  const d = decimalsOf(step);
  return Number(v.toFixed(d));
}

/** A log scale over whole decades covering the (positive) values. */
export function logScale(values: readonly (number | null)[]): Scale {
  const vs = finite(values).filter((v) => v > 0);
  if (vs.length === 0) return linearScale([]);
  const loExp = Math.floor(Math.log10(Math.min(...vs)) + 1e-9);
  let hiExp = Math.ceil(Math.log10(Math.max(...vs)) - 1e-9);
  if (hiExp === loExp) hiExp++;
  const ticks: number[] = [];
  for (let e = loExp; e <= hiExp; e++) ticks.push(Number((10 ** e).toPrecision(12)));
  const lo = 10 ** loExp;
  const hi = 10 ** hiExp;
  return {
    kind: 'log',
    lo,
    hi,
    ticks,
    map: (v) => (v <= 0 ? 0 : (Math.log10(v) - loExp) / (hiExp - loExp)),
    tickLabel: (v) => labelWith(Math.max(0, -Math.round(Math.log10(v))))(v),
  };
}

/** The scale a chart of these values should use: log when every value is positive and they span at
 *  least LOG_RATIO (a linear axis would flatten the small ones to nothing), otherwise linear from 0. */
export function autoScale(values: readonly (number | null)[], count = 5): Scale {
  const vs = finite(values);
  if (vs.length >= 2 && vs.every((v) => v > 0) && Math.max(...vs) / Math.min(...vs) >= LOG_RATIO) return logScale(vs);
  return linearScale(vs, count);
}

/** Evenly spaced positions (0..1) for `n` categories or steps; a single one sits in the middle. */
export function pointPositions(n: number): number[] {
  if (n <= 0) return [];
  if (n === 1) return [0.5];
  return Array.from({ length: n }, (_, i) => i / (n - 1));
}
