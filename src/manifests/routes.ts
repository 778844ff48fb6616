// Rules of HTTPRoute and GRPCRoute that a schema cannot state: parents and backends that must be
// Services (GAMMA, https://gateway-api.sigs.k8s.io/mesh/), regexes that must compile, filters that
// conflict, timeouts that must nest, and the retry annotations. Per-document checks run when a route is
// loaded; checkRouteReferences runs once every document is known (Services named must exist and have
// the port).
//
// Retries are configured with annotations on the route, as Linkerd does (retry.linkerd.io/http,
// retry.linkerd.io/limit), rather than with a policy kind or Gateway API's experimental `rules[].retry`
// (GEP-1731, not in the v1 standard channel, so a strict v1 schema would refuse it in a cluster):
//   retry.outrigger.io/on: "5xx,gateway-error,connect-failure"   (HTTPRoute: also `reset`, 429, 500-504)
//   retry.outrigger.io/on: "unavailable,deadline-exceeded"       (GRPCRoute: gRPC status names, kebab-case)
//   retry.outrigger.io/attempts: "2"                             (retries after the first try, 1-10, default 1)
// One place, next to the rules it applies to, read by people and by `kubectl get -o yaml` alike, and
// no new kind whose target could go stale. It applies to every rule of the route.
import { ANNOTATION } from './contract.js';
import { POLICY_GROUP } from './policy.js';
import type { Path, Report } from './check.js';
import {
  DURATION,
  type BackendRef,
  type GRPCRouteDoc,
  type HeaderModifier,
  type HTTPPathModifier,
  type HTTPRouteDoc,
  type HTTPRouteMatch,
  type ParentRef,
} from './schema.js';
import type { RetryPolicy, RouteObject, ServiceObject } from './types.js';

export const MAX_RETRY_ATTEMPTS = 10;
/** The longest timer Node.js can set (2^31 - 1 ms); a longer one would fire at once. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** gRPC status codes by their kebab-case names (https://grpc.github.io/grpc/core/md_doc_statuscodes.html). */
export const GRPC_STATUS: Readonly<Record<string, number>> = {
  cancelled: 1,
  unknown: 2,
  'invalid-argument': 3,
  'deadline-exceeded': 4,
  'not-found': 5,
  'already-exists': 6,
  'permission-denied': 7,
  'resource-exhausted': 8,
  'failed-precondition': 9,
  aborted: 10,
  'out-of-range': 11,
  unimplemented: 12,
  internal: 13,
  unavailable: 14,
  'data-loss': 15,
  unauthenticated: 16,
};

const HTTP_RETRY_HELP =
  '5xx, gateway-error, connect-failure, reset, or a status or range from 400 to 599 such as 503 or 500-504';
const GRPC_RETRY_HELP = `connect-failure, reset, or gRPC status names: ${Object.keys(GRPC_STATUS).join(', ')}`;

/** Parses a Gateway API duration (`1m30s`, `500ms`) into milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  if (!DURATION.test(text)) return undefined;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  let ms = 0;
  for (const m of text.matchAll(/([0-9]+)(ms|h|m|s)/g)) ms += Number(m[1]) * (unit[m[2] as string] ?? 0);
  return ms;
}

/** Why a regular expression from a route is refused, or undefined when it is fine. Routes' regexes are
 *  matched in full (as anchored) with JavaScript's `u` flag; back-references and look-around are
 *  refused because RE2 (Envoy's, Linkerd's and the Gateway API's usual engine) has neither, so a route
 *  means the same in any mesh, and because they are the usual way to make matching cost explode. */
export function regexProblem(source: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') {
      const n = source[i + 1] ?? '';
      if (!inClass && (/[1-9]/.test(n) || n === 'k')) return 'must not use back-references (RE2 syntax)';
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(' && source[i + 1] === '?' && /^(=|!|<=|<!)/.test(source.slice(i + 2, i + 4))) {
      return 'must not use look-ahead or look-behind (RE2 syntax)';
    }
  }
  try {
    new RegExp(`^(?:${source})$`, 'u');
  } catch (err) {
    return `is not a valid regular expression: ${(err as Error).message.replace(/^Invalid regular expression: \/.*\/u: /s, '').toLowerCase()}`;
  }
  return undefined;
}

