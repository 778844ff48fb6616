// The optional access log: one JSON line per finished request (the tap format without header values),
// to stdout or a file. Off by default. Written through a stream whose buffer is bounded: when the disk or
// the pipe is slower than the traffic, lines are dropped and counted, and the request path never waits.
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { EventSink, RequestEvent } from './event.js';
import { tapEvent } from './tap.js';

/** Bytes waiting to be written at most before lines are dropped. */
const MAX_PENDING_BYTES = 1024 * 1024;

export class AccessLog implements EventSink {
  readonly stats = { lines: 0, dropped: 0 };
  private readonly out: Writable;
  private failed = false;

  /** `target`: "stdout", or a file appended to. */
  constructor(target: string, log: Logger) {
    this.out = target === 'stdout' ? process.stdout : createWriteStream(target, { flags: 'a', mode: 0o600 });
    this.out.on('error', (err: Error) => {
      if (!this.failed) log.warn({ err: err.message }, 'access log: write failed; lines are dropped from now on');
      this.failed = true;
    });
  }

  emit(ev: RequestEvent): void {
    if (this.failed || this.out.writableLength > MAX_PENDING_BYTES) {
      this.stats.dropped++;
      return;
    }
    const line = tapEvent(ev, false);
    const t = ev.trace;
    this.out.write(`${JSON.stringify(t !== undefined ? { ...line, trace_id: t.traceId, span_id: t.spanId } : line)}\n`);
    this.stats.lines++;
  }

  close(): void {
    if (this.out !== process.stdout) this.out.end();
  }
}
