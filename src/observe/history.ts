// A bounded in-memory history of every proxy's metrics: per pod, the series it exports (interned once)
// and, per scrape, one array of their values. Windows such as `-t 1m` are the difference between the
// newest scrape and the one at the window's start; nothing older than the retention is kept.
import type { Sample } from './prom-text.js';

export interface Series {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

interface Scrape {
  /** When it was taken (ms since the epoch). */
  readonly ts: number;
  /** Per series slot; NaN where the series was absent in this scrape. */
  readonly values: Float64Array;
}

/** What one pod's series did over a window: counters as increases, gauges as their newest value. */
export interface PodWindow {
  /** Seconds between the two scrapes the increases come from (0 with a single scrape). */
  readonly spanSec: number;
  readonly newestTs: number;
  /** Each series with its increase over the window (counters, reset-aware) and its newest value. */
  readonly series: readonly { readonly s: Series; readonly increase: number; readonly latest: number }[];
}

/** Most series a pod may have before new ones are ignored (the proxy caps its label sets at 4096 per
 *  metric; this keeps a misbehaving target from growing the control process without bound). */
const MAX_SERIES_PER_POD = 50_000;

class PodHistory {
  readonly slots = new Map<string, number>();
  readonly series: Series[] = [];
  readonly scrapes: Scrape[] = [];

  add(ts: number, samples: readonly Sample[]): void {
    const values: number[] = [];
    for (const s of samples) {
      const key = seriesKey(s.name, s.labels);
      let slot = this.slots.get(key);
      if (slot === undefined) {
        if (this.series.length >= MAX_SERIES_PER_POD) continue;
        slot = this.series.length;
        this.series.push({ name: s.name, labels: s.labels });
        this.slots.set(key, slot);
      }
      values[slot] = s.value;
    }
    const arr = new Float64Array(this.series.length).fill(NaN);
    values.forEach((v, i) => (arr[i] = v));
    this.scrapes.push({ ts, values: arr });
  }

  trim(oldest: number): void {
    // Keep one scrape at or before the cut so that a window reaching back to it still has a start.
    while (this.scrapes.length > 2 && (this.scrapes[1] as Scrape).ts <= oldest) this.scrapes.shift();
  }
}

export function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const keys = Object.keys(labels).sort();
  return `${name}{${keys.map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
}

export class MetricsHistory {
  private readonly pods = new Map<string, PodHistory>();

  /** `retentionMs`: how far back windows may reach (default 15 minutes). */
  constructor(readonly retentionMs = 15 * 60_000) {}

  record(pod: string, ts: number, samples: readonly Sample[]): void {
    let h = this.pods.get(pod);
    if (h === undefined) this.pods.set(pod, (h = new PodHistory()));
    h.add(ts, samples);
    h.trim(ts - this.retentionMs);
  }

  /** Forgets the pods not in `keep` (removed from the mesh). */
  retain(keep: ReadonlySet<string>): void {
    for (const k of this.pods.keys()) if (!keep.has(k)) this.pods.delete(k);
  }

  /** A pod's series over the window ending at its newest scrape and starting at the newest scrape at
   *  or before `now - windowMs` (or its oldest, when the history is shorter). */
  window(pod: string, now: number, windowMs: number): PodWindow | undefined {
    const h = this.pods.get(pod);
    const last = h?.scrapes[h.scrapes.length - 1];
    if (h === undefined || last === undefined) return undefined;
    const start = now - windowMs;
    let first = h.scrapes[0] as Scrape;
    for (const s of h.scrapes) {
      if (s.ts <= start) first = s;
      else break;
    }
    const series = h.series.map((s, i) => {
      const a = first.values[i] ?? NaN;
      const b = last.values[i] ?? NaN;
      let increase = 0;
      if (!Number.isNaN(b)) {
        if (Number.isNaN(a))
          increase = first === last ? 0 : b; // appeared within the window
        else increase = b >= a ? b - a : b; // a counter reset (the proxy restarted)
      }
      return { s, increase, latest: b };
    });
    return { spanSec: (last.ts - first.ts) / 1000, newestTs: last.ts, series };
  }

  /** How far back the history reaches now (seconds), over all pods. */
  depthSec(now: number): number {
    let oldest = now;
    for (const h of this.pods.values()) oldest = Math.min(oldest, h.scrapes[0]?.ts ?? now);
    return (now - oldest) / 1000;
  }
}