/** Gateway API's HTTPPathMatch rules for Exact and PathPrefix values. */
function pathProblem(value: string): string | undefined {
  if (!value.startsWith('/')) return `must start with "/", got ${JSON.stringify(value)}`;
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
    if (value.includes(bad)) return `must not contain ${JSON.stringify(bad)}, got ${JSON.stringify(value)}`;
  }
  if (value.endsWith('/..') || value.endsWith('/.'))
    return `must not end with "/." or "/..", got ${JSON.stringify(value)}`;
  if (/[^\x21-\x7e]/.test(value))
    return `must be visible ASCII (percent-encode the rest), got ${JSON.stringify(value)}`;
  return undefined;
}

// gRPC names as GRPCRoute's validation states them (GRPCMethodMatch).
const GRPC_SERVICE = /^\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*$/;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

/** Headers that carry the message framing or the connection: a filter that changed them would break
 *  the proxy's forwarding, so they are refused rather than ignored. */
const FRAMING_HEADERS = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'host',
]);

/** Per-document checks of a route; returns its retry policy (undefined: no retries). */
export function checkRoute(doc: HTTPRouteDoc | GRPCRouteDoc, report: Report): RetryPolicy | undefined {
  const ns = doc.metadata.namespace;
  const spec = doc.spec;
  if (spec.hostnames !== undefined && spec.hostnames.length > 0) {
    report(
      ['spec', 'hostnames'],
      'is not supported on a route attached to a Service (GAMMA): the Service is the host; remove it',
    );
  }
  const seenParents = new Map<string, number>();
  spec.parentRefs.forEach((p, i) => {
    const at = ['spec', 'parentRefs', i];
    checkParentRef(p, at, ns, report);
    const id = JSON.stringify([p.group, p.kind, p.namespace ?? ns, p.name, p.port, p.sectionName]);
    const dup = seenParents.get(id);
    if (dup !== undefined) report(at, `duplicate parentRef (also parentRefs[${dup}])`);
    else seenParents.set(id, i);
  });
  spec.rules.forEach((r, i) => {
    const at = ['spec', 'rules', i];
    if (doc.kind === 'HTTPRoute') {
      const rule = doc.spec.rules[i];
      if (rule === undefined) return;
      (rule.matches ?? []).forEach((m, j) => checkHttpMatch(m, [...at, 'matches', j], report));
      checkHttpFilters(rule, at, report);
      checkTimeouts(rule.timeouts, [...at, 'timeouts'], report);
    } else {
      const rule = doc.spec.rules[i];
      if (rule === undefined) return;
      (rule.matches ?? []).forEach((m, j) => {
        const mat = [...at, 'matches', j];
        if (m.method !== undefined) {
          const { type, service, method } = m.method;
          if (service === undefined && method === undefined)
            report([...mat, 'method'], 'needs a service, a method or both');
          if (service !== undefined)
            checkName(
              type,
              service,
              GRPC_SERVICE,
              'a gRPC service name such as "helloworld.Greeter"',
              [...mat, 'method', 'service'],
              report,
            );
          if (method !== undefined)
            checkName(
              type,
              method,
              GRPC_METHOD,
              'a gRPC method name such as "SayHello"',
              [...mat, 'method', 'method'],
              report,
            );
        }
        checkHeaderMatches(m.headers, [...mat, 'headers'], report);
      });
      checkFilterFields(rule.filters, at, report);
    }
    if ('retry' in r && r.retry !== undefined) {
      report(
        [...at, 'retry'],
        `is experimental in Gateway API (GEP-1731) and not supported; use the ${ANNOTATION.retryOn} and ${ANNOTATION.retryAttempts} annotations on the route`,
      );
    }
    r.backendRefs.forEach((b, j) => checkBackendRef(b, [...at, 'backendRefs', j], ns, report));
    const weighted = r.backendRefs.reduce((sum, b) => sum + b.weight, 0);
    if (r.backendRefs.length > 0 && weighted === 0) {
      report(
        [...at, 'backendRefs'],
        'every weight is 0: the rule would answer every request with 500; give one backend a weight above 0',
      );
    }
  });
  return readRetry(doc, report);
}

