// The routes of a manifest set as the control plane's store holds them: Gateway API defaults applied,
// durations in milliseconds, parentRef sectionNames resolved to ports. The runtime hands these to its
// local store beside its Services and pods; the kubernetes store converts what it watches the same way.
import {
  byNamespaceName,
  type BackendRefEntry,
  type PathModifierEntry,
  type RouteEntry,
  type RouteFilterEntry,
  type RouteMatchEntry,
  type RouteRuleEntry,
} from '../store.js';
import type { ManifestSet, RouteObject, ServiceObject } from '../../../manifests/types.js';
import { isServerParent, parseDuration } from '../../../manifests/routes.js';
import type { GRPCRouteFilter, HTTPPathModifier, HTTPRouteFilter } from '../../../manifests/schema.js';

/** Every route of a valid set, sorted by namespace and name. */
export function routeEntries(set: ManifestSet): RouteEntry[] {
  const services = new Map(set.services.map((s) => [`${s.metadata.namespace}/${s.metadata.name}`, s]));
  const routes: RouteObject[] = [...(set.httpRoutes ?? []), ...(set.grpcRoutes ?? [])];
  return routes.map((r) => routeEntry(r, services)).sort(byNamespaceName);
}

function routeEntry(r: RouteObject, services: ReadonlyMap<string, ServiceObject>): RouteEntry {
  const ns = r.metadata.namespace;
  const parents = r.spec.parentRefs.map((p): RouteEntry['parents'][number] => {
    if (isServerParent(p)) return { name: p.name, kind: 'Server' };
    const port =
      p.port ??
      (p.sectionName !== undefined
        ? services.get(`${ns}/${p.name}`)?.spec.ports.find((sp) => sp.name === p.sectionName)?.port
        : undefined);
    return port !== undefined ? { name: p.name, port } : { name: p.name };
  });
  const retry = r.retry !== undefined ? { retry: r.retry } : {};
  const rules: RouteRuleEntry[] =
    r.kind === 'HTTPRoute'
      ? r.spec.rules.map((rule) => ({
          ...(rule.name !== undefined ? { name: rule.name } : {}),
          matches: (rule.matches ?? [{ headers: [], queryParams: [] }]).map((m): RouteMatchEntry => ({
            path: m.path ?? { type: 'PathPrefix', value: '/' },
            ...(m.method !== undefined ? { method: m.method } : {}),
            headers: m.headers,
            queryParams: m.queryParams,
          })),
          filters: rule.filters.map(filterEntry),
          backends: rule.backendRefs.map((b) => ({ name: b.name, port: b.port ?? 0, weight: b.weight })),
          ...timeouts(rule.timeouts),
          ...retry,
        }))
      : r.spec.rules.map((rule) => ({
          ...(rule.name !== undefined ? { name: rule.name } : {}),
          matches: (rule.matches ?? [{ headers: [] }]).map((m): RouteMatchEntry => ({
            headers: m.headers,
            queryParams: [],
            ...(m.method !== undefined
              ? {
                  grpcMethod: {
                    type: m.method.type,
                    ...(m.method.service !== undefined ? { service: m.method.service } : {}),
                    ...(m.method.method !== undefined ? { method: m.method.method } : {}),
                  },
                }
              : {}),
          })),
          filters: rule.filters.map(filterEntry),
          backends: rule.backendRefs.map((b) => ({ name: b.name, port: b.port ?? 0, weight: b.weight })),
          ...retry,
        }));
  return { kind: r.kind, namespace: ns, name: r.metadata.name, parents, rules };
}

function timeouts(t: { request?: string; backendRequest?: string } | undefined): {
  requestTimeoutMs?: number;
  backendRequestTimeoutMs?: number;
} {
  const request = t?.request !== undefined ? parseDuration(t.request) : undefined;
  const backend = t?.backendRequest !== undefined ? parseDuration(t.backendRequest) : undefined;
  return {
    ...(request !== undefined ? { requestTimeoutMs: request } : {}),
    ...(backend !== undefined ? { backendRequestTimeoutMs: backend } : {}),
  };
}

function pathModifier(p: HTTPPathModifier | undefined): { path?: PathModifierEntry } {
  if (p === undefined) return {};
  return {
    path: { type: p.type, value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) ?? '/' },
  };
}

function filterEntry(f: HTTPRouteFilter | GRPCRouteFilter): RouteFilterEntry {
  switch (f.type) {
    case 'RequestHeaderModifier':
    case 'ResponseHeaderModifier': {
      const m = (f.type === 'RequestHeaderModifier' ? f.requestHeaderModifier : f.responseHeaderModifier) ?? {
        set: [],
        add: [],
        remove: [],
      };
      return { type: f.type, set: m.set, add: m.add, remove: m.remove };
    }
    case 'RequestMirror': {
      const m = f.requestMirror;
      const backend: BackendRefEntry = { name: m?.backendRef.name ?? '', port: m?.backendRef.port ?? 0 };
      if (m?.fraction !== undefined)
        return { type: 'RequestMirror', backend, numerator: m.fraction.numerator, denominator: m.fraction.denominator };
      return { type: 'RequestMirror', backend, numerator: m?.percent ?? 100, denominator: 100 };
    }
    case 'URLRewrite': {
      const u = 'urlRewrite' in f ? f.urlRewrite : undefined;
      return {
        type: 'URLRewrite',
        ...(u?.hostname !== undefined ? { hostname: u.hostname } : {}),
        ...pathModifier(u?.path),
      };
    }
    case 'RequestRedirect': {
      const r = 'requestRedirect' in f ? f.requestRedirect : undefined;
      return {
        type: 'RequestRedirect',
        ...(r?.scheme !== undefined ? { scheme: r.scheme } : {}),
        ...(r?.hostname !== undefined ? { hostname: r.hostname } : {}),
        ...pathModifier(r?.path),
        ...(r?.port !== undefined ? { port: r.port } : {}),
        statusCode: r?.statusCode ?? 302,
      };
    }
  }
}
