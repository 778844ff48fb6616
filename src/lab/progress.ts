// The progress `outrigger lab` shows while it runs: one line per phase. On a terminal the line is
// redrawn in place (a bar, done/total, elapsed time), at most ten times a second and once a second
// while nothing moves, so the clock keeps going; when the phase ends it is written once more with
// its summary and left standing. Not on a terminal (a log, a pipe, CI) there are no carriage
// returns or escape codes: a line when a phase starts and a line when it is done.

interface Out {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(s: string): boolean;
}

export interface PhaseProgress {
  /** `n` more units done (default 1); never past the total. */
  tick(n?: number): void;
  /** The phase is over; `summary` (a few words) is written after it. A second call does nothing. */
  done(summary?: string): void;
}

const REDRAW_MS = 100;

/** A phase name or summary without the control characters that would break the line (or move the
 *  cursor): each becomes a space. */
function noControls(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ');
}
const CLEAR_LINE = '\r\x1b[2K';

/** Elapsed time as a reader wants it: 4.2 s, 1 m 05 s, 1 h 02 m. */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)} m ${String(whole % 60).padStart(2, '0')} s`;
  return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')} m`;
}

/** A bar of `width` cells for done/total ("#" done, "." to do); total 0 reads as empty until done. */
export function bar(done: number, total: number, width: number): string {
  const filled = total <= 0 ? 0 : Math.min(width, Math.floor((done / total) * width));
  return '#'.repeat(filled) + '.'.repeat(Math.max(0, width - filled));
}

export class Progress {
  private readonly out: Out;
  private readonly tty: boolean;
  private readonly now: () => number;
  private active: { finish(interrupted: boolean): void } | undefined;

  /** `now` is for tests (a clock they control). */
  constructor(out: NodeJS.WriteStream, now: () => number = () => performance.now()) {
    this.out = out;
    this.tty = out.isTTY === true;
    this.now = now;
  }

  /** Starts a phase of `total` units (steps, requests, pods). A phase still running is ended first. */
  phase(name: string, total: number): PhaseProgress {
    this.active?.finish(true);
    const started = this.now();
    const safeName = noControls(name);
    const count = Math.max(0, Math.floor(total));
    let done = 0;
    let over = false;
    let lastDraw = -Infinity;
    let timer: NodeJS.Timeout | undefined;

    const line = (summary?: string): string => {
      const elapsed = formatElapsed(this.now() - started);
      const head = `${safeName} `;
      const tail = ` ${done}/${count} ${elapsed}${summary === undefined || summary === '' ? '' : `  ${summary}`}`;
      const cols = this.out.columns ?? 80;
      const room = cols - 1 - head.length - tail.length - 2;
      const width = Math.max(0, Math.min(30, room));
      const b = width >= 5 ? `[${bar(done, count, width)}]` : '';
      return (head + b + tail).slice(0, Math.max(10, cols - 1));
    };
    const draw = (force: boolean) => {
      const t = this.now();
      if (!force && t - lastDraw < REDRAW_MS) return;
      lastDraw = t;
      this.out.write(CLEAR_LINE + line());
    };
    const finish = (interrupted: boolean, summary?: string) => {
      if (over) return;
      over = true;
      if (timer !== undefined) clearInterval(timer);
      if (this.active === handle) this.active = undefined;
      const elapsed = formatElapsed(this.now() - started);
      const s = noControls(summary ?? '');
      if (this.tty) this.out.write(CLEAR_LINE + line(interrupted ? 'stopped' : s) + '\n');
      else
        this.out.write(
          `${safeName}: ${interrupted ? 'stopped' : 'done'} ${done}/${count} in ${elapsed}${s === '' ? '' : `: ${s}`}\n`,
        );
    };
    const handle = { finish: (interrupted: boolean) => finish(interrupted) };
    this.active = handle;

    if (this.tty) {
      draw(true);
      timer = setInterval(() => draw(true), 1000);
      timer.unref();
    } else {
      this.out.write(`${safeName}: started (${count} to do)\n`);
    }
    return {
      tick: (n = 1) => {
        if (over) return;
        done = Math.min(count, done + Math.max(0, n));
        if (this.tty) draw(done === count);
      },
      done: (summary?: string) => finish(false, summary),
    };
  }
}
