// `outrigger stat deploy|pod|svc [NAME]`: each resource's golden metrics over a window (success rate,
// requests per second, latency percentiles, open TCP connections, how many of its pods are meshed),
// from the control process's history of every proxy's metrics. `--from`/`--to` narrow them to the
// traffic between two resources, as measured by the client's proxy.
import { Command, Option } from 'commander';
import { meshObserve } from '../daemon/client.js';
import type { Edge, ObserveSnapshot, Ref, StatRow } from '../observe/stats.js';
import { table } from './get.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import {
  fmtBytes,
  fmtCpu,
  fmtRps,
  GOLDEN_HEAD,
  goldenCells,
  parseKind,
  parseRef,
  parseWindow,
  sameRef,
} from './observe-common.js';

interface StatOptions {
  readonly namespace: string;
  readonly allNamespaces?: boolean;
  readonly from?: string;
  readonly to?: string;
  readonly window: string;
  readonly output?: string;
  readonly stateDir: string;
}

export interface StatResult {
  readonly windowSec: number;
  readonly spanSec: number;
  readonly rows: readonly StatRow[];
}

/** The rows `stat` prints, from a snapshot (pure: the tests and the dashboard agree through it). */
export function statRows(
  snap: ObserveSnapshot,
  q: { kind: Ref['kind']; name?: string; namespace?: string; from?: Ref; to?: Ref },
): StatRow[] | string {
  const inNs = (r: Ref) => q.namespace === undefined || r.namespace === q.namespace;
  const named = (r: Ref) => q.name === undefined || r.name === q.name;
  const base =
    q.kind === 'svc' ? snap.services : q.kind === 'pod' ? snap.pods : snap.workloads.filter((w) => w.kind === 'deploy');
  if (q.from === undefined && q.to === undefined) return base.filter((r) => inNs(r) && named(r)).sort(byName);
  if (q.kind === 'pod') return '--from and --to work with deploy and svc (traffic is measured per workload)';
  const meshedOf = (r: Ref) => [...snap.workloads, ...snap.services].find((x) => sameRef(x, r));
  const row = (r: Ref, e: Edge): StatRow => ({
    ...r,
    meshed: meshedOf(r)?.meshed ?? 0,
    pods: meshedOf(r)?.pods ?? 0,
    ...golden(e),
  });
  if (q.from !== undefined) {
    const from = q.from;
    const edges = q.kind === 'svc' ? snap.serviceEdges : snap.edges.filter((e) => e.to.kind === 'deploy');
    return edges
      .filter((e) => sameRef(e.from, from) && inNs(e.to) && named(e.to) && (q.to === undefined || sameRef(e.to, q.to)))
      .map((e) => row(e.to, e))
      .sort(byName);
  }
  const to = q.to as Ref;
  const edges = to.kind === 'svc' ? snap.serviceEdges : snap.edges;
  return edges
    .filter((e) => sameRef(e.to, to) && e.from.kind === q.kind && inNs(e.from) && named(e.from))
    .map((e) => row(e.from, e))
    .sort(byName);
}

const byName = (a: Ref, b: Ref) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name);

function golden(e: Edge) {
  const { requests, rps, successRate, p50, p95, p99, tcpConnections, tcpBytesPerSec, retryRps } = e;
  return { requests, rps, successRate, p50, p95, p99, tcpConnections, tcpBytesPerSec, retryRps };
}

