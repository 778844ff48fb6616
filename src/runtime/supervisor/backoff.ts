// When a container that exited is started again: the restart policy's decision, and the exponential
// backoff between restarts (like the kubelet's CrashLoopBackOff, with shorter times for a laptop).
import type { RestartPolicy } from '../manifests/index.js';

export interface BackoffOptions {
  /** Delay before the first restart (ms). */
  readonly initialMs?: number;
  /** The delay doubles after each restart up to this (ms). */
  readonly maxMs?: number;
  /** A run at least this long counts as healthy: the next delay starts from `initialMs` again (ms). */
  readonly resetAfterMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { initialMs: 1000, maxMs: 30_000, resetAfterMs: 10_000 };

/** Exponential backoff: initialMs, doubling to maxMs, back to initialMs after a run of resetAfterMs. */
export class Backoff {
  private readonly opts: Required<BackoffOptions>;
  private current: number;

  constructor(opts: BackoffOptions = {}) {
    this.opts = { ...DEFAULT_BACKOFF, ...opts };
    if (!(this.opts.initialMs >= 0 && this.opts.maxMs >= this.opts.initialMs && this.opts.resetAfterMs >= 0)) {
      throw new RangeError(
        `backoff: need 0 <= initialMs <= maxMs and resetAfterMs >= 0, got ${JSON.stringify(this.opts)}`,
      );
    }
    this.current = this.opts.initialMs;
  }

  /** The delay before restarting a process that ran for `ranMs`, and advances the backoff. */
  next(ranMs: number): number {
    if (ranMs >= this.opts.resetAfterMs) this.current = this.opts.initialMs;
    const delay = this.current;
    this.current = Math.min(this.opts.maxMs, Math.max(1, this.current * 2));
    return delay;
  }

  reset(): void {
    this.current = this.opts.initialMs;
  }
}

/** How a process ended: an exit code, or the signal that killed it (then `code` is null). */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export function exitedCleanly(e: ExitStatus): boolean {
  return e.code === 0 && e.signal === null;
}

/** Kubernetes' rule: Always restarts whatever happened, OnFailure only after a failure (a non-zero
 *  code, a signal, or a start that failed), Never never. */
export function shouldRestart(policy: RestartPolicy, e: ExitStatus): boolean {
  switch (policy) {
    case 'Always':
      return true;
    case 'OnFailure':
      return !exitedCleanly(e);
    case 'Never':
      return false;
  }
}