function checkName(
  type: 'Exact' | 'RegularExpression',
  value: string,
  re: RegExp,
  what: string,
  at: Path,
  report: Report,
): void {
  if (type === 'RegularExpression') {
    const problem = regexProblem(value);
    if (problem !== undefined) report(at, `${problem}, got ${JSON.stringify(value)}`);
  } else if (!re.test(value)) {
    report(at, `must be ${what}, got ${JSON.stringify(value)}`);
  }
}

/** An inbound route: attached to a Server (policy.outrigger.io) rather than a Service. */
export function isServerParent(p: Pick<ParentRef, 'group' | 'kind'>): boolean {
  return p.group === POLICY_GROUP && p.kind === 'Server';
}

function checkParentRef(p: ParentRef, at: Path, ns: string, report: Report): void {
  if (isServerParent(p)) {
    // An inbound route (authorization per route, on the server's side): checked with the policies.
    if (p.namespace !== undefined && p.namespace !== ns)
      report(
        [...at, 'namespace'],
        `must be the route's own namespace ${JSON.stringify(ns)}, got ${JSON.stringify(p.namespace)}`,
      );
    if (p.port !== undefined || p.sectionName !== undefined)
      report(
        [...at, p.port !== undefined ? 'port' : 'sectionName'],
        'must not be set on a Server parent: the Server names its port',
      );
    return;
  }
  if (p.group === undefined) {
    report(
      [...at, 'group'],
      'is required: "" for a Service (Gateway API\'s default is gateway.networking.k8s.io, the group of Gateways)',
    );
  } else if (p.group !== '' && p.group !== 'core') {
    report([...at, 'group'], `must be "" (the core group, of Services), got ${JSON.stringify(p.group)}`);
  }
  if (p.kind === undefined) {
    report(
      [...at, 'kind'],
      'is required: "Service" (Gateway API\'s default is Gateway; outrigger attaches routes to Services only)',
    );
  } else if (p.kind !== 'Service') {
    report(
      [...at, 'kind'],
      `must be "Service" (outbound routes, GAMMA) or, with group policy.outrigger.io, "Server" (inbound routes); outrigger has no Gateways, got ${JSON.stringify(p.kind)}`,
    );
  }
  if (p.namespace !== undefined && p.namespace !== ns) {
    report(
      [...at, 'namespace'],
      `must be the route's own namespace ${JSON.stringify(ns)}: routes for a Service in another namespace (consumer routes) are not supported yet, got ${JSON.stringify(p.namespace)}`,
    );
  }
}

function checkBackendRef(b: BackendRef, at: Path, ns: string, report: Report): void {
  if (b.group !== '' && b.group !== 'core')
    report([...at, 'group'], `must be "" (the core group, of Services), got ${JSON.stringify(b.group)}`);
  if (b.kind !== 'Service') report([...at, 'kind'], `must be "Service", got ${JSON.stringify(b.kind)}`);
  if (b.namespace !== undefined && b.namespace !== ns) {
    report(
      [...at, 'namespace'],
      `must be the route's own namespace ${JSON.stringify(ns)}: a backend in another namespace needs a ReferenceGrant, which outrigger does not support yet, got ${JSON.stringify(b.namespace)}`,
    );
  }
  if (b.port === undefined) report([...at, 'port'], 'is required: the port of the Service that receives the requests');
  if ('filters' in b && b.filters !== undefined)
    report([...at, 'filters'], 'are not supported on a backendRef; put the filter on the rule');
}

function checkHeaderMatches(
  headers: readonly { type: string; name: string; value: string }[],
  at: Path,
  report: Report,
): void {
  const seen = new Map<string, number>();
  headers.forEach((h, i) => {
    const lower = h.name.toLowerCase();
    const dup = seen.get(lower);
    if (dup !== undefined)
      report(
        [...at, i, 'name'],
        `duplicate header ${JSON.stringify(h.name)} (also [${dup}]); header names are case-insensitive`,
      );
    else seen.set(lower, i);
    if (h.type === 'RegularExpression') {
      const problem = regexProblem(h.value);
      if (problem !== undefined) report([...at, i, 'value'], `${problem}, got ${JSON.stringify(h.value)}`);
    }
  });
}

