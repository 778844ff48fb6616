// `outrigger dashboard`: serves the web UI of the running mesh (service map, workloads, routes, live
// tap) on 127.0.0.1 and prints its URL; runs until Ctrl-C.
import { Command } from 'commander';
import { DEFAULT_DASHBOARD_PORT, startDashboard } from '../dashboard/server.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';

export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description('serve the web dashboard of the running mesh (service map, golden metrics, routes, live tap)')
    .option('--port <port>', 'port to listen on (0: any free port)', String(DEFAULT_DASHBOARD_PORT))
    .option(
      '--address <address>',
      'address to listen on (the dashboard shows request paths: keep it local)',
      '127.0.0.1',
    )
    .addOption(stateDirOption())
    .action(async (o: { port: string; address: string; stateDir: string }) => {
      const port = Number(o.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535)
        fail('dashboard', `--port must be from 0 to 65535, got ${JSON.stringify(o.port)}`);
      const dir = stateDir(o.stateDir);
      await liveStatus('dashboard', dir);
      const d = await startDashboard({ stateDir: dir, port, address: o.address }).catch((err: unknown) => {
        const e = err as NodeJS.ErrnoException;
        return fail(
          'dashboard',
          e.code === 'EADDRINUSE'
            ? `port ${port} on ${o.address} is in use (try --port 0 for any free port)`
            : e.message,
        );
      });
      process.stdout.write(`Outrigger dashboard: ${d.url}\n(Ctrl-C to stop)\n`);
      const stop = () => void d.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
