// Small DOM and formatting helpers shared by the dashboard's views.
const SVG_NS = 'http://www.w3.org/2000/svg';

/** An HTML element with attributes (on* as listeners) and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children.flat())
    if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

export function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) e.append(c);
  return e;
}

export const fmtRps = (x) => `${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)} rps`;
export const fmtRate = (x) => (x === null || x === undefined ? '–' : `${(x * 100).toFixed(x >= 0.9995 ? 0 : 1)}%`);
export const fmtMs = (x) =>
  x === null || x === undefined
    ? '–'
    : x >= 1000
      ? `${(x / 1000).toFixed(2)} s`
      : x >= 100
        ? `${x.toFixed(0)} ms`
        : x >= 10
          ? `${x.toFixed(1)} ms`
          : `${x.toFixed(2)} ms`;
export const fmtCpu = (x) => (x === undefined || x === null ? '–' : `${Math.round(x * 1000)}m`);
export const fmtBytes = (x) =>
  x >= 1 << 20
    ? `${(x / (1 << 20)).toFixed(1)} MB`
    : x >= 1024
      ? `${(x / 1024).toFixed(1)} kB`
      : `${Math.round(x ?? 0)} B`;
export const fmtMem = (x) => (x === undefined || x === null ? '–' : `${(x / (1 << 20)).toFixed(0)} MiB`);

/** ok ≥ 99%, warn ≥ 95%, bad below, none without requests. */
export function rateClass(x) {
  if (x === null || x === undefined) return 'none';
  return x >= 0.99 ? 'ok' : x >= 0.95 ? 'warn' : 'bad';
}

export function ratePill(x) {
  return el('span', { class: `pill ${rateClass(x)}`, 'data-value': x ?? '' }, fmtRate(x));
}
