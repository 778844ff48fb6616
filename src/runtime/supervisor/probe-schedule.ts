// The pure part of readiness probing: when the next probe runs, and how consecutive results turn into
// ready/unready changes (Kubernetes' successThreshold/failureThreshold rule). No timers, no I/O.
import type { Probe } from '../manifests/index.js';

/** A probe's timing in milliseconds (the manifest states seconds). */
export interface ProbeTiming {
  /** From the container's start to the first probe. */
  readonly initialDelayMs: number;
  /** From the start of one probe to the start of the next. */
  readonly periodMs: number;
  /** A probe that has not answered after this fails. */
  readonly timeoutMs: number;
  /** Consecutive successes that make a not-ready container ready. */
  readonly successThreshold: number;
  /** Consecutive failures that make a ready container not ready. */
  readonly failureThreshold: number;
  /** Period used until the container is ready for the first time (a local extension, so that the
   *  proxy is seen ready within a fraction of a second without probing it that often forever). */
  readonly startupPeriodMs?: number;
}

export function probeTiming(
  p: Pick<Probe, 'initialDelaySeconds' | 'periodSeconds' | 'timeoutSeconds' | 'successThreshold' | 'failureThreshold'>,
): ProbeTiming {
  return {
    initialDelayMs: p.initialDelaySeconds * 1000,
    periodMs: p.periodSeconds * 1000,
    timeoutMs: p.timeoutSeconds * 1000,
    successThreshold: p.successThreshold,
    failureThreshold: p.failureThreshold,
  };
}

/** Where a container's readiness stands. A container starts not ready (as in Kubernetes). */
export interface ReadinessState {
  readonly ready: boolean;
  /** Whether the container has been ready since it (re)started. */
  readonly everReady: boolean;
  /** Consecutive successes (when the last result was a success) or failures. */
  readonly successes: number;
  readonly failures: number;
}

export const INITIAL_READINESS: ReadinessState = { ready: false, everReady: false, successes: 0, failures: 0 };

export type ReadinessChange = 'ready' | 'unready' | undefined;

/** Applies one probe result. The threshold counts consecutive results of one kind; a result of the
 *  other kind starts the count again. */
export function applyProbeResult(
  s: ReadinessState,
  ok: boolean,
  t: Pick<ProbeTiming, 'successThreshold' | 'failureThreshold'>,
): { state: ReadinessState; change: ReadinessChange } {
  if (ok) {
    const successes = s.successes + 1;
    const becomesReady = !s.ready && successes >= t.successThreshold;
    return {
      state: { ready: s.ready || becomesReady, everReady: s.everReady || becomesReady, successes, failures: 0 },
      change: becomesReady ? 'ready' : undefined,
    };
  }
  const failures = s.failures + 1;
  const becomesUnready = s.ready && failures >= t.failureThreshold;
  return {
    state: { ready: s.ready && !becomesUnready, everReady: s.everReady, successes: 0, failures },
    change: becomesUnready ? 'unready' : undefined,
  };
}

/** The wait before the next probe, given how long the last one took: probes start every period; one
 *  that took longer than the period is followed at once (never two at the same time). */
export function nextProbeDelay(s: ReadinessState, t: ProbeTiming, lastTookMs: number): number {
  const period = !s.everReady && t.startupPeriodMs !== undefined ? t.startupPeriodMs : t.periodMs;
  return Math.max(0, period - Math.max(0, lastTookMs));
}
