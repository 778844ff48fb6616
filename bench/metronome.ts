// The load generator's metronome (a worker thread of bench/loadgen.ts): sleeps until the next request's
// intended send time and then wakes the generator's event loop with a message, so the generator sends on
// time to within tens of microseconds without spinning. Node's own timers have millisecond granularity
// (a setTimeout of 0.3 ms fires after 1 ms or more), which would add up to a millisecond of lateness to
// every request; Atomics.wait sleeps on a futex with a microsecond deadline. When a wake-up comes late,
// one message covers every request that became due meanwhile.
//
// workerData: { rate, count, stop: SharedArrayBuffer (Int32 slot 0 set to 1 stops it early) }. It posts
// "ready", then waits for one message: t0, the schedule's start (process.hrtime.bigint() as a string).
// Then its messages are the index of the first request not yet due at each wake-up.
import { parentPort, workerData } from 'node:worker_threads';
import { intendedNs } from './openloop.js';

interface MetronomeData {
  rate: number;
  count: number;
  stop: SharedArrayBuffer;
}

function run(d: MetronomeData, t0: bigint): void {
  const stop = new Int32Array(d.stop);
  let j = 0;
  while (j < d.count && Atomics.load(stop, 0) === 0) {
    const now = Number(process.hrtime.bigint() - t0);
    const due = intendedNs(j, d.rate);
    if (due > now) {
      // Woken early by a stop, or by a spurious wake-up: the loop checks again either way.
      Atomics.wait(stop, 0, 0, (due - now) / 1e6);
      continue;
    }
    while (j < d.count && intendedNs(j, d.rate) <= now) j++;
    parentPort?.postMessage(j);
  }
}

parentPort?.once('message', (t0: string) => run(workerData as MetronomeData, BigInt(t0)));
parentPort?.postMessage('ready');
