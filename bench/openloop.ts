// The pure core of the fixed-rate (open-loop) load generator, wrk2's method: request j has an intended
// send time t0 + j/rate on a fixed schedule, whatever happened to the requests before it, and its latency
// is measured from that intended time to the end of its response. A server that stalls for a second
// therefore shows a second of latency on every request that was due during the stall (the requests a
// closed-loop client would simply not have sent: "coordinated omission"), not on one request only.
//
// Requests go round-robin over keep-alive HTTP/1.1 connections (j on connection j mod C), one in flight
// per connection, as wrk2 does. A request whose time comes while its connection still waits for the
// previous response is sent the moment that response ends, and still timed from its intended time.
// The clock is handed in (ns since t0), and so is the socket write: every rule here is tested without a
// network (bench/openloop.test.ts); bench/loadgen.ts drives it with real sockets.
import { Histogram } from './histogram.js';

/** When request `j` is meant to be sent, in ns after t0. */
export function intendedNs(j: number, rate: number): number {
  return Math.round((j * 1e9) / rate);
}

/** How many requests a run of `durationS` at `rate` holds (those meant for [t0, t0 + duration)). */
export function scheduledCount(rate: number, durationS: number): number {
  return Math.max(1, Math.ceil(rate * durationS - 1e-9));
}

export interface OpenLoopOptions {
  /** Requests per second. */
  readonly rate: number;
  readonly connections: number;
  /** Requests in the run (scheduledCount). */
  readonly count: number;
  /** ns after t0 when the measured window ends (sends and answers after it are still timed, but the
   *  achieved rates count only those inside). */
  readonly windowNs: number;
  /** Writes one request on connection `conn`. */
  readonly send: (conn: number) => void;
}

/** The figures of a run, as the generator reports them. */
export interface OpenLoopStats {
  scheduled: number;
  sent: number;
  /** Answers received (any status). */
  completed: number;
  /** Answers that were not 2xx. */
  statusErrors: number;
  /** Requests lost with their connection (never answered). */
  connectionErrors: number;
  sentInWindow: number;
  completedInWindow: number;
  /** Sends that had to wait for the previous answer on their connection (their time came while it
   *  was busy): the system under test was behind, not the generator. */
  queuedSends: number;
  /** The most requests that were due and not yet sent on one connection at once. */
  maxBacklog: number;
}

export class OpenLoop {
  /** From the intended send time to the end of the answer: the latency the bench reports. */
  readonly latency = new Histogram();
  /** From the actual send to the end of the answer: what a closed-loop client (wrk) would report. */
  readonly serviceTime = new Histogram();
  /** Actual send - intended send, for sends made when due on an idle connection: the generator's own
   *  lateness (timer wake-up, its event loop). Sends queued behind a slow answer are not in it. */
  readonly lag = new Histogram();
  readonly stats: OpenLoopStats;
  /** Requests [0, due) are due. */
  private due = 0;
  private readonly nextSend: Float64Array;
  private readonly inFlight: Float64Array;
  private readonly sentAt: Float64Array;
  private readonly up: Uint8Array;

  constructor(private readonly o: OpenLoopOptions) {
    if (!(o.rate > 0) || !Number.isInteger(o.connections) || o.connections < 1)
      throw new Error('open loop: rate > 0 and connections >= 1');
    const c = o.connections;
    this.nextSend = Float64Array.from({ length: c }, (_, i) => i);
    this.inFlight = new Float64Array(c).fill(-1);
    this.sentAt = new Float64Array(c);
    this.up = new Uint8Array(c);
    this.stats = {
      scheduled: o.count,
      sent: 0,
      completed: 0,
      statusErrors: 0,
      connectionErrors: 0,
      sentInWindow: 0,
      completedInWindow: 0,
      queuedSends: 0,
      maxBacklog: 0,
    };
  }

  /** When the next request not yet due is meant to go (ns after t0), or undefined when all are due. */
  nextDueNs(): number | undefined {
    return this.due < this.o.count ? intendedNs(this.due, this.o.rate) : undefined;
  }

  /** Every request whose time has come by `now` is due; those whose connection is idle go now. */
  tick(now: number): void {
    const from = this.due;
    while (this.due < this.o.count && intendedNs(this.due, this.o.rate) <= now) this.due++;
    for (let j = from; j < this.due; j++) {
      const c = j % this.o.connections;
      if (this.up[c] === 1 && this.inFlight[c] === -1 && this.nextSend[c] === j) this.sendOn(c, now, false);
    }
  }

  /** Connection `c` is open (again): it takes over its due requests. */
  connected(c: number, now: number): void {
    this.up[c] = 1;
    this.sendQueued(c, now);
  }

  /** The answer on `c` ended at `now` with `status`. */
  answered(c: number, now: number, status: number): void {
    const j = this.inFlight[c] ?? -1;
    if (j < 0) throw new Error(`open loop: an answer on connection ${c} with no request in flight`);
    this.latency.record(now - intendedNs(j, this.o.rate));
    this.serviceTime.record(now - (this.sentAt[c] ?? now));
    this.stats.completed++;
    if (now <= this.o.windowNs) this.stats.completedInWindow++;
    if (status < 200 || status > 299) this.stats.statusErrors++;
    this.inFlight[c] = -1;
    this.sendQueued(c, now);
  }

