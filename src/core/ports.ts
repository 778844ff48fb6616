// Port lists as written in outrigger's annotations (`25,587,3306-3310`): parsing with a precise
// message for each mistake, membership, and the canonical text form.

/** An inclusive range of TCP ports; a single port has `from === to`. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** Sorted, non-overlapping, non-adjacent ranges. */
export type PortList = readonly PortRange[];

export type PortListResult = { ok: true; ports: PortList } | { ok: false; message: string };

const FORMAT_HINT = 'a comma-separated list of ports and ranges like 25,587,3306-3310';

function parsePort(text: string): number | string {
  if (!/^[0-9]+$/.test(text)) return `"${text}" is not a port number (expected ${FORMAT_HINT})`;
  const n = Number(text);
  if (n < 1 || n > 65535) return `port ${text} is out of range 1 to 65535`;
  return n;
}

/** Parses `25, 587,3306-3310`; whitespace around items is allowed, an empty string is an empty list. */
export function parsePortList(text: string): PortListResult {
  if (text.trim() === '') return { ok: true, ports: [] };
  const ranges: PortRange[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') return { ok: false, message: `empty item in "${text}" (expected ${FORMAT_HINT})` };
    const dash = item.indexOf('-');
    const fromText = dash === -1 ? item : item.slice(0, dash).trim();
    const toText = dash === -1 ? item : item.slice(dash + 1).trim();
    const from = parsePort(fromText);
    if (typeof from === 'string') return { ok: false, message: `${from} in "${text}"` };
    const to = parsePort(toText);
    if (typeof to === 'string') return { ok: false, message: `${to} in "${text}"` };
    if (from > to) return { ok: false, message: `range ${item} starts after it ends in "${text}"` };
    ranges.push({ from, to });
  }
  return { ok: true, ports: normalizePortList(ranges) };
}

/** Sorts and merges overlapping or adjacent ranges. */
export function normalizePortList(ranges: readonly PortRange[]): PortList {
  const sorted = [...ranges].sort((a, b) => a.from - b.from);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.from <= last.to + 1)
      out[out.length - 1] = { from: last.from, to: Math.max(last.to, r.to) };
    else out.push({ from: r.from, to: r.to });
  }
  return out;
}

export function portListHas(list: PortList, port: number): boolean {
  return list.some((r) => port >= r.from && port <= r.to);
}

/** The canonical text form: `25,587,3306-3310`. */
export function formatPortList(list: PortList): string {
  return list.map((r) => (r.from === r.to ? String(r.from) : `${r.from}-${r.to}`)).join(',');
}
