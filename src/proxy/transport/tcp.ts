// Opaque TCP: bytes both ways between two sockets, with half-close (a FIN is passed on, the other
// direction keeps flowing), backpressure (a side that cannot write pauses the other's reads), and both
// sides closed together. An error on one side resets the other.
import type { Socket } from 'node:net';

/**
 * Joins `a` and `b`. `aEnded` says `a` already half-closed (its 'end' was consumed earlier).
 * `onDone` runs once when both sockets are closed.
 */
export function joinSockets(
  a: Socket,
  b: Socket,
  opts: { aEnded?: boolean; bEnded?: boolean } = {},
  onDone?: () => void,
): void {
  // A FIN from one peer must only end the other direction. A socket made with allowHalfOpen false (the
  // default of net.connect) would end its own writable side on 'end' and turn the other peer's later
  // bytes into EPIPE; the flag is read when 'end' happens, so setting it here covers every caller.
  a.allowHalfOpen = true;
  b.allowHalfOpen = true;
  let aDone = opts.aEnded === true;
  let bDone = opts.bEnded === true;
  let closed = 0;
  const pump = (from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
  };
  pump(a, b);
  pump(b, a);
  const finishIfBoth = () => {
    if (aDone && bDone) {
      a.destroySoon();
      b.destroySoon();
    }
  };
  a.on('end', () => {
    aDone = true;
    b.end();
    finishIfBoth();
  });
  b.on('end', () => {
    bDone = true;
    a.end();
    finishIfBoth();
  });
  const reset = (other: Socket) => () => {
    if (!other.destroyed) other.resetAndDestroy();
  };
  a.on('error', reset(b));
  b.on('error', reset(a));
  const onClose = () => {
    if (++closed === 2) onDone?.();
  };
  a.once('close', (hadError) => {
    if (hadError) reset(b)();
    else if (!bDone || !aDone) b.destroySoon();
    onClose();
  });
  b.once('close', (hadError) => {
    if (hadError) reset(a)();
    else if (!bDone || !aDone) a.destroySoon();
    onClose();
  });
  if (aDone) b.end();
  if (bDone) a.end();
  a.resume();
  b.resume();
}
