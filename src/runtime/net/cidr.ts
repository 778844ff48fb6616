// IPv4 addresses and CIDR blocks as numbers: parsing with clear errors, containment and overlap,
// the gateway (first host) address of a block. The pod network is IPv4 only.
import { OutriggerError } from '../../core/errors.js';
import { RuntimeCodes } from '../errors.js';

/** A configuration value the network cannot work with (bad CIDR, bad bridge name, ...). */
export class NetConfigError extends OutriggerError {
  constructor(message: string) {
    super(RuntimeCodes.NET_CONFIG, message);
    this.name = 'NetConfigError';
  }
}

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  readonly network: number;
  readonly prefix: number;
}

export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Parses `10.244.0.0/16`; the address must be the network address (no host bits set). */
export function parseCidr(text: string, what = 'CIDR'): Cidr {
  const slash = text.indexOf('/');
  const addr = parseIPv4(slash === -1 ? text : text.slice(0, slash));
  const prefixText = slash === -1 ? '' : text.slice(slash + 1);
  if (addr === undefined || !/^[0-9]{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
    throw new NetConfigError(`${what} must look like 10.244.0.0/16, got ${JSON.stringify(text)}`);
  }
  const prefix = Number(prefixText);
  const network = (addr & mask(prefix)) >>> 0;
  if (network !== addr) {
    throw new NetConfigError(`${what} ${text} has host bits set; did you mean ${formatIPv4(network)}/${prefix}?`);
  }
  return { network, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.network)}/${c.prefix}`;
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return (ip & mask(c.prefix)) >>> 0 === c.network;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.network & mask(p)) >>> 0 === (b.network & mask(p)) >>> 0;
}

/** The first host address: the bridge's own address, and every pod's default gateway. */
export function gatewayOf(c: Cidr): number {
  return c.network + 1;
}
