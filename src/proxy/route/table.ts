// The route table of one destination: the HTTPRoutes or GRPCRoutes of a destination answer (see
// destination.proto), compiled once per answer into candidates sorted by Gateway API precedence, and
// the choice of the rule for a request. Pure: no sockets, no clocks. Hot-path rules: matching allocates
// nothing in the common case (one field per header name, no query matches), and an Exact path (HTTP)
// or an exact service and method (gRPC) is found through a Map before the ordered scan.
import type { Backend, Endpoint, Match, Retry, Route, Rule } from '../../api/destination.js';
import { compileFilters, type CompiledFilters } from './filters.js';
import { compileRetry, type RetryPolicy } from './retry.js';
import { compileSplit, type BackendChoice, type Split } from './split.js';

/** What the matcher needs of a request. */
export interface RouteRequest {
  readonly method: string;
  /** The path without the query (for gRPC, `/package.Service/Method`). */
  readonly path: string;
  /** What follows `?` in the target, without it; '' when there is none. */
  readonly query: string;
  /** Header fields as alternating raw name, value (MessageHead.fields). */
  readonly headers: readonly string[];
}

/** A rule, ready to use. */
export interface CompiledRule {
  /** `namespace/name` of the route, for metrics and logs. */
  readonly route: string;
  readonly routeKind: 'HTTP' | 'GRPC';
  /** The rule's name, or its index as a string when unnamed (for metrics). */
  readonly name: string;
  readonly index: number;
  readonly filters: CompiledFilters;
  readonly split: Split;
  /** ms; 0: none. */
  readonly requestTimeoutMs: number;
  /** ms; 0: none. */
  readonly backendRequestTimeoutMs: number;
  readonly retry: RetryPolicy | undefined;
}

/** One match of one rule: what matchRoute returns (the match is needed for ReplacePrefixMatch). */
export interface RouteCandidate {
  readonly rule: CompiledRule;
  /** The PathPrefix value of the match (trailing '/' removed, '' for '/'); undefined otherwise. */
  readonly prefix: string | undefined;
  /** Position in precedence order (0 = first), for tests and debugging. */
  readonly rank: number;
}

export interface RouteTable {
  readonly kind: 'HTTP' | 'GRPC' | 'NONE';
  /** True when the answer had no routes: every request goes to the Service's own endpoints. */
  readonly empty: boolean;
  /** Every Backend of the answer by `service`, shared by rules and mirrors. */
  readonly backends: ReadonlyMap<string, BackendChoice>;
  /** Problems found while compiling (a regex that does not compile, a backend not in the answer):
   *  the affected match never matches or the backend answers 500. Log them once per update. */
  readonly problems: readonly string[];
  /** Exact paths (HTTP) or `/service/method` (gRPC exact both), each with its candidates in order. */
  readonly exact: ReadonlyMap<string, readonly Candidate[]>;
  /** Every other candidate, in precedence order. */
  readonly ordered: readonly Candidate[];
}

const enum PathKind {
  Any = 0,
  Prefix = 1,
  Regex = 2,
  Exact = 3,
}

interface ValueTest {
  /** Lower-cased for headers, as given for query parameters. */
  readonly name: string;
  readonly exact: string | undefined;
  readonly regex: RegExp | undefined;
}

/** A compiled match (internal; exported for the table's type only). */
export interface Candidate extends RouteCandidate {
  readonly pathKind: PathKind;
  readonly path: string;
  readonly pathRegex: RegExp | undefined;
  /** '' for any. */
  readonly method: string;
  readonly headers: readonly ValueTest[];
  readonly query: readonly ValueTest[];
  // gRPC
  readonly serviceExact: string | undefined;
  readonly serviceRegex: RegExp | undefined;
  readonly methodExact: string | undefined;
  readonly methodRegex: RegExp | undefined;
  /** Never matches (a regex that failed to compile). */
  readonly broken: boolean;
  // Sort keys, and the order of routes, rules and matches for ties.
  readonly keys: readonly number[];
}

