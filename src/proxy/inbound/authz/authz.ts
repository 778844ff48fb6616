// Authorization of inbound traffic, as the policy service states it (policy.proto): each port's
// authorizations compiled once per answer, and the check of a client against them. A client is what
// the connection proved: its mesh identity (mesh TLS) and its address. Both are fixed for a connection,
// so a connection decides once per server (and once per route it uses) and keeps the decision until
// the policy changes (ConnAuthz); a request costs a version compare and, with routes, a route match.
import type { Authorization, InboundPolicy, PortPolicy } from '../../../api/policy.js';
import type { Route } from '../../../api/destination.js';
import { compileRoutes, matchRoute, EMPTY_TABLE, type RouteRequest, type RouteTable } from '../../route/table.js';
import { RateLimiter } from '../ratelimit/gcra.js';

/** Who the client is, as far as the connection proved it. */
export interface Client {
  /** The identity mesh TLS verified; undefined: not over mesh TLS. */
  readonly id: string | undefined;
  /** IPv4 address as an unsigned 32-bit number; undefined: not IPv4. */
  readonly ip: number | undefined;
}

interface Net {
  readonly base: number;
  readonly mask: number;
}

type Requirement =
  | { readonly any: boolean; readonly ids: readonly RegExp[]; readonly exact: ReadonlySet<string> }
  | { readonly nets: readonly { readonly net: Net; readonly except: readonly Net[] }[] };

export interface CompiledAuthz {
  /** `namespace/name` of the AuthorizationPolicy, or `default:<policy>`. */
  readonly name: string;
  readonly all: readonly Requirement[];
}

export function parseIpv4(text: string): number | undefined {
  const s = text.startsWith('::ffff:') ? text.slice(7) : text;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (m === null) return undefined;
  const p = m.slice(1).map(Number);
  if (p.some((x) => x > 255)) return undefined;
  return (((p[0] as number) << 24) | ((p[1] as number) << 16) | ((p[2] as number) << 8) | (p[3] as number)) >>> 0;
}

function parseNet(cidr: string): Net | undefined {
  const [addr, len] = cidr.split('/');
  const ip = parseIpv4(addr ?? '');
  const bits = len === undefined ? 32 : Number(len);
  if (ip === undefined || !(bits >= 0 && bits <= 32)) return undefined;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (ip & mask) >>> 0, mask };
}

const inNet = (ip: number, n: Net) => (ip & n.mask) >>> 0 === n.base;

/** A SPIFFE id pattern: `*` stands for any run of characters within one path segment. */
function identityPattern(p: string): RegExp {
  return new RegExp(
    `^${p
      .split('*')
      .map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('[^/]*')}$`,
  );
}

export function compileAuthz(a: Authorization): CompiledAuthz {
  const all: Requirement[] = a.all.map((r) => {
    if (r.networks.length > 0) {
      return {
        nets: r.networks.flatMap((n) => {
          const net = parseNet(n.cidr);
          return net === undefined ? [] : [{ net, except: n.except.flatMap((e) => parseNet(e) ?? []) }];
        }),
      };
    }
    const exact = new Set(r.identities.filter((i) => !i.includes('*')));
    const ids = r.identities.filter((i) => i.includes('*') && i !== '*').map(identityPattern);
    return { any: r.identities.includes('*'), ids, exact };
  });
  return { name: a.name, all };
}

/** Whether `c` passes every requirement of `a`. */
export function allows(a: CompiledAuthz, c: Client): boolean {
  for (const r of a.all) {
    if ('nets' in r) {
      const ip = c.ip;
      if (ip === undefined || !r.nets.some((n) => inNet(ip, n.net) && !n.except.some((e) => inNet(ip, e))))
        return false;
    } else {
      const id = c.id;
      if (id === undefined) return false;
      if (!(r.any || r.exact.has(id) || r.ids.some((re) => re.test(id)))) return false;
    }
  }
  return true;
}

/** The first authorization of `list` that allows `c`. */
export function firstAllowing(list: readonly CompiledAuthz[], c: Client): CompiledAuthz | undefined {
  for (const a of list) if (allows(a, c)) return a;
  return undefined;
}

/** The policy of one port, compiled. */
export interface PortRules {
  /** `namespace/name` of the Server, or `default:<policy>`. */
  readonly server: string;
  readonly opaque: boolean;
  readonly authorizations: readonly CompiledAuthz[];
  /** Inbound routes; EMPTY_TABLE: the server's implicit route takes every request. */
  readonly routes: RouteTable;
  /** Each route's own authorizations, by route name. */
  readonly routeAuthz: ReadonlyMap<string, readonly CompiledAuthz[]>;
  readonly limiter: RateLimiter | undefined;
}

/** A compiled answer: the rules of each port a Server covers and of every other port. */
export interface CompiledPolicy {
  /** Changes with every answer: connections recompute their decisions when it does. */
  readonly version: number;
  readonly ports: ReadonlyMap<number, PortRules>;
  readonly fallback: PortRules;
  readonly defaultPolicy: string;
}

let versions = 0;

/** Compiles an answer; `previous` lends its rate limiters' state to unchanged limits. */
export function compilePolicy(
  p: InboundPolicy,
  previous: CompiledPolicy | undefined,
  problems: string[],
): CompiledPolicy {
  const limiters = new Map<string, RateLimiter>();
  if (previous !== undefined)
    for (const r of previous.ports.values()) if (r.limiter !== undefined) limiters.set(r.limiter.key, r.limiter);
  const ports = new Map<number, PortRules>();
  for (const pp of p.ports) ports.set(pp.port, portRules(pp, limiters, problems));
  const fallback: PortRules = {
    server: `default:${p.default_policy}`,
    opaque: false,
    authorizations: p.default_authorizations.map(compileAuthz),
    routes: EMPTY_TABLE,
    routeAuthz: new Map(),
    limiter: undefined,
  };
  return { version: ++versions, ports, fallback, defaultPolicy: p.default_policy };
}