function checkHttpMatch(m: HTTPRouteMatch, at: Path, report: Report): void {
  if (m.path !== undefined) {
    const problem = m.path.type === 'RegularExpression' ? regexProblem(m.path.value) : pathProblem(m.path.value);
    if (problem !== undefined)
      report(
        [...at, 'path', 'value'],
        m.path.type === 'RegularExpression' ? `${problem}, got ${JSON.stringify(m.path.value)}` : problem,
      );
  }
  checkHeaderMatches(m.headers, [...at, 'headers'], report);
  const seen = new Map<string, number>();
  m.queryParams.forEach((q, i) => {
    // Query parameter names are case-sensitive (Gateway API).
    const dup = seen.get(q.name);
    if (dup !== undefined)
      report(
        [...at, 'queryParams', i, 'name'],
        `duplicate query parameter ${JSON.stringify(q.name)} (also queryParams[${dup}])`,
      );
    else seen.set(q.name, i);
    if (q.type === 'RegularExpression') {
      const problem = regexProblem(q.value);
      if (problem !== undefined)
        report([...at, 'queryParams', i, 'value'], `${problem}, got ${JSON.stringify(q.value)}`);
    }
  });
}

/** The config field each filter type carries. */
const FILTER_FIELD = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
} as const;

type AnyFilter = { type: keyof typeof FILTER_FIELD } & Partial<
  Record<(typeof FILTER_FIELD)[keyof typeof FILTER_FIELD], unknown>
>;

/** Each filter has exactly its own config; no type but RequestMirror twice; header modifiers sane. */
function checkFilterFields(filters: readonly AnyFilter[], at: Path, report: Report): void {
  const seen = new Map<string, number>();
  filters.forEach((f, i) => {
    const fat = [...at, 'filters', i];
    const own = FILTER_FIELD[f.type];
    if (f[own] === undefined) report([...fat, own], `is required for a filter of type ${f.type}`);
    for (const other of Object.values(FILTER_FIELD)) {
      if (other !== own && f[other] !== undefined)
        report([...fat, other], `must not be set on a filter of type ${f.type}`);
    }
    const dup = seen.get(f.type);
    if (dup !== undefined && f.type !== 'RequestMirror')
      report([...fat, 'type'], `${f.type} may appear once per rule (also filters[${dup}])`);
    else if (dup === undefined) seen.set(f.type, i);
    if (f.type === 'RequestHeaderModifier' || f.type === 'ResponseHeaderModifier') {
      const m = f[own] as HeaderModifier | undefined;
      if (m !== undefined) checkHeaderModifier(m, [...fat, own], report);
    }
    if (f.type === 'RequestMirror') {
      const m = f.requestMirror as
        { percent?: number; fraction?: { numerator: number; denominator: number }; backendRef: BackendRef } | undefined;
      if (m?.percent !== undefined && m.fraction !== undefined)
        report([...fat, 'requestMirror'], 'give percent or fraction, not both');
      if (m?.fraction !== undefined && m.fraction.numerator > m.fraction.denominator) {
        report(
          [...fat, 'requestMirror', 'fraction', 'numerator'],
          `must not exceed the denominator (${m.fraction.denominator}), got ${m.fraction.numerator}`,
        );
      }
    }
  });
}

function checkHeaderModifier(m: HeaderModifier, at: Path, report: Report): void {
  const seen = new Map<string, string>();
  const check = (name: string, path: Path, where: string): void => {
    const lower = name.toLowerCase();
    if (FRAMING_HEADERS.has(lower))
      report(
        path,
        `header ${JSON.stringify(name)} cannot be changed by a filter: the proxy owns the message framing and the connection`,
      );
    const first = seen.get(lower);
    if (first !== undefined)
      report(path, `header ${JSON.stringify(name)} is also in ${first}; header names are case-insensitive`);
    else seen.set(lower, where);
  };
  m.set.forEach((h, i) => check(h.name, [...at, 'set', i, 'name'], `set[${i}]`));
  m.add.forEach((h, i) => check(h.name, [...at, 'add', i, 'name'], `add[${i}]`));
  m.remove.forEach((n, i) => check(n, [...at, 'remove', i], `remove[${i}]`));
  if (m.set.length + m.add.length + m.remove.length === 0) report(at, 'does nothing: give set, add or remove');
}

