// A local rate limiter for inbound HTTP requests: the generic cell rate algorithm (GCRA, ITU-T I.371;
// the "virtual scheduling" form), one cell per limit and key. A cell keeps one number, the theoretical
// arrival time (TAT) of the next request; a request is allowed when it does not arrive more than the
// tolerance ahead of it, and then pushes TAT one emission interval (1 / rate) further. The tolerance is
// a tenth of a second's worth of requests (at least one interval): over any period at most
// rate × (period + 0.1 s) + 1 requests pass, so a client at twice the rate for 10 s gets the rate
// within about 1%, while a client that stalls for up to 0.1 s (a GC pause, a busy CPU) and then
// catches up loses nothing: TAT moves from its own value, not from the arrival time. Pure: the caller
// passes the clock (ms).
import type { RateLimit } from '../../../api/policy.js';

/** How far ahead of its schedule a client may be (ms): bursts of up to this much of the rate. */
export const BURST_MS = 100;

export class Gcra {
  /** Emission interval (ms). */
  readonly interval: number;
  /** How far ahead of TAT a request may arrive (ms). */
  readonly tolerance: number;
  private tat = 0;
  constructor(readonly rps: number) {
    this.interval = 1000 / rps;
    this.tolerance = Math.max(this.interval, BURST_MS);
  }

  /** 0 when allowed (and counted); else how long (ms) until a request would be. */
  take(now: number): number {
    const tat = this.tat > now ? this.tat : now;
    const ahead = tat - now;
    if (ahead > this.tolerance) return ahead - this.tolerance;
    this.tat = tat + this.interval;
    return 0;
  }
}

/** Which limit refused a request (the metric's label). */
export type LimitKind = 'total' | 'identity' | 'override';

/** The cells of per-client limits kept at most: beyond, the oldest half is dropped (a new client of
 *  a dropped cell starts fresh, which errs towards allowing). */
const MAX_CLIENTS = 10_000;

/** One HTTPLocalRateLimitPolicy as a pod's proxy applies it. */
export class RateLimiter {
  readonly name: string;
  /** The config it was built from, to keep the cells across identical answers. */
  readonly key: string;
  private readonly total: Gcra | undefined;
  private readonly identityRps: number;
  private readonly overrides = new Map<string, number>();
  private readonly clients = new Map<string, { cell: Gcra; kind: LimitKind }>();
  /** The last refusal: which limit, and how long until the next request would pass (ms). */
  limitedBy: LimitKind = 'total';
  retryAfterMs = 0;

  constructor(rl: RateLimit) {
    this.name = rl.name;
    this.key = JSON.stringify(rl);
    this.total = rl.total_rps > 0 ? new Gcra(rl.total_rps) : undefined;
    this.identityRps = rl.identity_rps;
    for (const o of rl.overrides) for (const id of o.identities) this.overrides.set(id, o.rps);
  }

  /** Whether a request from `client` (its mesh identity, or its address when it has none) may pass.
   *  The client's own limit is asked first, so a client over its limit does not use up the total. */
  allow(client: string, meshed: boolean, now: number): boolean {
    const rps = meshed ? (this.overrides.get(client) ?? this.identityRps) : this.identityRps;
    if (rps > 0) {
      let c = this.clients.get(client);
      if (c === undefined) {
        if (this.clients.size >= MAX_CLIENTS) {
          let n = this.clients.size / 2;
          for (const k of this.clients.keys()) {
            if (n-- <= 0) break;
            this.clients.delete(k);
          }
        }
        c = { cell: new Gcra(rps), kind: meshed && this.overrides.has(client) ? 'override' : 'identity' };
        this.clients.set(client, c);
      }
      const wait = c.cell.take(now);
      if (wait > 0) {
        this.limitedBy = c.kind;
        this.retryAfterMs = wait;
        return false;
      }
    }
    if (this.total !== undefined) {
      const wait = this.total.take(now);
      if (wait > 0) {
        this.limitedBy = 'total';
        this.retryAfterMs = wait;
        return false;
      }
    }
    return true;
  }
}
