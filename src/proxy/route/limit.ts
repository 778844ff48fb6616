// A bound on the requests one destination (a Service or a pod) has in flight, and a bounded queue of
// those waiting for one to finish: past both, a request is shed at once with 503 (QUEUE_FULL) rather
// than piling up in the proxy's memory while the endpoints are saturated. A slot passes straight from
// a finishing request to the oldest waiting one.

/** What acquire() did: the caller holds a slot now, waits in the queue (its callback runs when it
 *  holds one), or was refused. */
export const Slot = { Now: 0, Queued: 1, Full: 2 } as const;
export type Slot = (typeof Slot)[keyof typeof Slot];

export interface LimitOptions {
  /** Requests in flight to the destination at once (default 10,000). */
  readonly maxInFlight?: number;
  /** Requests waiting for one of those slots (default 1,000); beyond it, 503. */
  readonly maxQueued?: number;
}

export const LIMIT_DEFAULTS: Required<LimitOptions> = { maxInFlight: 10_000, maxQueued: 1_000 };

export class InFlightLimit {
  inFlight = 0;
  /** Requests that ever waited (for the metrics). */
  queuedTotal = 0;
  /** Requests refused because the queue was full (for the metrics). */
  fullTotal = 0;
  readonly maxInFlight: number;
  readonly maxQueued: number;
  /** FIFO of waiters; `head` indexes the oldest, so taking one is O(1) (compacted now and then). */
  private waiting: ((() => void) | null)[] = [];
  private head = 0;
  private waitingCount = 0;

  constructor(o: LimitOptions = {}) {
    this.maxInFlight = o.maxInFlight ?? LIMIT_DEFAULTS.maxInFlight;
    this.maxQueued = o.maxQueued ?? LIMIT_DEFAULTS.maxQueued;
  }

  get queued(): number {
    return this.waitingCount;
  }

  /** Takes a slot, or queues `onSlot` (called, holding the slot, when one is free), or refuses. */
  acquire(onSlot: () => void): Slot {
    if (this.inFlight < this.maxInFlight && this.waitingCount === 0) {
      this.inFlight++;
      return Slot.Now;
    }
    if (this.waitingCount >= this.maxQueued) {
      this.fullTotal++;
      return Slot.Full;
    }
    this.waiting.push(onSlot);
    this.waitingCount++;
    this.queuedTotal++;
    return Slot.Queued;
  }

  /** Gives a slot back: it goes to the oldest waiter, if any. */
  release(): void {
    while (this.head < this.waiting.length) {
      const next = this.waiting[this.head];
      this.waiting[this.head++] = null;
      if (next === null || next === undefined) continue; // cancelled
      this.waitingCount--;
      this.compact();
      next(); // the slot passes on: inFlight is unchanged
      return;
    }
    this.compact();
    if (this.inFlight > 0) this.inFlight--;
  }

  /** A waiter gave up (its client left): it no longer waits. */
  cancel(onSlot: () => void): void {
    for (let i = this.head; i < this.waiting.length; i++) {
      if (this.waiting[i] === onSlot) {
        this.waiting[i] = null;
        this.waitingCount--;
        return;
      }
    }
  }

  private compact(): void {
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
  }
}
