// The Services' virtual IPs of one mesh: a Service keeps the address it has, one its manifest asks for
// is checked before anything changes, a new Service gets one from the pool, a removed one's goes back.
import { ManifestError, type ManifestProblem, type ServiceObject } from './manifests/index.js';
import { IpPool, NetConfigError, type PodNetwork } from './net/index.js';
import { podKey } from './mesh-pods.js';

export class ServiceAddresses {
  private readonly pool: IpPool;
  /** Service `namespace/name` → its virtual IP. */
  private readonly vips = new Map<string, string>();

  constructor(cidr: PodNetwork['serviceCidr']) {
    this.pool = new IpPool(cidr, [], 'service');
  }

  /** The address of Service `namespace/name`, if it has one. */
  get(service: string): string | undefined {
    return this.vips.get(service);
  }

  /** Takes back the addresses a resumed mesh's Services had. */
  restore(record: Readonly<Record<string, string>>): void {
    for (const [k, ip] of Object.entries(record)) {
      this.pool.reserve(ip);
      this.vips.set(k, ip);
    }
  }

  /** Service → address, for the resume record. */
  toRecord(): Record<string, string> {
    return Object.fromEntries(this.vips);
  }

  /** The virtual IP of every Service: the one it has, the one its manifest asks for, or (absent from
   *  the map) a new one. Throws ManifestError, changing nothing, if a manifest asks for one it cannot
   *  have. */
  plan(services: readonly ServiceObject[]): Map<string, string> {
    const out = new Map<string, string>();
    const taken = new Map<string, string>();
    const problems: ManifestProblem[] = [];
    for (const s of services) {
      const k = podKey(s.metadata);
      const have = this.vips.get(k);
      const asked = s.spec.clusterIP;
      const problem = (message: string) =>
        problems.push({
          file: s.source.file,
          document: s.source.document,
          kind: 'Service',
          name: k,
          path: 'spec.clusterIP',
          message,
        });
      if (asked !== undefined && asked !== '' && have !== undefined && asked !== have) {
        problem(`is immutable: the Service has ${have}, the manifest asks for ${asked} (remove the Service first)`);
        continue;
      }
      if (asked !== undefined && asked !== '' && have === undefined) {
        const owner = [...this.vips.entries()].find(([, ip]) => ip === asked)?.[0] ?? taken.get(asked);
        if (owner !== undefined && owner !== k) {
          problem(`${asked} is already the address of Service "${owner}"`);
          continue;
        }
        try {
          new IpPool(this.pool.cidr, [], 'service').reserve(asked);
        } catch (err) {
          problem((err as NetConfigError).message);
          continue;
        }
        taken.set(asked, k);
        out.set(k, asked);
      } else if (have !== undefined) {
        out.set(k, have);
      }
    }
    if (problems.length > 0) throw new ManifestError(problems);
    return out;
  }

  /** Keeps the planned addresses, gives new Services one, frees the removed ones' (all in memory, so it
   *  cannot fail half-way). Says each new address; returns whether the Services or their addresses
   *  changed. */
  commit(
    services: readonly ServiceObject[],
    planned: ReadonlyMap<string, string>,
    say: (line: string) => void,
  ): boolean {
    let changed = false;
    for (const [k, ip] of this.vips) {
      if (planned.get(k) !== ip) {
        this.pool.release(ip);
        this.vips.delete(k);
        changed = true;
      }
    }
    for (const s of services) {
      const k = podKey(s.metadata);
      if (this.vips.has(k)) continue;
      const ip = planned.get(k);
      if (ip !== undefined) this.pool.reserve(ip);
      const vip = ip ?? this.pool.allocate();
      this.vips.set(k, vip);
      say(`service ${k}: ${vip}`);
      changed = true;
    }
    return changed;
  }
}
