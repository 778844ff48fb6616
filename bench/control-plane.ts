// The benchmark's control plane, run as its own process (bench/control.ts drives it): a LocalStore
// behind the real gRPC server (startControlPlane), changed by JSON lines on stdin so that its CPU is
// its own and it never shares an event loop with the load or the simulated proxies.
//
// stdout, one JSON line each: first {"port":N}; then one reply per command, in order:
//   {"id":N,"t_ns":"<process.hrtime.bigint() taken just before store.replace>","cpu_us":N,"watchers":N}
// stdin, one JSON line each: {"id":N,"replace":StoreContent} or {"id":N} (only the figures).
// hrtime is CLOCK_MONOTONIC on Linux, one clock for every process of the machine, so the driver can
// subtract it from its own readings.
import { createInterface } from 'node:readline';
import { startControlPlane } from '../src/control/server.js';
import { LocalStore, type StoreContent } from '../src/control/store/local/local.js';

interface Command {
  id: number;
  replace?: StoreContent;
}

async function main(): Promise<void> {
  const store = new LocalStore();
  const cp = await startControlPlane({ store, host: '127.0.0.1', port: 0, trustDomain: 'cluster.local' });
  process.stdout.write(JSON.stringify({ port: cp.address.port }) + '\n');

  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const cmd = JSON.parse(line) as Command;
    const t = process.hrtime.bigint();
    if (cmd.replace !== undefined) store.replace(cmd.replace);
    const cpu = process.cpuUsage();
    const reply = { id: cmd.id, t_ns: t.toString(), cpu_us: cpu.user + cpu.system, watchers: cp.destination.watchers() };
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
  // The driver holds our stdin open; when it goes away (even by SIGKILL) we go too.
  const quit = (): void => void cp.close().finally(() => process.exit(0));
  lines.on('close', quit);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench control plane: ${String(err)}\n`);
  process.exit(1);
});