function checkHttpFilters(rule: HTTPRouteDoc['spec']['rules'][number], at: Path, report: Report): void {
  checkFilterFields(rule.filters, at, report);
  const redirectAt = rule.filters.findIndex((f) => f.type === 'RequestRedirect');
  const rewriteAt = rule.filters.findIndex((f) => f.type === 'URLRewrite');
  if (redirectAt !== -1 && rewriteAt !== -1) {
    report(
      [...at, 'filters', Math.max(redirectAt, rewriteAt), 'type'],
      `URLRewrite (filters[${rewriteAt}]) and RequestRedirect (filters[${redirectAt}]) cannot be in one rule: a redirect answers the request, so there is nothing to rewrite`,
    );
  }
  if (redirectAt !== -1 && rule.backendRefs.length > 0) {
    report(
      [...at, 'backendRefs'],
      `must be empty with a RequestRedirect filter (filters[${redirectAt}]): the proxy answers with the redirect and sends nothing to a backend`,
    );
  }
  rule.filters.forEach((f, i) => {
    const path =
      f.type === 'RequestRedirect' ? f.requestRedirect?.path : f.type === 'URLRewrite' ? f.urlRewrite?.path : undefined;
    if (path === undefined) return;
    const field = f.type === 'RequestRedirect' ? 'requestRedirect' : 'urlRewrite';
    checkPathModifier(path, rule.matches, [...at, 'filters', i, field, 'path'], report);
  });
}

function checkPathModifier(
  p: HTTPPathModifier,
  matches: readonly HTTPRouteMatch[] | undefined,
  at: Path,
  report: Report,
): void {
  const own = p.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
  const other = p.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
  const value = p[own];
  if (value === undefined) report([...at, own], `is required for type ${p.type}`);
  else if (!value.startsWith('/') || /[^\x21-\x7e]/.test(value))
    report([...at, own], `must be a path starting with "/" in visible ASCII, got ${JSON.stringify(value)}`);
  if (p[other] !== undefined) report([...at, other], `must not be set for type ${p.type}`);
  if (p.type === 'ReplacePrefixMatch') {
    // Gateway API: the prefix replaced is the one matched, so there must be exactly one, a PathPrefix
    // (no matches means the default PathPrefix "/").
    const ms = matches ?? [{ path: { type: 'PathPrefix', value: '/' } }];
    const prefixes = ms.length === 1 && (ms[0]?.path === undefined || ms[0].path.type === 'PathPrefix');
    if (!prefixes)
      report([...at, 'type'], 'ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path');
  }
}

function checkTimeouts(t: { request?: string; backendRequest?: string } | undefined, at: Path, report: Report): void {
  if (t === undefined) return;
  const request = t.request !== undefined ? parseDuration(t.request) : undefined;
  const backend = t.backendRequest !== undefined ? parseDuration(t.backendRequest) : undefined;
  if (request !== undefined && request > MAX_TIMEOUT_MS)
    report(
      [...at, 'request'],
      `must be at most 596h (the longest timer Node.js can set), got ${JSON.stringify(t.request)}`,
    );
  if (backend !== undefined && backend > MAX_TIMEOUT_MS)
    report(
      [...at, 'backendRequest'],
      `must be at most 596h (the longest timer Node.js can set), got ${JSON.stringify(t.backendRequest)}`,
    );
  if (request !== undefined && backend !== undefined && request !== 0 && (backend > request || backend === 0)) {
    report(
      [...at, 'backendRequest'],
      `must not exceed request (${t.request ?? ''}): each attempt fits in the whole request, got ${JSON.stringify(t.backendRequest)}`,
    );
  }
}