  /** Connection `c` is gone; its request in flight (if any) is lost. */
  failed(c: number): void {
    this.up[c] = 0;
    if ((this.inFlight[c] ?? -1) >= 0) {
      this.stats.connectionErrors++;
      this.inFlight[c] = -1;
    }
  }

  /** Every request has been answered or lost. */
  finished(): boolean {
    return this.stats.completed + this.stats.connectionErrors >= this.o.count;
  }

  /** Requests neither answered nor lost (in flight or never sent). */
  outstanding(): number {
    return this.o.count - this.stats.completed - this.stats.connectionErrors;
  }

  private sendQueued(c: number, now: number): void {
    if (this.up[c] === 1 && this.inFlight[c] === -1 && (this.nextSend[c] ?? Infinity) < this.due)
      this.sendOn(c, now, true);
  }

  private sendOn(c: number, now: number, queued: boolean): void {
    const j = this.nextSend[c] ?? 0;
    const backlog = Math.floor((this.due - 1 - j) / this.o.connections) + 1;
    if (backlog > this.stats.maxBacklog) this.stats.maxBacklog = backlog;
    this.inFlight[c] = j;
    this.sentAt[c] = now;
    this.nextSend[c] = j + this.o.connections;
    this.stats.sent++;
    if (now <= this.o.windowNs) this.stats.sentInWindow++;
    if (queued) this.stats.queuedSends++;
    else this.lag.record(now - intendedNs(j, this.o.rate));
    this.o.send(c);
  }
}

// ---- HTTP/1.1 response framing ----

/** Splits a connection's bytes into responses (Content-Length or chunked bodies) and reports each
 *  one's status as its last byte arrives. Throws on what it cannot frame (then the connection is
 *  dropped): a malformed head, or a body delimited by the connection's end. */
export class ResponseReader {
  private head = Buffer.alloc(0);
  /** 'head': reading a status line and headers; 'body': `remaining` bytes of a Content-Length body;
   *  'size' / 'data' / 'trailer': a chunked body. */
  private state: 'head' | 'body' | 'size' | 'data' | 'trailer' = 'head';
  private remaining = 0;
  private status = 0;
  private line = '';

  /** Feeds bytes; calls `done(status)` for every response that ends in them. */
  feed(chunk: Buffer, done: (status: number) => void): void {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'head': {
          const joined = this.head.length > 0 ? Buffer.concat([this.head, chunk.subarray(i)]) : chunk.subarray(i);
          const end = joined.indexOf('\r\n\r\n');
          if (end === -1) {
            if (joined.length > 65_536) throw new Error('response head longer than 64 KiB');
            this.head = Buffer.from(joined);
            return;
          }
          const consumed = end + 4 - this.head.length; // bytes of `chunk` (from i) that belong to this head
          this.head = Buffer.alloc(0);
          this.startBody(joined.subarray(0, end).toString('latin1'));
          i += consumed;
          // No body: a final answer ends here (a 1xx is an interim one; the final answer follows).
          if (this.state === 'head' && this.status >= 200) done(this.status);
          break;
        }
        case 'body': {
          const take = Math.min(this.remaining, chunk.length - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) {
            this.state = 'head';
            done(this.status);
          }
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, chunk.length - i);
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = 'size';
          break;
        }
        case 'size':
        case 'trailer': {
          const nl = chunk.indexOf(0x0a, i);
          const end = nl === -1 ? chunk.length : nl + 1;
          this.line += chunk.subarray(i, end).toString('latin1');
          i = end;
          if (nl === -1) {
            if (this.line.length > 4096) throw new Error('chunk line longer than 4 KiB');
            break;
          }
          const text = this.line.trim();
          this.line = '';
          if (this.state === 'trailer') {
            if (text === '') {
              this.state = 'head';
              done(this.status);
            }
            break;
          }
          // The CRLF after the previous chunk's data comes here first as an empty line: skip it.
          if (text === '') break;
          const size = parseInt(text.split(';')[0] ?? '', 16);
          if (!Number.isFinite(size) || size < 0) throw new Error(`bad chunk size line ${JSON.stringify(text)}`);
          if (size === 0) this.state = 'trailer';
          else {
            this.state = 'data';
            this.remaining = size;
          }
          break;
        }
      }
    }
  }

  private startBody(head: string): void {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m?.[1]) throw new Error(`bad status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
    this.status = Number(m[1]);
    let length: number | undefined;
    let chunked = false;
    for (const l of lines.slice(1)) {
      const colon = l.indexOf(':');
      if (colon <= 0) continue;
      const name = l.slice(0, colon).trim().toLowerCase();
      const value = l.slice(colon + 1).trim();
      if (name === 'content-length') length = Number(value);
      else if (name === 'transfer-encoding' && /chunked/i.test(value)) chunked = true;
    }
    // RFC 9112 section 6.3: 1xx, 204 and 304 answers have no body; chunked wins over a length.
    if ((this.status >= 100 && this.status < 200) || this.status === 204 || this.status === 304) this.state = 'head';
    else if (chunked) this.state = 'size';
    else if (length !== undefined && Number.isInteger(length) && length >= 0) {
      this.remaining = length;
      this.state = length === 0 ? 'head' : 'body';
    } else throw new Error(`response ${this.status} without a length (a body delimited by the close is not supported)`);
  }
}
