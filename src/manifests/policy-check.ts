// Rules of the policy kinds (policy.ts) that a schema cannot state: references that must agree with
// their kind, networks whose exceptions lie inside them, and, once every document is known, targets
// and authentications that must exist (in the policy's own namespace).
import type { Path, Report } from './check.js';
import { POLICY_GROUP, type PolicyDoc } from './policy.js';
import { isServerParent } from './routes.js';
import type { PolicyObject, RouteObject } from './types.js';

const GATEWAY_GROUP = 'gateway.networking.k8s.io';

/** Parses an IPv4 CIDR (already checked by the schema) into a base and prefix length. */
export function parseIpv4Cidr(text: string): { base: number; bits: number } {
  const [addr, len] = text.split('/');
  const parts = (addr ?? '').split('.').map(Number);
  const ip = (((parts[0] ?? 0) << 24) | ((parts[1] ?? 0) << 16) | ((parts[2] ?? 0) << 8) | (parts[3] ?? 0)) >>> 0;
  const bits = len === undefined ? 32 : Number(len);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return { base: (ip & mask) >>> 0, bits };
}

function inside(inner: { base: number; bits: number }, outer: { base: number; bits: number }): boolean {
  if (inner.bits < outer.bits) return false;
  const mask = outer.bits === 0 ? 0 : (~0 << (32 - outer.bits)) >>> 0;
  return (inner.base & mask) >>> 0 === outer.base;
}

/** Per-document checks of a policy object. */
export function checkPolicy(doc: PolicyDoc, report: Report): void {
  const ns = doc.metadata.namespace;
  switch (doc.kind) {
    case 'AuthorizationPolicy': {
      const t = doc.spec.targetRef;
      const at = ['spec', 'targetRef'];
      const want = t.kind === 'Server' ? [POLICY_GROUP] : t.kind === 'Namespace' ? ['', 'core'] : [GATEWAY_GROUP];
      // The schema's default group is the Server's: a Namespace or route target written without one is fine.
      if (!want.includes(t.group) && !(t.group === POLICY_GROUP && t.kind !== 'Server')) {
        report(
          [...at, 'group'],
          `must be ${want.map((g) => JSON.stringify(g)).join(' or ')} for kind ${t.kind}, got ${JSON.stringify(t.group)}`,
        );
      }
      if (t.namespace !== undefined && t.namespace !== ns)
        report(
          [...at, 'namespace'],
          `must be the policy's own namespace ${JSON.stringify(ns)}, got ${JSON.stringify(t.namespace)}`,
        );
      if (t.kind === 'Namespace' && t.name !== ns)
        report(
          [...at, 'name'],
          `must be the policy's own namespace ${JSON.stringify(ns)}, got ${JSON.stringify(t.name)}`,
        );
      doc.spec.requiredAuthenticationRefs.forEach((r, i) => {
        if (r.kind !== 'ServiceAccount' && r.namespace !== undefined && r.namespace !== ns) {
          report(
            ['spec', 'requiredAuthenticationRefs', i, 'namespace'],
            `must be the policy's own namespace ${JSON.stringify(ns)} for a ${r.kind}, got ${JSON.stringify(r.namespace)}`,
          );
        }
      });
      const kinds = doc.spec.requiredAuthenticationRefs.map((r) => r.kind);
      if (kinds.includes('ServiceAccount') && kinds.includes('MeshTLSAuthentication')) {
        report(
          ['spec', 'requiredAuthenticationRefs'],
          'names both ServiceAccounts and a MeshTLSAuthentication: a client has one identity, so both must hold at once; list the accounts in the MeshTLSAuthentication instead',
        );
      }
      break;
    }
    case 'MeshTLSAuthentication':
      (doc.spec.identityRefs ?? []).forEach((r, i) => {
        if (r.name === '*' && r.kind !== 'Namespace')
          report(['spec', 'identityRefs', i, 'name'], 'may be "*" only for kind Namespace (every namespace)');
      });
      break;
    case 'NetworkAuthentication':
      doc.spec.networks.forEach((n, i) => {
        const outer = parseIpv4Cidr(n.cidr);
        n.except.forEach((e, j) => {
          if (!inside(parseIpv4Cidr(e), outer))
            report(['spec', 'networks', i, 'except', j], `${e} is not inside ${n.cidr}`);
        });
      });
      break;
    case 'HTTPLocalRateLimitPolicy':
      if (doc.spec.total === undefined && doc.spec.identity === undefined && doc.spec.overrides.length === 0) {
        report(['spec'], 'needs total, identity or overrides (at least one)');
      }
      if (doc.spec.targetRef.group !== POLICY_GROUP)
        report(
          ['spec', 'targetRef', 'group'],
          `must be ${JSON.stringify(POLICY_GROUP)}, got ${JSON.stringify(doc.spec.targetRef.group)}`,
        );
      break;
    case 'Server':
      break;
  }
}

/** Whether an object of `kind` named `ns/name` exists (in any document, even an invalid one). */
export type Exists = (kind: string, namespace: string, name: string) => boolean;

/** Targets and authentications a policy names, and Servers routes attach to, must exist. */
export function checkPolicyReferences(
  policies: readonly PolicyObject[],
  routes: readonly RouteObject[],
  exists: Exists,
  reportAt: (o: PolicyObject | RouteObject, path: Path, message: string) => void,
): void {
  for (const p of policies) {
    const ns = p.metadata.namespace;
    const report = (path: Path, message: string) => reportAt(p, path, message);
    if (p.kind === 'AuthorizationPolicy') {
      const t = p.spec.targetRef;
      if (t.kind !== 'Namespace' && !exists(t.kind, ns, t.name))
        report(['spec', 'targetRef', 'name'], `${t.kind} ${JSON.stringify(`${ns}/${t.name}`)} does not exist`);
      p.spec.requiredAuthenticationRefs.forEach((r, i) => {
        const rns = r.namespace ?? ns;
        if (r.kind !== 'ServiceAccount' && !exists(r.kind, rns, r.name)) {
          report(
            ['spec', 'requiredAuthenticationRefs', i, 'name'],
            `${r.kind} ${JSON.stringify(`${rns}/${r.name}`)} does not exist`,
          );
        }
      });
    } else if (p.kind === 'HTTPLocalRateLimitPolicy') {
      const t = p.spec.targetRef;
      if (!exists('Server', ns, t.name))
        report(['spec', 'targetRef', 'name'], `Server ${JSON.stringify(`${ns}/${t.name}`)} does not exist`);
    }
  }
  for (const r of routes) {
    const ns = r.metadata.namespace;
    r.spec.parentRefs.forEach((p, i) => {
      if (isServerParent(p) && !exists('Server', ns, p.name)) {
        reportAt(
          r,
          ['spec', 'parentRefs', i, 'name'],
          `Server ${JSON.stringify(`${ns}/${p.name}`)} does not exist: an inbound route attaches to a Server in its own namespace`,
        );
      }
    });
  }
}
