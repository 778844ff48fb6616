// Circuit breaking per endpoint (failure accrual, as Linkerd's and Finagle's): `consecutiveFailures`
// failures in a row eject the endpoint for a backoff that doubles with each ejection in a row (with
// jitter), up to maxEjectionMs; when it expires one probe request is let through, and its result
// closes the breaker (backoff reset) or ejects it again. A view of which endpoints are available lets
// the balancer skip ejected ones; when every endpoint is ejected the caller fails fast with 503
// (ProxyError ENDPOINTS_EJECTED). Pure: time and chance are injected.
import type { Balancer, Endpoint } from '../balance/balancer.js';

export interface BreakerOptions {
  /** Failures in a row that eject an endpoint (default 7, Linkerd's). */
  readonly consecutiveFailures?: number;
  /** The first ejection (ms, default 1000); it doubles per ejection in a row. */
  readonly baseEjectionMs?: number;
  /** The longest ejection (ms, default 60 000). */
  readonly maxEjectionMs?: number;
  /** The fraction of each ejection that is random, 0 to 1 (default 0.5): ejections of endpoints that
   *  failed together end at different times. */
  readonly jitter?: number;
  /** ms, monotonic (performance.now by default). */
  readonly now?: () => number;
  /** [0, 1) (Math.random by default). */
  readonly random?: () => number;
}

export const BREAKER_DEFAULTS = {
  consecutiveFailures: 7,
  baseEjectionMs: 1000,
  maxEjectionMs: 60_000,
  jitter: 0.5,
} as const;

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What a balancer needs: whether an endpoint may be sent a request now. */
export interface AvailabilityView {
  isAvailable(key: string): boolean;
}

/** One endpoint's breaker. */
export class CircuitBreaker {
  private failures = 0;
  /** Ejections in a row (0 when closed after a success). */
  ejections = 0;
  private until = 0;
  private probing = false;
  private open = false;

  constructor(private readonly o: Required<BreakerOptions>) {}

  state(now = this.o.now()): BreakerState {
    if (!this.open) return 'closed';
    return now >= this.until ? 'half-open' : 'open';
  }

  /** Whether a request may go to the endpoint now: closed, or half-open with no probe in flight. */
  available(now = this.o.now()): boolean {
    if (!this.open) return true;
    return now >= this.until && !this.probing;
  }

  /** Call when a request is sent to the endpoint; in half-open it becomes the probe. */
  dispatched(now = this.o.now()): void {
    if (this.open && now >= this.until) this.probing = true;
  }

  /** A request sent to the endpoint ended without telling anything (its client left first): if it
   *  was the probe, the next request may probe instead (else the endpoint would stay ejected). */
  abandoned(): void {
    this.probing = false;
  }

  success(): void {
    this.failures = 0;
    if (this.open) {
      // Only the probe's answer can close it; an answer to a request sent before the ejection does too
      // (the endpoint is answering), which is what we want.
      this.open = false;
      this.probing = false;
      this.ejections = 0;
    }
  }

  failure(now = this.o.now()): void {
    if (this.open) {
      if (!this.probing) return; // a request from before the ejection: already counted
      this.probing = false;
      this.eject(now);
      return;
    }
    if (++this.failures >= this.o.consecutiveFailures) this.eject(now);
  }

  private eject(now: number): void {
    this.open = true;
    this.failures = 0;
    this.ejections++;
    const d = Math.min(this.o.maxEjectionMs, this.o.baseEjectionMs * 2 ** (this.ejections - 1));
    this.until = now + d * (1 - this.o.jitter * this.o.random());
  }

  /** When the ejection ends (ms on the injected clock); meaningful while open. */
  get ejectedUntil(): number {
    return this.until;
  }
}

/** The breakers of one destination's endpoints, by endpoint key. */
export class Breakers implements AvailabilityView {
  private readonly o: Required<BreakerOptions>;
  private readonly map = new Map<string, CircuitBreaker>();

  constructor(opts: BreakerOptions = {}) {
    this.o = {
      consecutiveFailures: opts.consecutiveFailures ?? BREAKER_DEFAULTS.consecutiveFailures,
      baseEjectionMs: opts.baseEjectionMs ?? BREAKER_DEFAULTS.baseEjectionMs,
      maxEjectionMs: opts.maxEjectionMs ?? BREAKER_DEFAULTS.maxEjectionMs,
      jitter: opts.jitter ?? BREAKER_DEFAULTS.jitter,
      now: opts.now ?? (() => performance.now()),
      random: opts.random ?? Math.random,
    };
    const o = this.o;
    if (!(
      o.consecutiveFailures >= 1 &&
      o.baseEjectionMs > 0 &&
      o.maxEjectionMs >= o.baseEjectionMs &&
      o.jitter >= 0 &&
      o.jitter <= 1
    )) {
      throw new RangeError(
        `circuit breaker: need consecutiveFailures >= 1, 0 < baseEjectionMs <= maxEjectionMs, 0 <= jitter <= 1, got ${o.consecutiveFailures}, ${o.baseEjectionMs}, ${o.maxEjectionMs}, ${o.jitter}`,
      );
    }
  }

  /** The breaker of `key`, created closed. */
  get(key: string): CircuitBreaker {
    let b = this.map.get(key);
    if (b === undefined) this.map.set(key, (b = new CircuitBreaker(this.o)));
    return b;
  }

  /** Forgets endpoints that are gone (call with the keys of each new endpoint list). An endpoint that
   *  comes back later starts closed. */
  sync(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const k of this.map.keys()) if (!keep.has(k)) this.map.delete(k);
  }

  isAvailable(key: string): boolean {
    const b = this.map.get(key);
    return b === undefined || b.available();
  }

  /** Keys currently ejected (open, or half-open with a probe in flight). */
  ejected(): string[] {
    return [...this.map.entries()].filter(([, b]) => !b.available()).map(([k]) => k);
  }
}

/**
 * The balancer's pick among available endpoints: the balancer's own choice when it is available (the
 * usual case, no extra work), else up to `tries` more picks, else the first available endpoint in
 * order. Marks the probe of a half-open endpoint. Undefined when there are no endpoints or none is
 * available (then, if `balancer.endpoints.length > 0`, fail fast with 503).
 */
export function pickAvailable(balancer: Balancer, breakers: Breakers, tries = 2): Endpoint | undefined {
  for (let i = 0; i <= tries; i++) {
    const e = balancer.pick();
    if (e === undefined) return undefined;
    if (breakers.isAvailable(e.key)) return dispatch(breakers, e);
  }
  for (const e of balancer.endpoints) if (breakers.isAvailable(e.key)) return dispatch(breakers, e);
  return undefined;
}

function dispatch(breakers: Breakers, e: Endpoint): Endpoint {
  breakers.get(e.key).dispatched();
  return e;
}

/** Whether an answer counts as a failure for the breaker: 5xx (the endpoint is in trouble; a 4xx is
 *  the client's), or for gRPC the statuses that mean the server is unwell. */
export function isEndpointFailure(status: number, grpcStatus?: number): boolean {
  if (grpcStatus !== undefined)
    return (
      grpcStatus === 13 /* INTERNAL */ || grpcStatus === 14 /* UNAVAILABLE */ || grpcStatus === 4
    ); /* DEADLINE_EXCEEDED */
  return status >= 500;
}
