// The one object the HTTP servers hand finished requests to. `active` is the only thing the hot path
// reads when nothing is configured: no event, no JSON, no trace header unless someone observes.
import type { EventSink, RequestEvent } from './event.js';
import type { TapHub } from './tap.js';
import type { Tracer } from './trace.js';
import type { AccessLog } from './access-log.js';

export class Observer {
  /** Some consumer wants events now (a tap session, tracing, the access log). */
  active = false;
  private sinks: EventSink[] = [];

  constructor(
    /** Tracing on: the servers make a span context per request and propagate it. */
    readonly tracer: Tracer | undefined,
    readonly accessLog: AccessLog | undefined,
    private tap: TapHub | undefined = undefined,
  ) {
    this.refresh();
  }

  attachTap(tap: TapHub): void {
    this.tap = tap;
    this.refresh();
  }

  /** Recomputes `active` and the sinks (a tap session started or ended). */
  refresh(): void {
    const sinks: EventSink[] = [];
    if (this.tracer !== undefined) sinks.push(this.tracer);
    if (this.accessLog !== undefined) sinks.push(this.accessLog);
    if (this.tap !== undefined && this.tap.size > 0) sinks.push(this.tap);
    this.sinks = sinks;
    this.active = sinks.length > 0;
  }

  emit(ev: RequestEvent): void {
    for (const s of this.sinks) s.emit(ev);
  }
}

/** No observer: what tests and benchmarks that build contexts by hand get. */
export const NO_OBSERVER = new Observer(undefined, undefined);
