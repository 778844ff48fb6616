// Branded address types: the proxy juggles several addresses per connection (where the client came
// from, where it meant to go, where we actually send it) and these keep them from being mixed up.

export type Port = number & { readonly __brand: 'Port' };

/** An IP and port, as "10.244.0.7:8080" or "[fd00::7]:8080" in text form. */
export interface SocketAddr {
  readonly host: string;
  readonly port: Port;
}

/** Where a redirected connection was originally going, read from the kernel (SO_ORIGINAL_DST). */
export type OrigDst = SocketAddr & { readonly __kind: 'OrigDst' };
/** The address the proxy connects to on the client's behalf. */
export type ServerAddr = SocketAddr & { readonly __kind: 'ServerAddr' };
/** The peer that opened a connection to the proxy. */
export type ClientAddr = SocketAddr & { readonly __kind: 'ClientAddr' };

export function isPort(n: number): n is Port {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

export function toPort(n: number): Port {
  if (!isPort(n)) throw new RangeError(`port must be an integer from 1 to 65535, got ${n}`);
  return n;
}

export function formatAddr(a: SocketAddr): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Parses "host:port" or "[v6]:port"; returns undefined when it is not one. */
export function parseAddr(text: string): SocketAddr | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (!isPort(port)) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** Strips the "::ffff:" prefix a dual-stack socket puts on IPv4 peers. */
export function normalizeHost(host: string): string {
  return host.startsWith('::ffff:') && host.includes('.') ? host.slice(7) : host;
}