/** The route's retry policy from its annotations; problems are reported on the annotation. */
function readRetry(doc: HTTPRouteDoc | GRPCRouteDoc, report: Report): RetryPolicy | undefined {
  const ann = doc.metadata.annotations;
  const on = ann[ANNOTATION.retryOn];
  const attemptsText = ann[ANNOTATION.retryAttempts];
  const onAt = ['metadata', 'annotations', ANNOTATION.retryOn];
  const attemptsAt = ['metadata', 'annotations', ANNOTATION.retryAttempts];
  let attempts = 1;
  if (attemptsText !== undefined) {
    if (!/^[0-9]{1,2}$/.test(attemptsText) || Number(attemptsText) < 1 || Number(attemptsText) > MAX_RETRY_ATTEMPTS) {
      report(
        attemptsAt,
        `must be a whole number of retries from 1 to ${MAX_RETRY_ATTEMPTS}, got ${JSON.stringify(attemptsText)}`,
      );
    } else {
      attempts = Number(attemptsText);
    }
    if (on === undefined) report(attemptsAt, `has no effect without ${ANNOTATION.retryOn}, which says what is retried`);
  }
  if (on === undefined) return undefined;
  const grpc = doc.kind === 'GRPCRoute';
  const policy = {
    attempts,
    statuses: [] as [number, number][],
    grpcCodes: [] as number[],
    connectFailure: false,
    reset: false,
    timeout: false,
  };
  const tokens = on.split(',').map((t) => t.trim());
  const seen = new Set<string>();
  let ok = true;
  for (const t of tokens) {
    const bad = (why: string) => {
      ok = false;
      report(
        onAt,
        `${why} in ${JSON.stringify(on)}; allowed on a${grpc ? ' GRPCRoute' : 'n HTTPRoute'}: ${grpc ? GRPC_RETRY_HELP : HTTP_RETRY_HELP}`,
      );
    };
    if (t === '') {
      bad('empty entry');
      continue;
    }
    if (seen.has(t)) {
      bad(`${JSON.stringify(t)} is listed twice`);
      continue;
    }
    seen.add(t);
    if (t === 'connect-failure') policy.connectFailure = true;
    else if (t === 'reset') policy.reset = true;
    else if (grpc) {
      const code = GRPC_STATUS[t];
      if (code !== undefined) {
        policy.grpcCodes.push(code);
        if (code === 4) policy.timeout = true;
      } else if (t === '5xx' || t === 'gateway-error' || /^[0-9]/.test(t))
        bad(`${JSON.stringify(t)} is for HTTP responses; a GRPCRoute retries on gRPC statuses`);
      else bad(`unknown retry condition ${JSON.stringify(t)}`);
    } else if (t === '5xx' || t === 'gateway-error') {
      // As Envoy's: an endpoint that gave no response (could not be reached, reset, timed out) is
      // retried under both, since the proxy would answer 502, 503 or 504 for it.
      policy.statuses.push(t === '5xx' ? [500, 599] : [502, 504]);
      policy.connectFailure = policy.reset = policy.timeout = true;
    } else {
      const m = /^([0-9]{3})(?:-([0-9]{3}))?$/.exec(t);
      const from = m ? Number(m[1]) : NaN;
      const to = m?.[2] !== undefined ? Number(m[2]) : from;
      if (!m) {
        bad(
          GRPC_STATUS[t] !== undefined
            ? `${JSON.stringify(t)} is a gRPC status; use it on a GRPCRoute`
            : `unknown retry condition ${JSON.stringify(t)}`,
        );
      } else if (from < 400 || to > 599 || from > to) {
        bad(`status range ${JSON.stringify(t)} must lie within 400-599 and not end before it starts`);
      } else {
        policy.statuses.push([from, to]);
      }
    }
  }
  return ok ? policy : undefined;
}

// ---- across documents -------------------------------------------------------------------------

/** What a cross-document check needs to know of a Service: undefined when the Service exists but its
 *  document was invalid (its ports are unknown, so nothing more is said about references to it). */
export type ServiceLookup = (
  namespace: string,
  name: string,
) => { readonly found: boolean; readonly service?: ServiceObject };

/** The Services a route names (parents, backends, mirrors) must exist with the ports it names; a
 *  Service port takes either HTTPRoutes or GRPCRoutes. `reportAt` reports on the route's document. */
