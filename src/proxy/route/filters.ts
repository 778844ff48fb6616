// Gateway API filters as functions over a request: header modifiers over a field list (alternating
// raw name, value, as MessageHead.fields), URL rewrites, redirects and the mirror decision. Compiled
// once per destination answer; applying them allocates only what the change itself needs.
import type { Filter, PathModifier } from '../../api/destination.js';
import type { BackendChoice } from './split.js';

export interface CompiledHeaderModifier {
  /** Lower-case name, name as written, value. */
  readonly set: readonly (readonly [string, string, string])[];
  readonly add: readonly (readonly [string, string])[];
  /** Lower-case names. */
  readonly remove: readonly string[];
}

export interface CompiledMirror {
  readonly backend: BackendChoice;
  readonly numerator: number;
  readonly denominator: number;
}

export interface CompiledRewrite {
  /** undefined: keep the authority. */
  readonly hostname: string | undefined;
  readonly path: PathModifier | undefined;
}

export interface CompiledRedirect {
  /** undefined: the request's. */
  readonly scheme: 'http' | 'https' | undefined;
  readonly hostname: string | undefined;
  readonly path: PathModifier | undefined;
  /** undefined: derived (see redirectLocation). */
  readonly port: number | undefined;
  readonly statusCode: number;
}

export interface CompiledFilters {
  readonly request: CompiledHeaderModifier | undefined;
  readonly response: CompiledHeaderModifier | undefined;
  readonly mirrors: readonly CompiledMirror[];
  readonly rewrite: CompiledRewrite | undefined;
  /** When set, the proxy answers with the redirect and sends nothing upstream. */
  readonly redirect: CompiledRedirect | undefined;
}

const NONE: CompiledFilters = Object.freeze({
  request: undefined,
  response: undefined,
  mirrors: [],
  rewrite: undefined,
  redirect: undefined,
});

function compileModifier(m: Filter['header_modifier']): CompiledHeaderModifier {
  return {
    set: (m?.set ?? []).map((h) => [h.name.toLowerCase(), h.name, h.value] as const),
    add: (m?.add ?? []).map((h) => [h.name, h.value] as const),
    remove: (m?.remove ?? []).map((n) => n.toLowerCase()),
  };
}

/** `backend` finds a Backend of the answer by its service (one that is missing is answered 500). */
export function compileFilters(
  filters: readonly Filter[],
  backend: (service: string) => BackendChoice,
): CompiledFilters {
  if (filters.length === 0) return NONE;
  let request: CompiledHeaderModifier | undefined;
  let response: CompiledHeaderModifier | undefined;
  const mirrors: CompiledMirror[] = [];
  let rewrite: CompiledRewrite | undefined;
  let redirect: CompiledRedirect | undefined;
  for (const f of filters) {
    switch (f.type) {
      case 'REQUEST_HEADER_MODIFIER':
        request = compileModifier(f.header_modifier);
        break;
      case 'RESPONSE_HEADER_MODIFIER':
        response = compileModifier(f.header_modifier);
        break;
      case 'REQUEST_MIRROR':
        if (f.mirror)
          mirrors.push({
            backend: backend(f.mirror.backend),
            numerator: f.mirror.numerator,
            denominator: Math.max(1, f.mirror.denominator),
          });
        break;
      case 'URL_REWRITE':
        rewrite = { hostname: f.url_rewrite?.hostname || undefined, path: f.url_rewrite?.path ?? undefined };
        break;
      case 'REQUEST_REDIRECT': {
        const r = f.redirect;
        const scheme = r?.scheme === 'http' || r?.scheme === 'https' ? r.scheme : undefined;
        redirect = {
          scheme,
          hostname: r?.hostname || undefined,
          path: r?.path ?? undefined,
          port: r?.port || undefined,
          statusCode: r?.status_code || 302,
        };
        break;
      }
    }
  }
  return { request, response, mirrors, rewrite, redirect };
}

