// Loaded into the mesh-size scenario's proxy only (`node --expose-gc --import` this file; the proxy's
// code is unchanged): on SIGUSR2, a full garbage collection, then one line on stderr with what the V8
// heap holds alive, so that the bench can tell what a proxy keeps from the garbage it has not collected
// yet: GC_LINE, then {"heap_used":N,"external":N} (bytes, process.memoryUsage() after the GC).
import { GC_LINE } from './mesh-store.js';

process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  process.stderr.write(`${GC_LINE}${JSON.stringify({ heap_used: m.heapUsed, external: m.external })}\n`);
});
