// Per-request load balancing by "power of two choices" over a peak-EWMA latency estimate weighted by
// outstanding work, as Finagle's and linkerd2-proxy's (tower) balancers do: pick two endpoints at
// random, send to the cheaper one, where cost = rtt_estimate * (pending + 1) / weight.
//
// The estimate is peak-sensitive: a sample above it replaces it at once (a replica that turns slow is
// avoided within a few requests), a sample below it is blended in with a time constant (default 10 s),
// so it takes a sustained improvement to win traffic back. Between samples the estimate decays toward
// zero with the same time constant, so an avoided endpoint is eventually probed again and can show it
// recovered.
//
// Warm-up: an endpoint that has not answered yet must not look free (zero would flood it with work
// before a single response told us anything) nor expensive (it would be starved: against peers at 1 ms,
// a fixed 30 ms default takes half a minute to decay to parity). So endpoints of the first set start at
// the default RTT, and an endpoint added later starts at the mean estimate of the peers that have
// answered: it gets an ordinary share at once, bounded by its pending count, until its own answers
// take over.
//
// One deviation from tower: the idle decay applies only while nothing is pending. Otherwise an endpoint
// idle for minutes has an estimate near zero and its cost stays near zero however many requests pile
// onto it before the first answer (the flood Finagle guards against with its "penalty"). With work in
// flight, it is judged by the last estimate times its pending count.
import { performance } from 'node:perf_hooks';
import type { Balancer, BalancerEnv, Endpoint, EndpointInfo, EndpointMeta, ProtocolHint } from './balancer.js';

export interface PeakEwmaOptions extends BalancerEnv {
  /** The estimate of a new endpoint when no peer has answered yet (ms). Default 30, as linkerd2-proxy. */
  readonly defaultRttMs?: number;
  /** Time constant of the decay (ms). Default 10 000. */
  readonly decayMs?: number;
}

export const PEAK_EWMA_DEFAULTS = { defaultRttMs: 30, decayMs: 10_000 } as const;

const defaultNow = () => performance.now();

class PeakEwmaEndpoint implements Endpoint {
  readonly addr: EndpointInfo['addr'];
  readonly key: string;
  readonly weight: number;
  readonly identity: string | undefined;
  readonly protocolHint: ProtocolHint;
  readonly meshed: boolean;
  readonly pod: string;
  readonly meta: EndpointMeta | undefined;
  pending = 0;
  /** Whether a piece of work has ended here, so the estimate is measured rather than assumed. */
  answered = false;
  /** RTT estimate (ms) as of `stamp`. */
  private rtt: number;
  private stamp: number;

  constructor(
    info: EndpointInfo,
    private readonly b: PeakEwmaBalancer,
    initialRttMs: number,
  ) {
    this.addr = info.addr;
    this.key = info.key;
    // A weight of 0 is protobuf's "absent", not "no traffic" (ready endpoints are all eligible).
    this.weight = info.weight > 0 ? info.weight : 1;
    this.identity = info.identity;
    this.protocolHint = info.protocolHint;
    this.meshed = info.meshed;
    this.pod = info.pod;
    this.meta = info.meta;
    this.rtt = initialRttMs;
    this.stamp = b.now();
  }

  sameAs(info: EndpointInfo): boolean {
    return (
      this.key === info.key &&
      this.pod === info.pod &&
      this.meta?.key === info.meta?.key &&
      this.identity === info.identity &&
      this.protocolHint === info.protocolHint &&
      this.meshed === info.meshed &&
      this.weight === (info.weight > 0 ? info.weight : 1)
    );
  }

  cost(now: number): number {
    return (this.estimate(now) * (this.pending + 1)) / this.weight;
  }

  begin(): number {
    this.pending++;
    return this.b.now();
  }

  end(start: number, ok: boolean): void {
    if (this.pending > 0) this.pending--;
    const now = this.b.now();
    const sample = Math.max(0, now - start);
    const w = Math.exp(-Math.max(0, now - this.stamp) / this.b.decayMs);
    const prior = this.rtt * w;
    // A failure never makes an endpoint look faster: a replica answering errors in 1 ms would otherwise
    // attract the traffic. (Ejecting failing endpoints is the circuit breaker's job, not this one's.)
    const rtt = ok ? sample : Math.max(sample, prior);
    this.rtt = rtt > prior ? rtt : prior + rtt * (1 - w);
    this.stamp = now;
    this.answered = true;
  }

  /** The current estimate (ms). */
  estimate(now = this.b.now()): number {
    return this.pending === 0 ? this.rtt * Math.exp(-(now - this.stamp) / this.b.decayMs) : this.rtt;
  }
}

export class PeakEwmaBalancer implements Balancer {
  readonly now: () => number;
  readonly defaultRttMs: number;
  readonly decayMs: number;
  private readonly random: () => number;
  private list: PeakEwmaEndpoint[] = [];

  constructor(opts: PeakEwmaOptions = {}) {
    this.now = opts.now ?? defaultNow;
    this.random = opts.random ?? Math.random;
    this.defaultRttMs = opts.defaultRttMs ?? PEAK_EWMA_DEFAULTS.defaultRttMs;
    this.decayMs = opts.decayMs ?? PEAK_EWMA_DEFAULTS.decayMs;
    if (!(this.defaultRttMs > 0 && this.decayMs > 0)) {
      throw new RangeError(
        `peak-ewma: defaultRttMs and decayMs must be > 0, got ${this.defaultRttMs} and ${this.decayMs}`,
      );
    }
  }

  get endpoints(): readonly Endpoint[] {
    return this.list;
  }

  update(endpoints: readonly EndpointInfo[]): void {
    const old = new Map<string, PeakEwmaEndpoint>();
    for (const e of this.list) old.set(e.key, e);
    const now = this.now();
    let sum = 0;
    let answered = 0;
    for (const e of this.list) {
      if (e.answered) {
        sum += e.estimate(now);
        answered++;
      }
    }
    const initial = answered > 0 && sum > 0 ? sum / answered : this.defaultRttMs;
    const next: PeakEwmaEndpoint[] = [];
    const seen = new Set<string>();
    for (const info of endpoints) {
      if (seen.has(info.key)) continue;
      seen.add(info.key);
      const prev = old.get(info.key);
      next.push(prev?.sameAs(info) ? prev : new PeakEwmaEndpoint(info, this, initial));
    }
    this.list = next;
  }

  pick(): Endpoint | undefined {
    const list = this.list;
    const n = list.length;
    if (n === 0) return undefined;
    if (n === 1) return list[0];
    let a: PeakEwmaEndpoint;
    let b: PeakEwmaEndpoint;
    if (n === 2) {
      a = list[0] as PeakEwmaEndpoint;
      b = list[1] as PeakEwmaEndpoint;
    } else {
      const i = Math.floor(this.random() * n);
      let j = Math.floor(this.random() * (n - 1));
      if (j >= i) j++;
      a = list[i] as PeakEwmaEndpoint;
      b = list[j] as PeakEwmaEndpoint;
    }
    const now = this.now();
    const ca = a.cost(now);
    const cb = b.cost(now);
    // Ties (e.g. two endpoints that have never answered, with nothing in flight) go either way at
    // random, so that equal endpoints share the work.
    if (ca === cb) return this.random() < 0.5 ? a : b;
    return ca < cb ? a : b;
  }
}

export const peakEwma = (env?: PeakEwmaOptions): Balancer => new PeakEwmaBalancer(env);
