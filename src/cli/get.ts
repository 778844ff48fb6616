// `outrigger get pods|services|deployments|dataplane`: tables (or JSON) of the running mesh's objects.
import { Command, Option } from 'commander';
import { stringify } from 'yaml';
import { PROXY_CONTAINER } from '../manifests/contract.js';
import type { DeploymentView, PodView, ServiceView } from '../runtime/mesh.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import { dataPlaneProcesses, dataPlaneRows } from './get-dataplane.js';
import { hostname } from 'node:os';

interface GetOptions {
  readonly namespace: string;
  readonly allNamespaces?: boolean;
  readonly output?: string;
  readonly stateDir: string;
}

const KINDS: Record<string, 'pods' | 'services' | 'deployments' | 'dataplane'> = {
  dataplane: 'dataplane',
  dp: 'dataplane',
  pod: 'pods',
  pods: 'pods',
  po: 'pods',
  service: 'services',
  services: 'services',
  svc: 'services',
  deployment: 'deployments',
  deployments: 'deployments',
  deploy: 'deployments',
};

export function getCommand(): Command {
  return new Command('get')
    .description('list pods, services, deployments or the data-plane processes of the running mesh')
    .argument('<kind>', 'pods, services, deployments or dataplane')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'every namespace')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['wide', 'json', 'yaml']))
    .addOption(stateDirOption())
    .action(async (kindArg: string, o: GetOptions) => {
      const kind = KINDS[kindArg.toLowerCase()];
      if (kind === undefined)
        fail('get', `unknown kind ${JSON.stringify(kindArg)}: use pods, services, deployments or dataplane`);
      const status = await liveStatus('get', stateDir(o.stateDir));
      if (kind === 'dataplane') {
        const procs = await dataPlaneProcesses(status, stateDir(o.stateDir));
        const mode = status.dataPlane?.mode ?? 'sidecar';
        if (o.output === 'json') process.stdout.write(JSON.stringify({ kind, mode, items: procs }, null, 2) + '\n');
        else if (o.output === 'yaml') process.stdout.write(stringify({ kind, mode, items: procs }));
        else if (procs.length === 0) process.stderr.write(`no data-plane process (${mode}: no meshed pod)\n`);
        else process.stdout.write(table(dataPlaneRows(procs)));
        return;
      }
      const all = o.allNamespaces === true;
      const mine = <T extends { namespace: string }>(xs: readonly T[]) =>
        xs.filter((x) => all || x.namespace === o.namespace);
      const items =
        kind === 'pods' ? mine(status.pods) : kind === 'services' ? mine(status.services) : mine(status.deployments);
      if (o.output === 'json') {
        process.stdout.write(JSON.stringify({ kind, phase: status.phase, items }, null, 2) + '\n');
        return;
      }
      if (o.output === 'yaml') {
        process.stdout.write(stringify({ kind, phase: status.phase, items }));
        return;
      }
      const wide = o.output === 'wide';
      const rows =
        kind === 'pods'
          ? podRows(mine(status.pods), wide)
          : kind === 'services'
            ? serviceRows(mine(status.services))
            : deploymentRows(mine(status.deployments));
      if (rows.length <= 1) {
        process.stderr.write(`no ${kind} ${all ? 'in any namespace' : `in namespace ${o.namespace}`}\n`);
        return;
      }
      // With -A every item is listed, in the same order as `items`.
      process.stdout.write(
        table(all ? rows.map((r, i) => [i === 0 ? 'NAMESPACE' : (items[i - 1]?.namespace ?? ''), ...r]) : rows),
      );
    });
}

/** RESTARTS as kubectl shows it, with the last state of the container that ended last when one
 *  did: `2 (OOMKilled 40s ago)`. */
function restartsCell(p: PodView, now = Date.now()): string {
  let last: { reason: string; at: number } | undefined;
  for (const c of p.containers) {
    const t = c.lastTermination;
    if (t === undefined || c.restarts === 0) continue;
    const at = new Date(t.finishedAt).getTime();
    if (last === undefined || at > last.at) last = { reason: t.reason, at };
  }
  if (last === undefined) return String(p.restarts);
  return `${p.restarts} (${last.reason} ${ago(now - last.at)})`;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

export function podRows(pods: readonly PodView[], wide: boolean): string[][] {
  const head = [
    'NAME',
    'READY',
    'STATUS',
    'RESTARTS',
    'IP',
    'MESHED',
    ...(wide ? ['NODE', 'NETNS', 'CONTAINERS'] : []),
  ];
  return [
    head,
    ...pods.map((p) => {
      const apps = p.containers.filter((c) => c.name !== PROXY_CONTAINER);
      const readyApps = apps.filter((c) => c.ready).length;
      return [
        p.name,
        `${readyApps}/${p.appContainers.length}`,
        p.phase,
        restartsCell(p),
        p.ip,
        p.meshed ? 'yes' : 'no',
        ...(wide ? [p.node ?? hostname(), p.netns ?? '', p.containers.map((c) => c.name).join(',')] : []),
      ];
    }),
  ];
}

function serviceRows(services: readonly ServiceView[]): string[][] {
  return [
    ['NAME', 'CLUSTER-IP', 'SELECTOR', 'PORTS', 'ENDPOINTS'],
    ...services.map((s) => [
      s.name,
      s.clusterIP || '<none>',
      Object.entries(s.selector)
        .map(([k, v]) => `${k}=${v}`)
        .join(',') || '<none>',
      s.ports
        .map((p) => `${p.port}${String(p.targetPort) !== String(p.port) ? `:${p.targetPort}` : ''}/${p.protocol}`)
        .join(','),
      s.endpoints.join(',') || '<none>',
    ]),
  ];
}

function deploymentRows(ds: readonly DeploymentView[]): string[][] {
  return [['NAME', 'READY', 'PODS'], ...ds.map((d) => [d.name, `${d.ready}/${d.replicas}`, d.pods.join(',')])];
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join('')).join('\n') +
    '\n'
  );
}
