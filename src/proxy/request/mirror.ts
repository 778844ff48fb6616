// RequestMirror's bookkeeping, whichever protocol sends the copy: the mirror backend's endpoint, a
// bound on mirrors in flight per proxy (the rest dropped and counted), and the count of how each ended.
// Off the hot path: only rules with a mirror filter get here.
import type { Endpoint } from '../balance/balancer.js';
import type { Direction, ProxyMetrics } from '../metrics.js';
import type { BackendTarget } from '../route/router.js';

/** Mirrored requests in flight at most, per proxy. */
export const MAX_MIRRORS = 64;
/** A mirror that has not finished by then is cut (ms). */
export const MIRROR_TIMEOUT_MS = 10_000;

let inFlight = 0;

export interface MirrorContext {
  readonly metrics: ProxyMetrics;
  readonly direction: Direction;
}

/** One mirrored copy under way: where it goes; finish() once, whichever way it ended. */
export class MirrorTicket {
  private done = false;
  private readonly start: number;

  constructor(
    private readonly ctx: MirrorContext,
    private readonly targetKey: string,
    readonly endpoint: Endpoint,
  ) {
    inFlight++;
    this.start = endpoint.begin();
  }

  /** `ok`: an answer came (whatever its status). Later calls do nothing. */
  finish(ok: boolean): void {
    if (this.done) return;
    this.done = true;
    inFlight--;
    this.endpoint.end(this.start, ok);
    this.ctx.metrics.mirrorTotal.inc({
      direction: this.ctx.direction,
      target_addr: this.targetKey,
      result: ok ? 'sent' : 'failed',
    });
  }
}

/** A ticket for a copy to `backend` (undefined: the Service does not exist); undefined when it is
 *  dropped (no backend, no endpoint, or MAX_MIRRORS in flight), counted as such. */
export function takeMirror(
  ctx: MirrorContext,
  targetKey: string,
  backend: BackendTarget | undefined,
): MirrorTicket | undefined {
  const ep = backend?.balancer.pick();
  if (ep === undefined || inFlight >= MAX_MIRRORS) {
    ctx.metrics.mirrorTotal.inc({ direction: ctx.direction, target_addr: targetKey, result: 'dropped' });
    return undefined;
  }
  return new MirrorTicket(ctx, targetKey, ep);
}
