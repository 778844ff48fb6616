// `outrigger authz [-n NS] POD`: the inbound policy a pod's proxy enforces now, port by port and route
// by route (read from the proxy's admin /policy across the bridge), and, with `--check --from POD`,
// whether a request from that pod would be allowed, and by what, or denied, and why. The check runs the
// proxy's own matcher (src/proxy/inbound/authz) on the policy the proxy holds, so it cannot disagree
// with the proxy.
import { Command, Option } from 'commander';
import type { Authorization, InboundPolicy } from '../api/policy.js';
import { compilePolicy, firstAllowing, parseIpv4, type Client, type PortRules } from '../proxy/inbound/authz/authz.js';
import { matchRoute, splitTarget } from '../proxy/route/table.js';
import type { IdentityView } from '../proxy/admin/server.js';
import type { PodView } from '../runtime/mesh.js';
import { findPod, fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import { adminGet, adminToken } from '../daemon/admin-get.js';

interface AuthzOptions {
  readonly namespace: string;
  readonly stateDir: string;
  readonly output?: string;
  readonly check?: boolean;
  readonly from?: string;
  readonly fromNamespace?: string;
  readonly path: string;
  readonly method: string;
  readonly port?: string;
}

/** One authorization in words: "any client", or its requirements joined with "and". */
export function describeAuthorization(a: Authorization): string {
  if (a.all.length === 0) return `${a.name}: any client`;
  const parts = a.all.map((r) => {
    if (r.networks.length > 0) {
      return `address in ${r.networks.map((n) => (n.except.length > 0 ? `${n.cidr} except ${n.except.join(', ')}` : n.cidr)).join(' or ')}`;
    }
    return r.identities.includes('*') ? 'any mesh identity' : `mesh identity ${r.identities.join(' or ')}`;
  });
  return `${a.name}: ${parts.join(' and ')}`;
}

function rateLimitText(p: InboundPolicy['ports'][number]): string {
  const rl = p.rate_limit;
  if (!rl) return '';
  const parts = [
    ...(rl.total_rps > 0 ? [`total ${rl.total_rps}/s`] : []),
    ...(rl.identity_rps > 0 ? [`per client ${rl.identity_rps}/s`] : []),
    ...rl.overrides.map(
      (o) =>
        `${o.identities.map((i) => i.replace(/^spiffe:\/\/[^/]+\/ns\//, '').replace('/sa/', '/')).join(', ')} ${o.rps}/s`,
    ),
  ];
  return `${rl.name}: ${parts.join(', ')}`;
}

/** The table of `outrigger authz POD`: one row per port and route. */
export function policyRows(p: InboundPolicy): string[][] {
  const rows: string[][] = [['PORT', 'SERVER', 'PROTOCOL', 'ROUTE', 'AUTHORIZED', 'RATE LIMIT']];
  for (const port of p.ports) {
    const server =
      port.authorizations.length > 0
        ? port.authorizations.map(describeAuthorization).join('; ')
        : 'nobody (no AuthorizationPolicy)';
    if (port.routes.length === 0) {
      rows.push([String(port.port), port.server, port.protocol, '*', server, rateLimitText(port)]);
      continue;
    }
    for (const r of port.routes) {
      const own = r.authorizations.map(describeAuthorization);
      const who = [...(port.authorizations.length > 0 ? [server] : []), ...own];
      rows.push([
        String(port.port),
        port.server,
        port.protocol,
        r.route?.name ?? '?',
        who.length > 0 ? who.join('; ') : 'nobody (no AuthorizationPolicy)',
        rateLimitText(port),
      ]);
    }
  }
  const def =
    p.default_authorizations.length > 0 ? p.default_authorizations.map(describeAuthorization).join('; ') : 'nobody';
  rows.push(['other', `default:${p.default_policy}`, '-', '*', def, '']);
  return rows;
}

/** The answer of `--check` for one port's rules. */
export function checkText(rules: PortRules, client: Client, who: string, method: string, target: string): string {
  const { path, query } = splitTarget(target);
  let route = '';
  if (!rules.routes.empty) {
    const c = matchRoute(rules.routes, { method, path, query, headers: [] });
    if (c === undefined) return `denied by server ${rules.server}: no inbound route matches ${method} ${path} (404)`;
    route = c.rule.route;
  }
  const a =
    firstAllowing(rules.authorizations, client) ??
    (route !== '' ? firstAllowing(rules.routeAuthz.get(route) ?? [], client) : undefined);
  const where = `server ${rules.server}${route !== '' ? `, route ${route}` : ''}`;
  if (a !== undefined) return `allowed by ${a.name} (${where})`;
  return `denied by ${where}: no authorization allows ${who} (403; opaque TCP: closed)`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return (
    rows
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 2)))
          .join('')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

