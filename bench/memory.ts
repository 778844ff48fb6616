// A process's memory as the bench reports it, from one reading of /proc/PID/smaps_rollup: RSS (every
// resident page, shared or not), PSS (each shared page divided by the processes that map it) and USS,
// the private pages (Private_Clean + Private_Dirty) that only this process maps. The Node binary's pages
// are shared by every Node process on a machine, so RSS counts them again for every proxy; USS is what
// one more proxy really costs. Also a sampler that reads a few processes every few seconds during a run
// and keeps each one's largest and last reading.
import { readFileSync } from 'node:fs';

/** One reading, in MB (1024 x 1024 bytes). */
export interface MemoryFigures {
  rss_mb: number;
  pss_mb: number;
  /** Private_Clean + Private_Dirty. */
  uss_mb: number;
  /** The anonymous part of the private pages (heap, stacks): Private_Dirty. */
  private_dirty_mb: number;
}

/** The kB fields of smaps_rollup (or of one smaps entry), by name. Lines that are not `Name: N kB`
 *  (the address range header) are skipped. */
export function parseSmapsFields(text: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_]+):\s+(\d+) kB$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) fields.set(m[1], Number(m[2]));
  }
  return fields;
}

const mb = (kb: number): number => Number((kb / 1024).toFixed(2));

/** The figures of one smaps_rollup text; throws when a field the figures need is missing. */
export function parseSmapsRollup(text: string): MemoryFigures {
  const f = parseSmapsFields(text);
  const get = (name: string): number => {
    const v = f.get(name);
    if (v === undefined) throw new Error(`smaps_rollup: no ${name} field`);
    return v;
  };
  const privateDirty = get('Private_Dirty');
  return {
    rss_mb: mb(get('Rss')),
    pss_mb: mb(get('Pss')),
    uss_mb: mb(get('Private_Clean') + privateDirty),
    private_dirty_mb: mb(privateDirty),
  };
}

/** The process's memory now, or null when it cannot be read (gone, or not ours to read). Reading
 *  smaps_rollup walks the process's page tables (about 1 ms for a 100 MB Node process), which is why
 *  samplers read it every few seconds, not continuously. */
export function readMemory(pid: number): MemoryFigures | null {
  try {
    return parseSmapsRollup(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  } catch {
    return null;
  }
}

/** `rss/uss/pss` in MB with one decimal, for progress lines; `?` when unknown. */
export function formatMemory(m: MemoryFigures | null | undefined): string {
  return m ? `rss ${m.rss_mb.toFixed(1)} uss ${m.uss_mb.toFixed(1)} pss ${m.pss_mb.toFixed(1)} MB` : 'memory ?';
}

/** A process's memory over a run: the largest reading of each figure (not necessarily the same
 *  instant) and the last reading. */
export interface MemoryOverRun {
  max: MemoryFigures;
  end: MemoryFigures;
  samples: number;
}

/** Folds one more reading into what a run has seen so far. */
export function foldMemory(sofar: MemoryOverRun | undefined, m: MemoryFigures): MemoryOverRun {
  if (sofar === undefined) return { max: { ...m }, end: m, samples: 1 };
  const max = {
    rss_mb: Math.max(sofar.max.rss_mb, m.rss_mb),
    pss_mb: Math.max(sofar.max.pss_mb, m.pss_mb),
    uss_mb: Math.max(sofar.max.uss_mb, m.uss_mb),
    private_dirty_mb: Math.max(sofar.max.private_dirty_mb, m.private_dirty_mb),
  };
  return { max, end: m, samples: sofar.samples + 1 };
}

/** Reads each named pid every `intervalMs` until stopped (and once more at the stop). */
export class MemorySampler {
  private readonly seen = new Map<string, MemoryOverRun>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: Readonly<Record<string, number>>,
    intervalMs: number,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  private sample(): void {
    for (const [name, pid] of Object.entries(this.pids)) {
      const m = readMemory(pid);
      if (m !== null) this.seen.set(name, foldMemory(this.seen.get(name), m));
    }
  }

  /** Stops, takes the last reading, and returns each process's figures (absent: never readable). */
  stop(): Record<string, MemoryOverRun> {
    clearInterval(this.timer);
    this.sample();
    return Object.fromEntries(this.seen);
  }
}