const NO_BACKENDS: ReadonlyMap<string, BackendChoice> = new Map();
export const EMPTY_TABLE: RouteTable = Object.freeze({
  kind: 'NONE',
  empty: true,
  backends: NO_BACKENDS,
  problems: [],
  exact: new Map(),
  ordered: [],
});

/** Compiles a regex from a route as the control plane validated it: anchored, `u` flag. */
function compileRegex(source: string, where: string, problems: string[]): RegExp | undefined {
  try {
    return new RegExp(`^(?:${source})$`, 'u');
  } catch (err) {
    problems.push(`${where}: regex ${JSON.stringify(source)} does not compile: ${(err as Error).message}`);
    return undefined;
  }
}

/** Builds the table of an answer; `routes` empty gives a table whose `empty` is true. */
export function compileRoutes(
  routes: readonly Route[] | undefined,
  backends: readonly Backend[] | undefined,
): RouteTable {
  if (routes === undefined || routes.length === 0) return EMPTY_TABLE;
  const problems: string[] = [];
  const choices = new Map<string, BackendChoice>();
  for (const b of backends ?? [])
    choices.set(b.service, { service: b.service, exists: b.exists, endpoints: b.endpoints as readonly Endpoint[] });
  const kind = routes[0]?.kind === 'GRPC' ? 'GRPC' : 'HTTP';
  const all: Candidate[] = [];
  routes.forEach((route, ri) => {
    if (route.kind !== kind) {
      // The control plane never mixes them (a Service port takes one kind); if another one does,
      // the first kind wins, as it would for a listener.
      problems.push(`route ${route.name}: a ${route.kind} route beside ${kind} routes is ignored`);
      return;
    }
    route.rules.forEach((rule, i) => {
      const compiled = compileRule(route, rule, i, choices, problems);
      rule.matches.forEach((m, mi) =>
        all.push(compileMatch(kind, compiled, m, [ri, i, mi], `route ${route.name} rule ${compiled.name}`, problems)),
      );
    });
  });
  all.sort(compareCandidates);
  const exact = new Map<string, Candidate[]>();
  const ordered: Candidate[] = [];
  all.forEach((c, rank) => {
    (c as { rank: number }).rank = rank;
    const key = exactKey(c);
    if (key === undefined) {
      ordered.push(c);
      return;
    }
    let list = exact.get(key);
    if (list === undefined) exact.set(key, (list = []));
    list.push(c);
  });
  return { kind, empty: false, backends: choices, problems, exact, ordered };
}

function compileRule(
  route: Route,
  rule: Rule,
  index: number,
  backends: Map<string, BackendChoice>,
  problems: string[],
): CompiledRule {
  const name = rule.name !== '' ? rule.name : String(index);
  const where = `route ${route.name} rule ${name}`;
  const lookup = (service: string): BackendChoice => {
    let b = backends.get(service);
    if (b === undefined) {
      problems.push(`${where}: backend ${service} is not in the answer`);
      b = { service, exists: false, endpoints: [] };
      backends.set(service, b);
    }
    return b;
  };
  return {
    route: route.name,
    routeKind: route.kind,
    name,
    index,
    filters: compileFilters(rule.filters, lookup),
    split: compileSplit(rule.backends.map((b) => ({ backend: lookup(b.backend), weight: b.weight }))),
    requestTimeoutMs: rule.request_timeout_ms,
    backendRequestTimeoutMs: rule.backend_request_timeout_ms,
    retry: rule.retry !== null && rule.retry !== undefined ? compileRetry(rule.retry as Retry) : undefined,
  };
}

function valueTests(
  list: Match['headers'],
  lower: boolean,
  where: string,
  problems: string[],
): { tests: ValueTest[]; broken: boolean } {
  let broken = false;
  const tests = list.map((v) => {
    const regex = v.type === 'REGEX' ? compileRegex(v.value, where, problems) : undefined;
    if (v.type === 'REGEX' && regex === undefined) broken = true;
    return { name: lower ? v.name.toLowerCase() : v.name, exact: v.type === 'REGEX' ? undefined : v.value, regex };
  });
  return { tests, broken };
}

