// Retries: which failed attempts a route retries (its policy, from retry.outrigger.io annotations via
// the destination API) and the retry budget that keeps retries from turning an outage into a storm.
// The budget is Finagle's and Linkerd's: retries may add at most `ratio` (20%) of the requests seen
// over the last `ttlMs` (10 s), plus a reserve of `minPerSecond` (10) per second of that window, so a
// quiet client can still retry. Pure: time is injected.
import type { Retry } from '../../api/destination.js';

/** Why an attempt ended without a usable response. */
export type FailureKind = 'connect-failure' | 'reset' | 'timeout';

export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly attempts: number;
  /** Index: HTTP status; 1 when retried. */
  readonly statuses: Uint8Array;
  /** Bit n set: gRPC status n is retried. */
  readonly grpcCodes: number;
  readonly connectFailure: boolean;
  readonly reset: boolean;
  readonly timeout: boolean;
}

/** The largest request body the proxy keeps to replay (bytes); a larger one is never retried. */
export const MAX_RETRY_BODY_BYTES = 64 * 1024;

export function compileRetry(r: Retry): RetryPolicy {
  const statuses = new Uint8Array(600);
  for (const { from, to } of r.statuses) for (let s = Math.max(100, from); s <= Math.min(599, to); s++) statuses[s] = 1;
  let grpcCodes = 0;
  for (const c of r.grpc_codes) if (c > 0 && c < 31) grpcCodes |= 1 << c;
  return {
    attempts: r.attempts,
    statuses,
    grpcCodes,
    connectFailure: r.connect_failure,
    reset: r.reset,
    timeout: r.timeout,
  };
}

/** Whether a response may be retried: its gRPC status when it has one (a trailers-only response,
 *  the only gRPC failure a proxy can see before forwarding anything), else its HTTP status. */
export function retryableResponse(p: RetryPolicy, status: number, grpcStatus?: number): boolean {
  if (grpcStatus !== undefined) return grpcStatus > 0 && grpcStatus < 31 && (p.grpcCodes & (1 << grpcStatus)) !== 0;
  return status >= 0 && status < 600 && p.statuses[status] === 1;
}

export function retryableFailure(p: RetryPolicy, kind: FailureKind): boolean {
  return kind === 'connect-failure' ? p.connectFailure : kind === 'reset' ? p.reset : p.timeout;
}

/** RFC 9110 section 9.2.2. */
export function isIdempotent(method: string): boolean {
  return (
    method === 'GET' ||
    method === 'HEAD' ||
    method === 'OPTIONS' ||
    method === 'TRACE' ||
    method === 'PUT' ||
    method === 'DELETE'
  );
}

export interface RetryQuestion {
  /** Undefined: the route has no retries. */
  readonly policy: RetryPolicy | undefined;
  /** Retries already made for this request. */
  readonly retries: number;
  /** What ended the attempt: a response (status, and grpc-status when present) or a failure. */
  readonly outcome: { readonly status: number; readonly grpcStatus?: number } | FailureKind;
  /** The whole request body is in the replay buffer (a body over MAX_RETRY_BODY_BYTES is not). */
  readonly replayable: boolean;
  /** The request is idempotent (isIdempotent(method); gRPC callers pass true, since a GRPCRoute that
   *  lists `reset` opts in). Only a connect failure, where nothing was sent, ignores this. */
  readonly idempotent: boolean;
  /** The client went away: its answer would go nowhere. */
  readonly clientGone: boolean;
  /** ms left of the route's request timeout; Infinity when there is none. */
  readonly remainingMs: number;
}

export type RetryDecision =
  | 'retry'
  | 'no-policy'
  | 'not-retryable'
  | 'not-idempotent'
  | 'attempts-exhausted'
  | 'not-replayable'
  | 'client-gone'
  | 'deadline'
  | 'budget-exhausted';

/** Whether to retry; anything but 'retry' is the reason not to (a metric label). The budget is
 *  consulted last, so a token is spent only on a retry that happens. */
export function decideRetry(q: RetryQuestion, budget: RetryBudget): RetryDecision {
  const p = q.policy;
  if (p === undefined) return 'no-policy';
  const o = q.outcome;
  if (typeof o === 'string') {
    if (!retryableFailure(p, o)) return 'not-retryable';
    if (o !== 'connect-failure' && !q.idempotent) return 'not-idempotent';
  } else if (!retryableResponse(p, o.status, o.grpcStatus)) {
    return 'not-retryable';
  }
  if (q.clientGone) return 'client-gone';
  if (q.retries >= p.attempts) return 'attempts-exhausted';
  if (!q.replayable) return 'not-replayable';
  if (!(q.remainingMs > 0)) return 'deadline';
  return budget.tryWithdraw() ? 'retry' : 'budget-exhausted';
}

