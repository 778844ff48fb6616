// Scrapes every meshed pod's proxy admin /metrics (podIP:4191, reachable from the host over the pod
// bridge) on an interval into a MetricsHistory, keeping only the series the aggregation reads. One
// scrape round at a time; a proxy that does not answer is noted (and its history simply has a gap).
import { MetricsHistory } from './history.js';
import { parsePrometheusText } from './prom-text.js';
import { OBSERVED_METRICS } from './stats.js';

export interface ScrapeTarget {
  /** `namespace/name` of the pod. */
  readonly key: string;
  /** The proxy's metrics URL, e.g. http://10.244.0.5:4191/metrics. */
  readonly url: string;
}

export interface ScraperOptions {
  readonly history: MetricsHistory;
  /** Between scrape rounds (ms). */
  readonly intervalMs: number;
  /** Per scrape (ms, default 2 s). */
  readonly timeoutMs?: number;
  /** The pods to scrape now (asked before every round). */
  targets(): readonly ScrapeTarget[];
}

export class MetricsScraper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly lastErrors = new Map<string, string>();
  private stopped = false;

  constructor(private readonly o: ScraperOptions) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.round().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.timer = setTimeout(tick, this.o.intervalMs);
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
  }

  /** `namespace/pod` → why its last scrape failed (only pods whose last scrape failed). */
  errors(): Record<string, string> {
    return Object.fromEntries(this.lastErrors);
  }

  /** One round over every target, in parallel. */
  async round(): Promise<void> {
    const targets = this.o.targets();
    this.o.history.retain(new Set(targets.map((t) => t.key)));
    for (const k of this.lastErrors.keys()) if (!targets.some((t) => t.key === k)) this.lastErrors.delete(k);
    await Promise.all(
      targets.map(async (t) => {
        try {
          const res = await fetch(t.url, { signal: AbortSignal.timeout(this.o.timeoutMs ?? 2000) });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          const text = await res.text();
          this.o.history.record(
            t.key,
            Date.now(),
            parsePrometheusText(text, (n) => OBSERVED_METRICS.has(n)),
          );
          this.lastErrors.delete(t.key);
        } catch (err) {
          this.lastErrors.set(t.key, `${t.url}: ${(err as Error).message}`);
        }
      }),
    );
  }
}
