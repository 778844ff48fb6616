// Jittered exponential backoff for reconnecting clients: the delay doubles from initialMs to maxMs and
// each delay is randomly shortened by up to `jitter` of itself, so that many clients that lost the same
// server at the same moment do not all come back at the same moment.

export interface JitteredBackoffOptions {
  /** The first delay before randomisation (ms). */
  readonly initialMs?: number;
  /** The delay doubles up to this (ms). */
  readonly maxMs?: number;
  /** The fraction of each delay that is random, from 0 (none) to 1 (full jitter). */
  readonly jitter?: number;
  /** A source of numbers in [0, 1); Math.random unless a test injects one. */
  readonly random?: () => number;
}

export const DEFAULT_JITTERED_BACKOFF = { initialMs: 250, maxMs: 2000, jitter: 0.5 } as const;

export class JitteredBackoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly jitter: number;
  private readonly random: () => number;
  private current: number;

  constructor(opts: JitteredBackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? DEFAULT_JITTERED_BACKOFF.initialMs;
    this.maxMs = opts.maxMs ?? DEFAULT_JITTERED_BACKOFF.maxMs;
    this.jitter = opts.jitter ?? DEFAULT_JITTERED_BACKOFF.jitter;
    this.random = opts.random ?? Math.random;
    if (!(this.initialMs > 0 && this.maxMs >= this.initialMs && this.jitter >= 0 && this.jitter <= 1)) {
      throw new RangeError(
        `backoff: need 0 < initialMs <= maxMs and 0 <= jitter <= 1, got initialMs=${this.initialMs} maxMs=${this.maxMs} jitter=${this.jitter}`,
      );
    }
    this.current = this.initialMs;
  }

  /** The next delay (ms), somewhere in [(1 - jitter) * d, d] where d doubles per call up to maxMs. */
  next(): number {
    const d = this.current;
    this.current = Math.min(this.maxMs, d * 2);
    return d * (1 - this.jitter * this.random());
  }

  /** Back to initialMs, after a success. */
  reset(): void {
    this.current = this.initialMs;
  }
}
