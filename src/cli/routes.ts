// `outrigger routes deploy/NAME|svc/NAME`: per route (HTTPRoute, GRPCRoute, and `[default]` for the
// requests no route matched), the success rate, RPS and latency its clients' proxies measured, and each
// backend's configured weight beside the share it really got (a canary at a glance).
import { Command, Option } from 'commander';
import { meshObserve } from '../daemon/client.js';
import { matchesMap } from '../manifests/labels.js';
import type { MeshStatus } from '../runtime/mesh.js';
import type { ObserveSnapshot, Ref, RouteRow } from '../observe/stats.js';
import { table } from './get.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import { fmtRate, fmtRps, GOLDEN_HEAD, goldenCells, parseRef, parseWindow } from './observe-common.js';

/** The Services a resource is reached through: itself, or those selecting its pods. */
export function servicesOf(status: Pick<MeshStatus, 'pods' | 'services'>, ref: Ref): string[] {
  if (ref.kind === 'svc') return [ref.name];
  const pods = status.pods.filter(
    (p) => p.namespace === ref.namespace && (ref.kind === 'pod' ? p.name === ref.name : p.deployment === ref.name),
  );
  return status.services
    .filter((s) => s.namespace === ref.namespace && pods.some((p) => matchesMap(s.selector, p.labels)))
    .map((s) => s.name);
}

/** The route rows of a resource: routes on its Services, and routes that send to them as a backend. */
export function routeRows(snap: ObserveSnapshot, status: Pick<MeshStatus, 'pods' | 'services'>, ref: Ref): RouteRow[] {
  const svcs = new Set(servicesOf(status, ref));
  return snap.routes.filter(
    (r) => r.namespace === ref.namespace && (svcs.has(r.service) || r.backends.some((b) => svcs.has(b.service))),
  );
}

export function routesCommand(): Command {
  return new Command('routes')
    .description(
      "per-route success rate, RPS and latency of a deployment's or service's traffic, with each backend's share",
    )
    .argument('<resource>', 'deploy/NAME or svc/NAME')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-t, --window <duration>', 'the window the figures cover (e.g. 30s, 1m, 10m)', '1m')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addOption(stateDirOption())
    .action(async (resource: string, o: { namespace: string; window: string; output?: string; stateDir: string }) => {
      const ref = parseRef(resource, o.namespace);
      if (typeof ref === 'string') fail('routes', ref);
      const windowSec = parseWindow(o.window);
      if (typeof windowSec === 'string') fail('routes', windowSec);
      const dir = stateDir(o.stateDir);
      const status = await liveStatus('routes', dir);
      const exists =
        ref.kind === 'svc'
          ? status.services.some((s) => s.namespace === ref.namespace && s.name === ref.name)
          : status.pods.some(
              (p) =>
                p.namespace === ref.namespace && (ref.kind === 'pod' ? p.name === ref.name : p.deployment === ref.name),
            );
      if (!exists) fail('routes', `no ${ref.kind}/${ref.name} in namespace ${ref.namespace}`);
      const snap = await meshObserve(dir, windowSec).catch((err: unknown) => fail('routes', (err as Error).message));
      const rows = routeRows(snap, status, ref);
      if (o.output === 'json') {
        process.stdout.write(
          JSON.stringify({ windowSec: snap.windowSec, spanSec: snap.spanSec, routes: rows }, null, 2) + '\n',
        );
        return;
      }
      if (rows.length === 0) {
        process.stderr.write(
          `no traffic to ${ref.kind}/${ref.name}'s services (${servicesOf(status, ref).join(', ') || 'none'}) in the last ${o.window}\n`,
        );
        return;
      }
      const out: string[][] = [
        ['ROUTE', 'SERVICE', ...GOLDEN_HEAD.slice(0, 5), 'RETRIES', 'BACKENDS (weight → actual share)'],
      ];
      for (const r of rows) {
        const backends = r.backends
          .map((b) => `${b.service} ${fmtRate(b.weight).replace('.00', '')} → ${fmtRate(b.share)}`)
          .join(', ');
        out.push([
          r.route,
          r.service,
          ...goldenCells(r).slice(0, 5),
          r.retryRps > 0 ? fmtRps(r.retryRps) : '-',
          backends || '-',
        ]);
      }
      process.stdout.write(table(out));
      if (rows.some((r) => r.backends.length > 0))
        process.stderr.write("(actual shares are estimated from the backends' inbound traffic)\n");
    });
}