/** Applies a header modifier to `fields` in place: `set` replaces every field of the name with one
 *  (or appends it), `add` appends a field (a list header gains a value, RFC 9110 section 5.3), `remove`
 *  drops every field of the name. Names compare case-insensitively. */
export function modifyHeaders(fields: string[], m: CompiledHeaderModifier): void {
  if (m.remove.length > 0 || m.set.length > 0) {
    // One pass: drop removed names and every set name (set ones are appended below), keeping order.
    let w = 0;
    for (let r = 0; r + 1 < fields.length; r += 2) {
      const lower = (fields[r] as string).toLowerCase();
      if (m.remove.includes(lower) || m.set.some((s) => s[0] === lower)) continue;
      if (w !== r) {
        fields[w] = fields[r] as string;
        fields[w + 1] = fields[r + 1] as string;
      }
      w += 2;
    }
    fields.length = w;
  }
  for (const [, name, value] of m.set) fields.push(name, value);
  for (const [name, value] of m.add) fields.push(name, value);
}

/** The path after a path modifier. `prefix` is the matched PathPrefix (trailing '/' removed, '' for
 *  '/'), needed by ReplacePrefixMatch; the rules are Gateway API's table for HTTPPathModifier:
 *  prefix /foo: /foo/bar → /xyz/bar (replacement /xyz or /xyz/), /foo → /xyz, /foo/ → /xyz/, and with
 *  replacement /: /foo/bar → /bar, /foo → /. */
export function modifyPath(path: string, prefix: string | undefined, m: PathModifier): string {
  if (m.type === 'REPLACE_FULL_PATH') return m.value;
  if (prefix === undefined) return path; // not a prefix match: the control plane refuses this
  const rest = path.slice(prefix.length);
  if (rest === '') return m.value;
  const base = m.value.endsWith('/') ? m.value.slice(0, -1) : m.value;
  return base + rest;
}

/** The request target and authority after a URLRewrite; the query is kept. */
export function rewriteRequest(
  req: { readonly path: string; readonly query: string; readonly authority: string },
  prefix: string | undefined,
  rw: CompiledRewrite,
): { target: string; authority: string } {
  const path = rw.path !== undefined ? modifyPath(req.path, prefix, rw.path) : req.path;
  return { target: req.query !== '' ? `${path}?${req.query}` : path, authority: rw.hostname ?? req.authority };
}

/** The redirect for a request: its status and Location. Gateway API's port rules: an explicit port;
 *  else the well-known port of an explicit scheme; else the port the request came to (for a mesh, the
 *  Service port). Ports 80 for http and 443 for https are left out of Location. */
export function redirectLocation(
  req: { readonly scheme: 'http' | 'https'; readonly authority: string; readonly path: string; readonly query: string },
  prefix: string | undefined,
  r: CompiledRedirect,
  requestPort: number,
): { status: number; location: string } {
  const scheme = r.scheme ?? req.scheme;
  const host = r.hostname ?? hostOf(req.authority);
  const port = r.port ?? (r.scheme !== undefined ? (r.scheme === 'https' ? 443 : 80) : requestPort);
  const showPort = !((scheme === 'http' && port === 80) || (scheme === 'https' && port === 443));
  const path = r.path !== undefined ? modifyPath(req.path, prefix, r.path) : req.path;
  const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    status: r.statusCode,
    location: `${scheme}://${hostPart}${showPort ? `:${port}` : ''}${path}${req.query !== '' ? `?${req.query}` : ''}`,
  };
}

/** The host of an authority, without its port (`[v6]:80` → `[v6]`). */
export function hostOf(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end === -1 ? authority : authority.slice(0, end + 1);
  }
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon);
}

/** Whether this request is mirrored: numerator out of denominator, by `random()` in [0, 1). */
export function shouldMirror(m: CompiledMirror, random: () => number): boolean {
  if (m.numerator >= m.denominator) return true;
  if (m.numerator <= 0) return false;
  return random() * m.denominator < m.numerator;
}
