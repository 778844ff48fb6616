// The inbound gate, in the order a request meets it: who the client is (per connection), whether the
// pod's policy authorizes it for the server and route (403, or 404 when the server's routes do not
// match), then the server's local rate limit (429 with Retry-After). Opaque TCP connections meet the
// authorization only, once, and a denied one is closed at once. Used by the request layer
// (../request/exchange.ts), for HTTP/1 and HTTP/2 alike, and by ../transport/listen.ts.
import { performance } from 'node:perf_hooks';
import { normalizeHost } from '../../core/addr.js';
import { Codes, ProxyError } from '../errors/errors.js';
import type { PolicyMetrics } from '../metrics.js';
import type { RouteRequest } from '../route/table.js';
import { ConnAuthz, parseIpv4, type PolicySource } from './authz/authz.js';

/** What the inbound paths need to enforce the pod's policy (absent: no policy service). */
export interface InboundPolicyDeps {
  readonly source: PolicySource;
  readonly metrics: PolicyMetrics;
}

/** The gate of one connection. */
export class InboundGate {
  readonly authz: ConnAuthz;
  /** The rate limiter's key for this client: its identity, or its address without one. */
  private readonly clientKey: string;

  constructor(
    private readonly deps: InboundPolicyDeps,
    port: number,
    private readonly clientId: string | undefined,
    peerAddr: string | undefined,
  ) {
    const addr = normalizeHost(peerAddr ?? '');
    this.authz = new ConnAuthz(deps.source, port, { id: clientId, ip: parseIpv4(addr) }, deps.metrics);
    this.clientKey = clientId ?? addr;
  }

  /** Whether the port's server has inbound routes (then `http` needs the request). */
  routed(): boolean {
    return this.authz.routed();
  }

  /** An HTTP request: undefined when it may go on, else the error to answer with. */
  http(req: RouteRequest | undefined): ProxyError | undefined {
    const d = this.authz.http(req);
    d.count.inc();
    if (d.noRoute) return new ProxyError(Codes.NO_ROUTE, `server ${d.server}: no inbound route matches the request`);
    if (!d.allowed) {
      return new ProxyError(
        Codes.UNAUTHORIZED,
        `server ${d.server}${d.route !== '' ? ` route ${d.route}` : ''}: client ${this.who()} is not authorized`,
      );
    }
    const limiter = d.limiter;
    if (limiter !== undefined && !limiter.allow(this.clientKey, this.clientId !== undefined, performance.now())) {
      // Refusals only: a Map lookup, no label hashing.
      this.deps.metrics.rateLimited.labels({ srv: d.server, ratelimit: limiter.name, limit: limiter.limitedBy }).inc();
      return new ProxyError(
        Codes.RATE_LIMITED,
        `server ${d.server}: rate limit ${limiter.name} (${limiter.limitedBy}) exceeded`,
        {
          retryAfterS: Math.max(1, Math.ceil(limiter.retryAfterMs / 1000)),
        },
      );
    }
    return undefined;
  }

  /** An opaque TCP connection: whether it may go on. */
  tcp(): boolean {
    const d = this.authz.tcp();
    d.count.inc();
    return d.allowed;
  }

  private who(): string {
    return this.clientId ?? `${this.clientKey} (no mesh identity)`;
  }
}
