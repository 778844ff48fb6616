// Traffic splitting: the weighted choice of a rule's backend (canaries, blue/green), deterministic
// given the random source. A rule with no backends, or whose weights are all 0, or whose chosen
// backend Service does not exist, is answered 500 (Gateway API: "the rule performs no forwarding").
import type { Endpoint } from '../../api/destination.js';

/** A backend Service port as the destination answer gives it. */
export interface BackendChoice {
  /** `name.namespace.svc.cluster.local:port`: also the key of its balancer in the proxy. */
  readonly service: string;
  readonly exists: boolean;
  readonly endpoints: readonly Endpoint[];
}

export interface Split {
  readonly backends: readonly BackendChoice[];
  /** cumulative[i] = weights[0] + ... + weights[i]. */
  readonly cumulative: Float64Array;
  readonly total: number;
}

export function compileSplit(list: readonly { backend: BackendChoice; weight: number }[]): Split {
  const backends: BackendChoice[] = [];
  const weights: number[] = [];
  for (const b of list) {
    // A weight of 0 never receives traffic: leave it out so the search below never lands on it.
    if (!(b.weight > 0)) continue;
    backends.push(b.backend);
    weights.push(b.weight);
  }
  const cumulative = new Float64Array(weights.length);
  let total = 0;
  weights.forEach((w, i) => (cumulative[i] = total += w));
  return { backends, cumulative, total };
}

/** The backend for one request: `random()` in [0, 1) scaled to the total weight; undefined when the
 *  rule has nothing to send to (answer 500). One backend costs no random number. */
export function chooseBackend(split: Split, random: () => number): BackendChoice | undefined {
  const n = split.backends.length;
  if (n === 0) return undefined;
  if (n === 1) return split.backends[0];
  const x = random() * split.total;
  // Binary search for the first cumulative weight above x (at most 16 backends: a few steps).
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (x < (split.cumulative[mid] as number)) hi = mid;
    else lo = mid + 1;
  }
  return split.backends[lo];
}
