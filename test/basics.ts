// The smallest shared test helpers, with no project imports, so that any unit test beside its code can
// use them without loading more: polling for a condition, and a free loopback port.
import net, { type AddressInfo } from 'node:net';

/** What a condition gives while it does not hold yet. */
type NotYet = undefined | null | false;

/**
 * Polls `cond` (every 10 ms, after it settles) until it gives something other than undefined, null or
 * false, and returns that: `true` for a plain condition, or the value waited for. Throws after `ms`
 * naming what it waited for. A generous deadline for a condition, never a timing assertion.
 */
export async function waitFor<T>(what: string, cond: () => T | NotYet | Promise<T | NotYet>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A loopback port nothing listens on right now, for a test that must name its port before it listens
 *  (a server restarted on the same port, a CLI given --port). Bind to port 0 where you can instead. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}
