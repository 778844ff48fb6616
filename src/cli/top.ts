// `outrigger top deploy/NAME`: a live table, refreshed every few seconds, of who sends the workload the
// most traffic, where it sends its own, and its busiest routes (figures over a short window).
import { Command } from 'commander';
import { meshObserve, meshStatus } from '../daemon/client.js';
import type { Edge, ObserveSnapshot, Ref } from '../observe/stats.js';
import type { MeshStatus } from '../runtime/mesh.js';
import { table } from './get.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';
import { GOLDEN_HEAD, goldenCells, parseRef, parseWindow, refText, sameRef } from './observe-common.js';
import { routeRows } from './routes.js';

/** The screen `top` shows for `ref`, as text. */
export function topScreen(snap: ObserveSnapshot, status: MeshStatus, ref: Ref, limit: number): string {
  const byRps = (a: { rps: number }, b: { rps: number }) => b.rps - a.rps;
  const self = [...snap.workloads, ...snap.services].find((r) => sameRef(r, ref));
  const head = GOLDEN_HEAD.slice(0, 5);
  const lines: string[] = [];
  lines.push(
    `${refText(ref)} (namespace ${ref.namespace}) over the last ${snap.windowSec}s: ${self !== undefined ? goldenCells(self).slice(0, 2).join(' success, ') : 'no traffic'}   ${new Date(snap.at).toISOString().slice(11, 19)} UTC\n`,
  );
  const edgeTable = (title: string, edges: Edge[], side: 'from' | 'to') => {
    lines.push(`${title}\n`);
    if (edges.length === 0) return void lines.push('  (none)\n\n');
    const rows = edges
      .sort(byRps)
      .slice(0, limit)
      .map((e) => [
        refText(e[side]) + (e.via !== undefined && side === 'from' ? ` (via svc/${e.via})` : ''),
        ...goldenCells(e).slice(0, 5),
      ]);
    lines.push(indent(table([[side === 'from' ? 'SOURCE' : 'DESTINATION', ...head], ...rows])) + '\n');
  };
  const intoMe =
    ref.kind === 'svc'
      ? snap.serviceEdges.filter((e) => sameRef(e.to, ref))
      : snap.edges.filter((e) => sameRef(e.to, ref));
  edgeTable('SOURCES', intoMe, 'from');
  if (ref.kind !== 'svc')
    edgeTable(
      'DESTINATIONS',
      snap.serviceEdges.filter((e) => sameRef(e.from, ref)),
      'to',
    );
  const routes = routeRows(snap, status, ref).sort(byRps).slice(0, limit);
  lines.push('ROUTES\n');
  if (routes.length === 0) lines.push('  (none)\n');
  else
    lines.push(
      indent(
        table([
          ['ROUTE', 'SERVICE', ...head],
          ...routes.map((r) => [r.route, r.service, ...goldenCells(r).slice(0, 5)]),
        ]),
      ),
    );
  return lines.join('');
}

const indent = (text: string) => text.replace(/^(?=.)/gm, '  ');

export function topCommand(): Command {
  return new Command('top')
    .description("a live table of a workload's busiest sources, destinations and routes")
    .argument('<resource>', 'deploy/NAME, pod/NAME or svc/NAME')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-t, --window <duration>', 'the window each refresh covers', '10s')
    .option('--interval <seconds>', 'seconds between refreshes', '2')
    .option('--limit <n>', 'rows per table', '10')
    .option('--once', 'print one screen and exit (also when stdout is not a terminal)')
    .addOption(stateDirOption())
    .action(
      async (
        resource: string,
        o: { namespace: string; window: string; interval: string; limit: string; once?: boolean; stateDir: string },
      ) => {
        const ref = parseRef(resource, o.namespace);
        if (typeof ref === 'string') fail('top', ref);
        const windowSec = parseWindow(o.window);
        if (typeof windowSec === 'string') fail('top', windowSec);
        const interval = Number(o.interval);
        if (!(interval >= 0.5)) fail('top', `--interval must be at least 0.5 seconds, got ${o.interval}`);
        const dir = stateDir(o.stateDir);
        await liveStatus('top', dir);
        const live = o.once !== true && process.stdout.isTTY;
        for (;;) {
          let screen: string;
          try {
            const [snap, status] = await Promise.all([meshObserve(dir, windowSec), meshStatus(dir)]);
            screen = topScreen(snap, status, ref, Number(o.limit) || 10);
          } catch (err) {
            return fail('top', `the mesh stopped answering: ${(err as Error).message}`);
          }
          if (!live) {
            process.stdout.write(screen);
            return;
          }
          process.stdout.write(`\x1b[H\x1b[2J${screen}\n(refreshing every ${interval}s; Ctrl-C to quit)\n`);
          await new Promise((r) => setTimeout(r, interval * 1000));
        }
      },
    );
}