function portRules(pp: PortPolicy, limiters: Map<string, RateLimiter>, problems: string[]): PortRules {
  const routes = pp.routes.flatMap((r) => (r.route ? [r.route] : [])) as Route[];
  const table = routes.length > 0 ? compileRoutes(routes, []) : EMPTY_TABLE;
  for (const m of table.problems) problems.push(`server ${pp.server}: ${m}`);
  const routeAuthz = new Map<string, readonly CompiledAuthz[]>();
  for (const r of pp.routes) if (r.route) routeAuthz.set(r.route.name, r.authorizations.map(compileAuthz));
  let limiter: RateLimiter | undefined;
  if (pp.rate_limit) {
    const fresh = new RateLimiter(pp.rate_limit);
    limiter = limiters.get(fresh.key) ?? fresh;
  }
  return {
    server: pp.server,
    opaque: pp.protocol === 'opaque',
    authorizations: pp.authorizations.map(compileAuthz),
    routes: table,
    routeAuthz,
    limiter,
  };
}

/** What the proxy needs from the policy watch. */
export interface PolicySource {
  current(): CompiledPolicy;
}

/** The outcome for one request (or connection), with its counter to increment. */
export interface Decision {
  readonly allowed: boolean;
  /** 404: the server has routes and none matches. */
  readonly noRoute: boolean;
  readonly server: string;
  /** `namespace/name` of the route; '' for the server's implicit route. */
  readonly route: string;
  /** The authorization that allowed it, or why it was denied. */
  readonly rule: string;
  readonly count: { inc(): void };
  readonly limiter: RateLimiter | undefined;
}

/** A counter by label set; `labels` is called once per decision, `inc` per request. */
export interface LabelledCounter {
  labels(labels: Readonly<Record<string, string>>): { inc(): void };
}

/** The authz counters (ProxyMetrics.enablePolicy's). */
export interface AuthzCounters {
  readonly httpAllow: LabelledCounter;
  readonly httpDeny: LabelledCounter;
  readonly tcpAllow: LabelledCounter;
  readonly tcpDeny: LabelledCounter;
}

/** Keys of the decisions that are not a route's (route names contain a '/'). */
const NO_ROUTE = '\0no-route';
const TCP = '\0tcp';

/** Per connection: its decisions per route, kept until the policy's version changes. */
export class ConnAuthz {
  private version = -1;
  private rules!: PortRules;
  private readonly decisions = new Map<string, Decision>();

  constructor(
    private readonly source: PolicySource,
    private readonly port: number,
    private readonly client: Client,
    private readonly counters: AuthzCounters,
  ) {}

  private refresh(): PortRules {
    const p = this.source.current();
    if (p.version !== this.version) {
      this.version = p.version;
      this.rules = p.ports.get(this.port) ?? p.fallback;
      this.decisions.clear();
    }
    return this.rules;
  }

  /** An HTTP request (`req` undefined: decide for the server's implicit route only). */
  http(req: RouteRequest | undefined): Decision {
    const rules = this.refresh();
    let route = '';
    if (!rules.routes.empty && req !== undefined) {
      const c = matchRoute(rules.routes, req);
      if (c === undefined)
        return (
          this.decisions.get(NO_ROUTE) ?? this.keep(NO_ROUTE, this.make(rules, '', false, 'no-route', true, 'http'))
        );
      route = c.rule.route;
    }
    // Kept per route until the policy changes: a request pays one Map lookup (no closure, no labels).
    const kept = this.decisions.get(route);
    if (kept !== undefined) return kept;
    const a =
      firstAllowing(rules.authorizations, this.client) ??
      (route !== '' ? firstAllowing(rules.routeAuthz.get(route) ?? [], this.client) : undefined);
    return this.keep(route, this.make(rules, route, a !== undefined, a?.name ?? 'unauthorized', false, 'http'));
  }

  /** An opaque TCP connection: the server's authorizations (routes are HTTP's). */
  tcp(): Decision {
    const rules = this.refresh();
    const kept = this.decisions.get(TCP);
    if (kept !== undefined) return kept;
    const a = firstAllowing(rules.authorizations, this.client);
    return this.keep(TCP, this.make(rules, '', a !== undefined, a?.name ?? 'unauthorized', false, 'tcp'));
  }

  /** The port's server has inbound routes. */
  routed(): boolean {
    return !this.refresh().routes.empty;
  }

  /** The port is opaque by its Server's proxyProtocol. */
  opaque(): boolean {
    return this.refresh().opaque;
  }

  private keep(key: string, d: Decision): Decision {
    this.decisions.set(key, d);
    return d;
  }

  private make(
    rules: PortRules,
    route: string,
    allowed: boolean,
    rule: string,
    noRoute: boolean,
    proto: 'http' | 'tcp',
  ): Decision {
    const c = this.counters;
    const count =
      proto === 'http'
        ? (allowed ? c.httpAllow : c.httpDeny).labels({ srv: rules.server, route, rule })
        : (allowed ? c.tcpAllow : c.tcpDeny).labels({ srv: rules.server, rule });
    return { allowed, noRoute, server: rules.server, route, rule, count, limiter: rules.limiter };
  }
}
