// histogram_quantile as Prometheus computes it: the rank q·count located in cumulative buckets, with
// linear interpolation inside the bucket (the first bucket starts at 0); a rank in the +Inf bucket
// answers the highest finite bound.

/** `buckets`: upper bound (ms; Infinity for +Inf) → cumulative count. Undefined without observations. */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number | undefined {
  const les = [...buckets.keys()].sort((a, b) => a - b);
  if (les.length === 0) return undefined;
  const total = buckets.get(les[les.length - 1] as number) ?? 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const le of les) {
    const count = buckets.get(le) ?? 0;
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      if (count === prevCount) return le;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (count - prevCount);
    }
    prevLe = le === Infinity ? prevLe : le;
    prevCount = count;
  }
  return prevLe;
}