function compileMatch(
  kind: 'HTTP' | 'GRPC',
  rule: CompiledRule,
  m: Match,
  order: readonly number[],
  where: string,
  problems: string[],
): Candidate {
  const headers = valueTests(m.headers, true, where, problems);
  const query = valueTests(m.query_params, false, where, problems);
  let broken = headers.broken || query.broken;
  let pathKind = PathKind.Any;
  let path = '';
  let pathRegex: RegExp | undefined;
  let prefix: string | undefined;
  let serviceExact: string | undefined;
  let serviceRegex: RegExp | undefined;
  let methodExact: string | undefined;
  let methodRegex: RegExp | undefined;
  let keys: number[];
  if (kind === 'HTTP') {
    const p = m.path ?? { type: 'PREFIX', value: '/' };
    if (p.type === 'EXACT') {
      pathKind = PathKind.Exact;
      path = p.value;
    } else if (p.type === 'REGEX') {
      pathKind = PathKind.Regex;
      path = p.value;
      pathRegex = compileRegex(p.value, where, problems);
      if (pathRegex === undefined) broken = true;
    } else {
      pathKind = PathKind.Prefix;
      // Gateway API: a trailing '/' is ignored, and matching is by whole path elements.
      path = p.value.endsWith('/') ? p.value.slice(0, -1) : p.value;
      prefix = path;
    }
    // Gateway API's precedence, with Linkerd's placement of regular expressions: Exact, then
    // RegularExpression, then PathPrefix (each longer value first), then a method, then more header
    // matches, then more query matches; then the order of routes, rules and matches.
    keys = [-pathKind, -path.length, m.method !== '' ? 0 : 1, -headers.tests.length, -query.tests.length, ...order];
  } else {
    const g = m.grpc_method;
    let serviceRank = 2;
    let methodRank = 2;
    if (g !== null && g !== undefined) {
      if (g.service !== '') {
        serviceRank = g.type === 'REGEX' ? 1 : 0;
        if (g.type === 'REGEX') serviceRegex = compileRegex(g.service, where, problems);
        else serviceExact = g.service;
        if (g.type === 'REGEX' && serviceRegex === undefined) broken = true;
      }
      if (g.method !== '') {
        methodRank = g.type === 'REGEX' ? 1 : 0;
        if (g.type === 'REGEX') methodRegex = compileRegex(g.method, where, problems);
        else methodExact = g.method;
        if (g.type === 'REGEX' && methodRegex === undefined) broken = true;
      }
    }
    // GRPCRoute's precedence: the longest matching service, then the longest matching method, then
    // more header matches; an exact name goes before any regex (whose length says little).
    const serviceLen = serviceExact?.length ?? serviceRegex?.source.length ?? 0;
    const methodLen = methodExact?.length ?? methodRegex?.source.length ?? 0;
    keys = [serviceRank, -serviceLen, methodRank, -methodLen, -headers.tests.length, ...order];
  }
  return {
    rule,
    prefix,
    rank: 0,
    pathKind,
    path,
    pathRegex,
    method: m.method,
    headers: headers.tests,
    query: query.tests,
    serviceExact,
    serviceRegex,
    methodExact,
    methodRegex,
    broken,
    keys,
  };
}

function compareCandidates(a: Candidate, b: Candidate): number {
  const n = Math.min(a.keys.length, b.keys.length);
  for (let i = 0; i < n; i++) {
    const d = (a.keys[i] as number) - (b.keys[i] as number);
    if (d !== 0) return d;
  }
  return a.keys.length - b.keys.length;
}

function exactKey(c: Candidate): string | undefined {
  if (c.broken) return undefined;
  if (c.pathKind === PathKind.Exact) return c.path;
  if (c.serviceExact !== undefined && c.methodExact !== undefined) return `/${c.serviceExact}/${c.methodExact}`;
  return undefined;
}

/** The rule for `req`: undefined when the table is empty (use the Service's endpoints) or when no
 *  rule matches (answer 404, or gRPC UNIMPLEMENTED, as Gateway API says; check `table.empty`). */