async function readPolicy(
  pod: PodView,
  token: string | undefined,
): Promise<{ answered: boolean; policy: InboundPolicy }> {
  let r: { status: number; body: string };
  try {
    r = await adminGet(pod.ip, '/policy', token);
  } catch (err) {
    return fail('authz', `the proxy of ${pod.namespace}/${pod.name} does not answer: ${(err as Error).message}`);
  }
  if (r.status !== 200) fail('authz', `pod ${pod.namespace}/${pod.name}: ${r.body.trim() || `status ${r.status}`}`);
  return JSON.parse(r.body) as { answered: boolean; policy: InboundPolicy };
}

export function authzCommand(): Command {
  return new Command('authz')
    .description(
      "show the inbound policy a pod's proxy enforces for each port and route; --check a request from another pod",
    )
    .argument('<pod>', 'a pod name, or deploy/NAME')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--check', 'say whether a request from --from would be allowed, and by what')
    .option('--from <pod>', 'the client: a pod name, or deploy/NAME (with --check)')
    .option('--from-namespace <ns>', "the client's namespace (default: the pod's)")
    .option('--path <path>', 'the request path (with --check)', '/')
    .option('--method <method>', 'the request method (with --check)', 'GET')
    .option('--port <port>', 'only this port (with --check; default: every port listed, and the others)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addOption(stateDirOption())
    .action(async (ref: string, o: AuthzOptions) => {
      const dir = stateDir(o.stateDir);
      const status = await liveStatus('authz', dir);
      const token = await adminToken(dir);
      const pod = findPod(status, o.namespace, ref);
      if (typeof pod === 'string') fail('authz', pod);
      if (!pod.meshed)
        fail(
          'authz',
          `pod ${pod.namespace}/${pod.name} is not meshed: no proxy enforces a policy, every client reaches it`,
        );
      const { answered, policy } = await readPolicy(pod, token);
      if (!answered)
        process.stderr.write(
          `outrigger authz: the proxy of ${pod.namespace}/${pod.name} has no answer from the policy service yet: its configured default applies\n`,
        );
      if (o.check !== true) {
        if (o.output === 'json') process.stdout.write(`${JSON.stringify(policy, null, 2)}\n`);
        else process.stdout.write(table(policyRows(policy)));
        return;
      }
      if (o.from === undefined) fail('authz', '--check needs --from POD (or deploy/NAME): the client');
      const from = findPod(status, o.fromNamespace ?? o.namespace, o.from);
      if (typeof from === 'string') fail('authz', from);
      let id: string | undefined;
      if (from.meshed) {
        const r = await adminGet(from.ip, '/identity', token).catch((err: unknown) =>
          fail('authz', `the proxy of ${from.namespace}/${from.name} does not answer: ${(err as Error).message}`),
        );
        if (r.status !== 200) fail('authz', `pod ${from.namespace}/${from.name} holds no identity: ${r.body.trim()}`);
        id = (JSON.parse(r.body) as IdentityView).identity;
      }
      const client: Client = { id, ip: parseIpv4(from.ip) };
      const who = id ?? `${from.ip} (no mesh identity)`;
      const compiled = compilePolicy(policy, undefined, []);
      const ports = o.port !== undefined ? [Number(o.port)] : [...compiled.ports.keys()];
      const lines = ports.map(
        (p) =>
          `port ${p}: ${checkText(compiled.ports.get(p) ?? compiled.fallback, client, who, o.method.toUpperCase(), o.path)}`,
      );
      if (o.port === undefined)
        lines.push(`other ports: ${checkText(compiled.fallback, client, who, o.method.toUpperCase(), o.path)}`);
      process.stdout.write(
        `${o.method.toUpperCase()} ${o.path} from ${from.namespace}/${from.name} (${id ?? 'no mesh identity'}, ${from.ip}) to ${pod.namespace}/${pod.name}\n${lines.join('\n')}\n`,
      );
    });
}
