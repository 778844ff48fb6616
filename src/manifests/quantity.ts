// Kubernetes resource quantities (`resources.requests` and `limits`): CPU in cores or millicores
// ("500m", "1", 0.25) and memory in bytes with a decimal or binary suffix ("64Mi", "1G", "128974848").
// The grammar is the API server's (k8s.io/apimachinery resource.Quantity), less exponents ("1e3"),
// which nobody writes for CPU or memory and which are refused with a message rather than misread.

const MEMORY_SUFFIX: Readonly<Record<string, number>> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

const QUANTITY = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

/** CPU in millicores (1000 = one core); a string saying what is wrong when `v` is not a CPU quantity. */
export function parseCpu(v: string | number): number | string {
  const text = String(v).trim();
  const m = QUANTITY.exec(text);
  if (m === null || (m[2] !== undefined && m[2] !== 'm'))
    return `must be a CPU quantity in cores ("1", "0.5") or millicores ("500m"), got ${JSON.stringify(v)}`;
  const n = Number(m[1]);
  const milli = m[2] === 'm' ? n : n * 1000;
  // Kubernetes rounds CPU up to whole millicores.
  return Math.ceil(milli);
}

/** Memory in bytes; a string saying what is wrong when `v` is not a memory quantity. */
export function parseMemory(v: string | number): number | string {
  const text = String(v).trim();
  const m = QUANTITY.exec(text);
  const mult = m !== null ? MEMORY_SUFFIX[m[2] ?? ''] : undefined;
  if (m === null || mult === undefined)
    return `must be a memory quantity in bytes, with an optional suffix (k, M, G, Ki, Mi, Gi, ...), got ${JSON.stringify(v)}`;
  return Math.ceil(Number(m[1]) * mult);
}

/** The resources the local runtime honours, parsed (undefined where not set). */
export interface ResourceAmounts {
  /** Millicores. */
  readonly cpu?: number;
  /** Bytes. */
  readonly memory?: number;
}

/** Formats bytes the way `get` and `stat` print memory: 12.3Mi. */
export function formatBytes(n: number): string {
  const units = ['', 'Ki', 'Mi', 'Gi', 'Ti'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n}` : `${v.toFixed(1)}${units[i]}`;
}