export interface RetryBudgetOptions {
  /** Retries allowed per request over the window (default 0.2). */
  readonly ratio?: number;
  /** Retries allowed per second regardless of traffic (default 10). */
  readonly minPerSecond?: number;
  /** The window (ms, default 10 000). */
  readonly ttlMs?: number;
  /** ms, monotonic (performance.now by default). */
  readonly now?: () => number;
}

export const RETRY_BUDGET_DEFAULTS = { ratio: 0.2, minPerSecond: 10, ttlMs: 10_000 } as const;

/** Slots of the sliding window; the window is accurate to ttlMs / SLOTS. */
const SLOTS = 10;

/**
 * A token bucket over a sliding window, as Finagle's TokenRetryBudget: each request deposits 1 token,
 * each retry withdraws 1 / ratio (5 at 20%), and a reserve of minPerSecond * ttl seconds retries is
 * always there. So over any window, retries <= ratio * requests + minPerSecond * ttl seconds.
 * One budget per destination (per Service), shared by its routes.
 */
export class RetryBudget {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly ttlMs: number;
  private readonly now: () => number;
  private readonly cost: number;
  private readonly reserve: number;
  private readonly slotMs: number;
  /** Net tokens per slot (deposits minus withdrawals), and the slot number each holds. */
  private readonly net = new Float64Array(SLOTS);
  private readonly slotOf = new Float64Array(SLOTS).fill(-1);

  constructor(o: RetryBudgetOptions = {}) {
    this.ratio = o.ratio ?? RETRY_BUDGET_DEFAULTS.ratio;
    this.minPerSecond = o.minPerSecond ?? RETRY_BUDGET_DEFAULTS.minPerSecond;
    this.ttlMs = o.ttlMs ?? RETRY_BUDGET_DEFAULTS.ttlMs;
    this.now = o.now ?? (() => performance.now());
    if (!(this.ratio >= 0 && this.ratio <= 1000 && this.minPerSecond >= 0 && this.ttlMs >= SLOTS)) {
      throw new RangeError(
        `retry budget: need 0 <= ratio <= 1000, minPerSecond >= 0, ttlMs >= ${SLOTS}, got ratio=${this.ratio} minPerSecond=${this.minPerSecond} ttlMs=${this.ttlMs}`,
      );
    }
    this.cost = this.ratio > 0 ? 1 / this.ratio : Infinity;
    this.reserve = this.minPerSecond * (this.ttlMs / 1000) * (this.ratio > 0 ? this.cost : 1);
    this.slotMs = this.ttlMs / SLOTS;
  }

  /** Call once for every request (not for retries). */
  deposit(): void {
    if (this.ratio > 0) this.add(1);
  }

  /** Call before a retry; false: the budget is spent, do not retry. */
  tryWithdraw(): boolean {
    const cost = this.ratio > 0 ? this.cost : 1;
    if (this.balance() < cost) return false;
    this.add(-cost);
    return true;
  }

  /** Retries that could be made now. */
  available(): number {
    return Math.floor(this.balance() / (this.ratio > 0 ? this.cost : 1) + 1e-9);
  }

  private balance(): number {
    const slot = Math.floor(this.now() / this.slotMs);
    let sum = this.reserve;
    for (let i = 0; i < SLOTS; i++) {
      const s = this.slotOf[i] as number;
      if (s > slot - SLOTS && s <= slot) sum += this.net[i] as number;
    }
    return sum;
  }

  private add(n: number): void {
    const slot = Math.floor(this.now() / this.slotMs);
    const i = ((slot % SLOTS) + SLOTS) % SLOTS;
    if (this.slotOf[i] !== slot) {
      this.slotOf[i] = slot;
      this.net[i] = 0;
    }
    this.net[i] = (this.net[i] as number) + n;
  }
}

/** The pause before retry number `retry` (1-based): 25 ms doubling to 250 ms, full jitter, so that
 *  retries of many requests that failed together do not arrive together. */
export function retryDelayMs(retry: number, random: () => number): number {
  return Math.min(250, 25 * 2 ** Math.max(0, retry - 1)) * random();
}
