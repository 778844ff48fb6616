// How many pods of this process may be starting their proxy at once. A proxy's start is mostly CPU
// (Node loading its modules, a key made, a certificate asked for): a mesh that starts 64 pods at once
// on 2 cores gave each proxy 1/64 of the machine, and the last ones missed the 30 s a proxy has to get
// ready although nothing was wrong with them. With a bound, each proxy's 30 s measure the proxy, not
// the queue in front of it; a kubelet has no such bound, but neither does it fail a pod whose sidecar
// is slow to start (its startup probe only restarts it after many periods).
import { cpus } from 'node:os';

export class StartSlots {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  /** Waits for a slot; the returned function gives it back (once). */
  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else this.active++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const next = this.waiting.shift();
      if (next !== undefined)
        next(); // the slot passes to the next waiter as it is
      else this.active--;
    };
  }

  get inUse(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }
}

/** Two proxy starts per core, at least four. */
export const proxyStartSlots = new StartSlots(Math.max(4, 2 * cpus().length));