export function statCommand(): Command {
  return new Command('stat')
    .description('golden metrics (success rate, RPS, latency, TCP connections) of deployments, pods or services')
    .argument('<kind>', 'deploy, pod or svc; or deploy/NAME')
    .argument('[name]', 'only this one')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-A, --all-namespaces', 'every namespace')
    .option('--from <resource>', 'only traffic from this workload (deploy/NAME), measured at its proxies')
    .option(
      '--to <resource>',
      "only traffic to this resource (deploy/NAME or svc/NAME), measured at the clients' proxies",
    )
    .option('-t, --window <duration>', 'the window the figures cover (e.g. 30s, 1m, 10m)', '1m')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['wide', 'json']))
    .addOption(stateDirOption())
    .action(async (kindArg: string, nameArg: string | undefined, o: StatOptions) => {
      let name = nameArg;
      let kindText = kindArg;
      if (kindArg.includes('/')) [kindText, name] = kindArg.split('/', 2) as [string, string];
      const kind = parseKind(kindText);
      if (kind === undefined) fail('stat', `unknown kind ${JSON.stringify(kindText)}: use deploy, pod or svc`);
      const windowSec = parseWindow(o.window);
      if (typeof windowSec === 'string') fail('stat', windowSec);
      if (o.from !== undefined && o.to !== undefined && name === undefined)
        fail('stat', 'give --from or --to, not both (or name the resource)');
      const ref = (s: string | undefined) => {
        if (s === undefined) return undefined;
        const r = parseRef(s, o.namespace);
        if (typeof r === 'string') fail('stat', r);
        return r;
      };
      const from = ref(o.from);
      const to = ref(o.to);
      if (from !== undefined && from.kind === 'svc')
        fail('stat', '--from takes a workload (deploy/NAME or pod/NAME): a Service sends no traffic');
      const dir = stateDir(o.stateDir);
      const status = await liveStatus('stat', dir);
      const snap = await meshObserve(dir, windowSec).catch((err: unknown) => fail('stat', (err as Error).message));
      const rows = statRows(snap, {
        kind,
        ...(name !== undefined ? { name } : {}),
        ...(o.allNamespaces === true ? {} : { namespace: o.namespace }),
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
      });
      if (typeof rows === 'string') fail('stat', rows);
      if (o.output === 'json') {
        const out: StatResult = { windowSec: snap.windowSec, spanSec: snap.spanSec, rows };
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
        return;
      }
      if (rows.length === 0) {
        process.stderr.write(
          `no ${kind === 'deploy' ? 'deployments' : kind === 'pod' ? 'pods' : 'services'}${name !== undefined ? ` named ${name}` : ''}${from !== undefined || to !== undefined ? ' with that traffic' : ''} ${o.allNamespaces === true ? 'in any namespace' : `in namespace ${o.namespace}`}\n`,
        );
        if (name !== undefined) process.exitCode = 1;
        return;
      }
      const wide = o.output === 'wide';
      const all = o.allNamespaces === true;
      const head = [
        ...(all ? ['NAMESPACE'] : []),
        'NAME',
        'MESHED',
        ...GOLDEN_HEAD,
        ...(wide ? ['TCP_BYTES/S'] : []),
        ...(wide && kind === 'svc' ? ['RETRIES'] : []),
        ...(wide && kind !== 'svc' ? ['PROXY_CPU', 'PROXY_MEM', 'POD_CPU', 'POD_MEM'] : []),
        ...(wide ? ['REQUESTS'] : []),
      ];
      // The pods' own CPU and memory, from their cgroups (the runtime samples them): a Deployment's
      // are the sum of its pods'.
      const usage = (r: { namespace: string; name: string }) => {
        const mine = status.pods.filter(
          (p) => p.namespace === r.namespace && (kind === 'pod' ? p.name === r.name : p.deployment === r.name),
        );
        const us = mine.flatMap((p) => (p.usage !== undefined ? [p.usage] : []));
        if (us.length === 0) return { cpu: undefined, mem: undefined };
        return { cpu: us.reduce((a, u) => a + u.cpuCores, 0), mem: us.reduce((a, u) => a + u.memoryBytes, 0) };
      };
      const body = rows.map((r) => [
        ...(all ? [r.namespace] : []),
        r.name,
        `${r.meshed}/${r.pods}`,
        ...goldenCells(r),
        ...(wide ? [String(r.tcpBytesPerSec)] : []),
        ...(wide && kind === 'svc' ? [fmtRps(r.retryRps)] : []),
        ...(wide && kind !== 'svc'
          ? [fmtCpu(r.proxyCpu), fmtBytes(r.proxyMemory), fmtCpu(usage(r).cpu), fmtBytes(usage(r).mem)]
          : []),
        ...(wide ? [String(r.requests)] : []),
      ]);
      process.stdout.write(table([head, ...body]));
      if (snap.spanSec + snap.scrapeIntervalSec < windowSec)
        process.stderr.write(`(the mesh has ${snap.spanSec.toFixed(0)} s of metrics so far; the figures cover that)\n`);
    });
}
