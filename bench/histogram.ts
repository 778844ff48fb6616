// A log-linear latency histogram in the manner of HdrHistogram: values (nanoseconds) below 1024 are
// counted exactly; above, each power of two is split into 512 equal buckets, so a bucket is never wider
// than 1/512 (0.2%) of the values it holds. At 1 ms that is 2 us, at 100 ms 0.2 ms: precise enough for
// p99.9 and far finer than the microsecond the bench reports. The exact min, max and sum are kept too.
// It serializes to a sparse list of [bucket, count] (a run of 120 000 requests is a few hundred
// buckets) so a load generator can hand it to the driver, which merges the runs of several rounds.

/** Values 0..1023 are their own bucket. */
const EXACT = 1024;
/** Buckets per power of two above EXACT. */
const HALF = 512;
/** Values up to 2^44 ns (about 4.9 hours) are bucketed; larger ones land in the last bucket. */
const MAX_EXPONENT = 44;
const BUCKETS = EXACT + (MAX_EXPONENT - 9) * HALF;

/** floor(log2(v)) for an integer v >= 1 up to 2^53. */
function log2floor(v: number): number {
  if (v < 2 ** 32) return 31 - Math.clz32(v);
  return 32 + (31 - Math.clz32(Math.floor(v / 2 ** 32)));
}

/** The bucket of a non-negative integer value. */
export function bucketOf(value: number): number {
  const v = Math.max(0, Math.floor(value));
  if (v < EXACT) return v;
  const e = log2floor(v);
  if (e > MAX_EXPONENT) return BUCKETS - 1;
  const shift = e - 9; // >= 1: the mantissa v >> shift is in [512, 1023]
  const mantissa = Math.floor(v / 2 ** shift);
  return EXACT + (shift - 1) * HALF + (mantissa - HALF);
}

/** The smallest and largest value of a bucket. */
export function bucketRange(bucket: number): [number, number] {
  if (bucket < EXACT) return [bucket, bucket];
  const shift = Math.floor((bucket - EXACT) / HALF) + 1;
  const mantissa = ((bucket - EXACT) % HALF) + HALF;
  return [mantissa * 2 ** shift, (mantissa + 1) * 2 ** shift - 1];
}

/** The JSON form: counts of the buckets that are not empty. */
export interface HistogramJson {
  count: number;
  min: number;
  max: number;
  sum: number;
  buckets: [number, number][];
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  min = Infinity;
  max = -Infinity;
  sum = 0;

  /** Records one value (ns; negative values count as 0). */
  record(value: number): void {
    const v = Math.max(0, value);
    this.counts[bucketOf(v)]! += 1;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** Nearest-rank percentile (q in 0..100): the largest value of the bucket that holds the rank-th
   *  smallest value (never below it, at most 0.2% above), clamped to the exact max; NaN when empty.
   *  q = 100 is the exact max, q = 0 the exact min. */
  percentile(q: number): number {
    if (this.count === 0) return NaN;
    if (q <= 0) return this.min;
    if (q >= 100) return this.max;
    const rank = Math.max(1, Math.ceil((q / 100) * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b] ?? 0;
      if (seen >= rank) return Math.min(bucketRange(b)[1], this.max);
    }
    return this.max;
  }

  mean(): number {
    return this.count === 0 ? NaN : this.sum / this.count;
  }

  /** Adds another histogram's counts to this one. */
  merge(other: Histogram): this {
    for (let b = 0; b < BUCKETS; b++) this.counts[b]! += other.counts[b] ?? 0;
    this.count += other.count;
    this.sum += other.sum;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    return this;
  }

  toJSON(): HistogramJson {
    const buckets: [number, number][] = [];
    for (let b = 0; b < BUCKETS; b++) if ((this.counts[b] ?? 0) > 0) buckets.push([b, this.counts[b] ?? 0]);
    return {
      count: this.count,
      min: this.count > 0 ? this.min : 0,
      max: this.count > 0 ? this.max : 0,
      sum: this.sum,
      buckets,
    };
  }

  /** Throws on a form that is not a histogram's (a generator from another build, a truncated line). */
  static fromJSON(j: HistogramJson): Histogram {
    const h = new Histogram();
    let total = 0;
    for (const [b, n] of j.buckets) {
      if (!Number.isInteger(b) || b < 0 || b >= BUCKETS || !(n > 0))
        throw new Error(`histogram: bad bucket [${b}, ${n}]`);
      h.counts[b]! += n;
      total += n;
    }
    if (total !== j.count) throw new Error(`histogram: buckets hold ${total} values, count says ${j.count}`);
    h.count = j.count;
    h.sum = j.sum;
    if (j.count > 0) {
      h.min = j.min;
      h.max = j.max;
    }
    return h;
  }
}
