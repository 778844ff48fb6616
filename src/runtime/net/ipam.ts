// IP allocation from the pod CIDR (and the service CIDR), never handing out the network, gateway or broadcast address.
// A released address is reused only after the rest of the block, so a restarted pod does not inherit
// a dead pod's address while peers may still hold connections or ARP entries for it.
import {
  cidrContains,
  cidrSize,
  formatCidr,
  formatIPv4,
  gatewayOf,
  NetConfigError,
  parseIPv4,
  type Cidr,
} from './cidr.js';

export class IpPool {
  private readonly used = new Set<number>();
  private readonly first: number;
  private readonly last: number;
  private next: number;

  /** `inUse`: addresses already allocated (from a record), kept out of the pool. */
  constructor(
    readonly cidr: Cidr,
    inUse: Iterable<string> = [],
    /** What the addresses are for, in messages: `pod` or `service`. */
    private readonly what: 'pod' | 'service' = 'pod',
  ) {
    if (cidr.prefix > 30)
      throw new NetConfigError(`${what} CIDR ${formatCidr(cidr)} is too small: it needs a /30 or larger`);
    this.first = gatewayOf(cidr) + 1;
    this.last = cidr.network + cidrSize(cidr) - 2; // before the broadcast address
    this.next = this.first;
    for (const ip of inUse) this.reserve(ip);
  }

  /** The next free address after the last one handed out, wrapping around. */
  allocate(): string {
    const span = this.last - this.first + 1;
    for (let i = 0; i < span; i++) {
      const candidate = this.first + ((this.next - this.first + i) % span);
      if (!this.used.has(candidate)) {
        this.used.add(candidate);
        this.next = candidate + 1 > this.last ? this.first : candidate + 1;
        return formatIPv4(candidate);
      }
    }
    throw new NetConfigError(
      `${this.what} CIDR ${formatCidr(this.cidr)} has no free address left (${span} ${this.what}s)`,
    );
  }

  reserve(ip: string): void {
    const n = parseIPv4(ip);
    if (n === undefined || !cidrContains(this.cidr, n) || n < this.first || n > this.last) {
      throw new NetConfigError(`${ip} is not a usable ${this.what} address in ${formatCidr(this.cidr)}`);
    }
    this.used.add(n);
  }

  release(ip: string): void {
    const n = parseIPv4(ip);
    if (n !== undefined) this.used.delete(n);
  }

  get size(): number {
    return this.used.size;
  }
}