export function matchRoute(table: RouteTable, req: RouteRequest): RouteCandidate | undefined {
  if (table.empty) return undefined;
  const first = table.exact.get(req.path);
  if (first !== undefined) {
    for (let i = 0; i < first.length; i++) {
      const c = first[i] as Candidate;
      if (matches(table.kind, c, req)) return c;
    }
  }
  const list = table.ordered;
  for (let i = 0; i < list.length; i++) {
    const c = list[i] as Candidate;
    if (matches(table.kind, c, req)) return c;
  }
  return undefined;
}

function matches(kind: RouteTable['kind'], c: Candidate, req: RouteRequest): boolean {
  if (c.broken) return false;
  if (kind === 'GRPC') {
    if (
      c.serviceExact !== undefined ||
      c.serviceRegex !== undefined ||
      c.methodExact !== undefined ||
      c.methodRegex !== undefined
    ) {
      // `/package.Service/Method`
      const path = req.path;
      const slash = path.lastIndexOf('/');
      if (slash <= 0 || path.charCodeAt(0) !== 0x2f) return false;
      if (
        c.serviceExact !== undefined
          ? !(slash - 1 === c.serviceExact.length && path.startsWith(c.serviceExact, 1))
          : c.serviceRegex !== undefined && !c.serviceRegex.test(path.slice(1, slash))
      )
        return false;
      if (
        c.methodExact !== undefined
          ? !(path.length - slash - 1 === c.methodExact.length && path.endsWith(c.methodExact))
          : c.methodRegex !== undefined && !c.methodRegex.test(path.slice(slash + 1))
      )
        return false;
    }
  } else {
    switch (c.pathKind) {
      case PathKind.Exact:
        if (req.path !== c.path) return false;
        break;
      case PathKind.Prefix: {
        const p = c.path;
        if (
          p !== '' &&
          !(req.path.startsWith(p) && (req.path.length === p.length || req.path.charCodeAt(p.length) === 0x2f))
        )
          return false;
        break;
      }
      case PathKind.Regex:
        if (!(c.pathRegex as RegExp).test(req.path)) return false;
        break;
      case PathKind.Any:
        break;
    }
    if (c.method !== '' && req.method !== c.method) return false;
  }
  for (let i = 0; i < c.headers.length; i++) {
    const t = c.headers[i] as ValueTest;
    const v = headerValue(req.headers, t.name);
    if (v === undefined || !testValue(t, v)) return false;
  }
  for (let i = 0; i < c.query.length; i++) {
    const t = c.query[i] as ValueTest;
    const v = queryValue(req.query, t.name);
    if (v === undefined || !testValue(t, v)) return false;
  }
  return true;
}

function testValue(t: ValueTest, v: string): boolean {
  return t.exact !== undefined ? v === t.exact : (t.regex as RegExp).test(v);
}

/** The value of header `lower` (a lower-case name) in a field list; several fields are joined with
 *  ',' as RFC 9110 section 5.3 combines them. Undefined when absent. */
export function headerValue(fields: readonly string[], lower: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i] as string;
    if (name.length !== lower.length || name.toLowerCase() !== lower) continue;
    const v = fields[i + 1] as string;
    out = out === undefined ? v : `${out},${v}`;
  }
  return out;
}

/** The first value of query parameter `name` (case-sensitive), percent-decoded ('+' is a space, as in
 *  forms); undefined when absent. A malformed escape leaves the raw value. */
export function queryValue(query: string, name: string): string | undefined {
  if (query === '') return undefined;
  let start = 0;
  while (start <= query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const eq = query.indexOf('=', start);
    const nameEnd = eq !== -1 && eq < end ? eq : end;
    if (nameEnd - start === name.length && query.startsWith(name, start)) {
      const raw = nameEnd < end ? query.slice(nameEnd + 1, end) : '';
      if (raw.indexOf('%') === -1 && raw.indexOf('+') === -1) return raw;
      try {
        return decodeURIComponent(raw.replaceAll('+', ' '));
      } catch {
        return raw;
      }
    }
    start = end + 1;
  }
  return undefined;
}

/** Splits a request target into path and query (`/a?b=1` → `/a`, `b=1`). */
export function splitTarget(target: string): { path: string; query: string } {
  const q = target.indexOf('?');
  return q === -1 ? { path: target, query: '' } : { path: target.slice(0, q), query: target.slice(q + 1) };
}