export function checkRouteReferences(
  routes: readonly RouteObject[],
  lookup: ServiceLookup,
  reportAt: (route: RouteObject, path: Path, message: string) => void,
): void {
  /** `ns/name:port` (or `ns/name:*`) → the first route of each kind attached there. */
  const attached = new Map<string, { http?: RouteObject; grpc?: RouteObject }>();
  for (const route of routes) {
    const ns = route.metadata.namespace;
    const report = (path: Path, message: string) => reportAt(route, path, message);
    route.spec.parentRefs.forEach((p, i) => {
      const at = ['spec', 'parentRefs', i];
      if (isServerParent(p)) return; // policy-check.ts
      const found = lookup(ns, p.name);
      if (!found.found) {
        report(
          [...at, 'name'],
          `Service ${JSON.stringify(`${ns}/${p.name}`)} does not exist: a route attaches to a Service in its own namespace`,
        );
        return;
      }
      const svc = found.service;
      if (svc === undefined) return;
      let port = p.port;
      if (p.sectionName !== undefined) {
        const named = svc.spec.ports.find((sp) => sp.name === p.sectionName);
        if (named === undefined)
          report(
            [...at, 'sectionName'],
            `Service ${ns}/${p.name} has no port named ${JSON.stringify(p.sectionName)} (${portList(svc)})`,
          );
        else if (port !== undefined && named.port !== port)
          report([...at, 'port'], `is ${port} but sectionName ${JSON.stringify(p.sectionName)} is port ${named.port}`);
        else port = named.port;
      }
      if (p.port !== undefined && !svc.spec.ports.some((sp) => sp.port === p.port)) {
        report([...at, 'port'], `Service ${ns}/${p.name} has no port ${p.port} (${portList(svc)})`);
        return;
      }
      const ports = port !== undefined ? [port] : svc.spec.ports.map((sp) => sp.port);
      for (const n of ports) {
        const key = `${ns}/${p.name}:${n}`;
        const slot = attached.get(key) ?? {};
        attached.set(key, slot);
        const mine = route.kind === 'GRPCRoute' ? 'grpc' : 'http';
        const other = route.kind === 'GRPCRoute' ? slot.http : slot.grpc;
        if (other !== undefined) {
          report(
            [...at],
            `Service ${ns}/${p.name} port ${n} also has ${other.kind} ${other.metadata.namespace}/${other.metadata.name}: a Service port takes HTTPRoutes or GRPCRoutes, not both`,
          );
          break;
        }
        slot[mine] ??= route;
      }
    });
    route.spec.rules.forEach((r, i) => {
      r.backendRefs.forEach((b, j) =>
        checkBackendExists(b, ['spec', 'rules', i, 'backendRefs', j], ns, lookup, report),
      );
      r.filters.forEach((f, j) => {
        if (f.type === 'RequestMirror' && f.requestMirror !== undefined) {
          checkBackendExists(
            f.requestMirror.backendRef,
            ['spec', 'rules', i, 'filters', j, 'requestMirror', 'backendRef'],
            ns,
            lookup,
            report,
          );
        }
      });
    });
  }
}

function checkBackendExists(
  b: Pick<BackendRef, 'kind' | 'name' | 'namespace' | 'port'>,
  at: Path,
  ns: string,
  lookup: ServiceLookup,
  report: Report,
): void {
  if (b.kind !== 'Service' || (b.namespace !== undefined && b.namespace !== ns)) return; // reported already
  const found = lookup(ns, b.name);
  if (!found.found) {
    report([...at, 'name'], `Service ${JSON.stringify(`${ns}/${b.name}`)} does not exist`);
    return;
  }
  const svc = found.service;
  if (svc !== undefined && b.port !== undefined && !svc.spec.ports.some((p) => p.port === b.port)) {
    report([...at, 'port'], `Service ${ns}/${b.name} has no port ${b.port} (${portList(svc)})`);
  }
}

function portList(svc: ServiceObject): string {
  return `its ports: ${svc.spec.ports.map((p) => (p.name !== undefined ? `${p.port} (${p.name})` : String(p.port))).join(', ')}`;
}
