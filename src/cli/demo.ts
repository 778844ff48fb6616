// `outrigger demo` (npm run demo): a local mesh running a small shop (examples/demo: HTTP/1.1, gRPC and
// a TCP protocol, a canary route, a flaky replica whose failures retries hide) plus a traffic
// generator; shows progress while it starts, serves the dashboard, prints what to try, and on Ctrl-C
// stops and removes everything (the same as `outrigger down`). It runs the real `up` and `down`.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Command, Option } from 'commander';
import { DEFAULT_DASHBOARD_PORT, startDashboard, type Dashboard } from '../dashboard/server.js';
import { cleanupFromRecords } from '../runtime/cleanup.js';
import { DEFAULT_STATE_DIR, recordedControlPid, runningControlPid } from '../runtime/state.js';
import { PACKAGE_ROOT } from '../runtime/supervisor/index.js';
import { stateDir } from './mesh-common.js';

export const DEMO_DIR = join(PACKAGE_ROOT, 'examples', 'demo');
const BIN = join(PACKAGE_ROOT, 'bin', 'outrigger.js');

interface DemoOptions {
  readonly stateDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  readonly controlPort?: string;
  readonly port: string;
  readonly address: string;
  readonly rate: string;
  readonly timeout: string;
}

/** What a user who is not root is told: why the demo needs root, and the command that works. */
export function notRootMessage(): string {
  const viaNpm = process.env.npm_lifecycle_event === 'demo';
  const exact = `sudo ${process.execPath} ${BIN} demo`;
  return [
    'outrigger demo needs root.',
    '',
    'It builds a small mesh on this machine the way a Kubernetes node would: every pod is a Linux',
    'network namespace joined to a bridge, and iptables rules in each pod send its traffic through the',
    "pod's sidecar proxy. Creating network namespaces, virtual links, a bridge and iptables rules takes",
    'root (CAP_NET_ADMIN and CAP_SYS_ADMIN). Nothing is installed: Ctrl-C removes all of it.',
    '',
    'Run it as:',
    `  ${viaNpm ? 'sudo npm run demo' : exact}`,
    ...(viaNpm ? [`  (or, if root has no npm on its PATH: ${exact})`] : []),
    '',
  ].join('\n');
}

const say = (line = '') => process.stdout.write(`${line}\n`);
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const cyan = (s: string) => (process.stdout.isTTY ? `\x1b[36m${s}\x1b[0m` : s);
const green = (s: string) => (process.stdout.isTTY ? `\x1b[32m${s}\x1b[0m` : s);

export function demoCommand(): Command {
  return new Command('demo')
    .description('start a local mesh running a sample shop with traffic, and its dashboard; Ctrl-C removes everything')
    .addOption(new Option('--state-dir <dir>', 'the mesh state directory').default(DEFAULT_STATE_DIR))
    .addOption(new Option('--bridge <name>', "the pods' bridge (default outr0)"))
    .addOption(new Option('--pod-cidr <cidr>', "the pods' addresses (default 10.244.0.0/16)"))
    .addOption(new Option('--service-cidr <cidr>', "Services' virtual addresses (default 10.96.0.0/16)"))
    .addOption(new Option('--control-port <port>', "the control plane's gRPC port (default 8086)"))
    .option(
      '--port <port>',
      "the dashboard's port (0: any free port; when the default is taken, any free port)",
      String(DEFAULT_DASHBOARD_PORT),
    )
    .option('--address <address>', "the dashboard's address", '127.0.0.1')
    .option('--rate <rps>', 'requests per second the traffic generator sends', '10')
    .option('--timeout <seconds>', 'how long each pod may take to become ready', '120')
    .action(async (o: DemoOptions) => {
      if (process.getuid?.() !== 0) {
        process.stderr.write(notRootMessage());
        process.exit(1);
      }
      const dir = stateDir(o.stateDir);
      const running = runningControlPid(dir);
      if (running !== undefined) {
        process.stderr.write(
          `outrigger demo: a mesh is already running in ${dir} (control process ${running}).\n` +
            `Stop it first (sudo outrigger down${dir !== DEFAULT_STATE_DIR ? ` --state-dir ${dir}` : ''}), or give the demo a place of its own:\n` +
            `  --state-dir /var/run/outrigger-demo --bridge outrdemo0 --pod-cidr 10.234.0.0/16 --service-cidr 10.95.0.0/16 --control-port 8087\n`,
        );
        process.exit(1);
      }
      if (recordedControlPid(dir) !== undefined) await cleanupFromRecords(dir).catch(() => undefined); // a demo that was killed
      const fresh = !existsSync(dir);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      const rate = Number(o.rate);
      if (!(rate > 0 && rate <= 1000)) {
        process.stderr.write(`outrigger demo: --rate must be from 0 to 1000 requests per second, got ${o.rate}\n`);
        process.exit(1);
      }
      const template = await readFile(join(DEMO_DIR, 'demo.yaml'), 'utf8');
      const manifest = join(dir, 'demo.yaml');
      await writeFile(
        manifest,
        template
          .replaceAll('@NODE@', process.execPath)
          .replaceAll('@DEMO@', DEMO_DIR)
          .replaceAll('@RATE@', String(rate)),
        { mode: 0o644 },
      );
      const flags = ['--state-dir', dir];
      const hint = dir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${dir}`;

      say(bold('Outrigger demo') + ': a small shop (4 services that talk HTTP/1.1, gRPC and TCP) and its shoppers,');
      say('every pod with its sidecar proxy. Starting the mesh…');
      say();

      // The stages of `up`, shown as they happen.
      const upArgs = [BIN, 'up', '-f', manifest, ...flags, '--timeout', o.timeout];
      if (o.bridge !== undefined) upArgs.push('--bridge', o.bridge);
      if (o.podCidr !== undefined) upArgs.push('--pod-cidr', o.podCidr);
      if (o.serviceCidr !== undefined) upArgs.push('--service-cidr', o.serviceCidr);
      if (o.controlPort !== undefined) upArgs.push('--control-port', o.controlPort);
      // Its own process group: a Ctrl-C reaches the demo, which stops `up` once and then cleans up.
      const up = spawn(process.execPath, upArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stopping: Promise<void> | undefined;
      let dashboard: Dashboard | undefined;
      let upRunning = true;
      const stop = (code: number) => {
        stopping ??= (async () => {
          say();
          say('Stopping the demo and removing everything it created…');
          if (upRunning) {
            try {
              process.kill(up.pid as number, 'SIGINT');
            } catch {
              // already gone
            }
            await new Promise((r) => up.once('close', r));
          }
          await dashboard?.close();
          const down = await runQuiet([BIN, 'down', '--state-dir', dir, ...(fresh ? ['--purge'] : [])]);
          if (down.code !== 0) {
            process.stderr.write(`outrigger demo: down failed:\n${down.output}`);
            process.exit(1);
          }
          say(
            green('✓') +
              ` removed: every pod, network namespace, link, iptables rule and process of the demo${fresh ? `, and ${dir}` : ' (logs and the mesh CA stay in ' + dir + ')'}.`,
          );
          process.exit(code);
        })();
      };
      process.on('SIGINT', () => stop(0));
      process.on('SIGTERM', () => stop(0));

      const ok = await followUp(up);
      upRunning = false;
      if (!ok.ok) {
        if (stopping !== undefined) return; // interrupted: stop() finishes
        process.stderr.write(`\noutrigger demo: the mesh did not start:\n${ok.stderr}`);
        stop(1);
        return;
      }
      const port = Number(o.port);
      try {
        dashboard = await startDashboard({ stateDir: dir, port, address: o.address });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
        dashboard = await startDashboard({ stateDir: dir, port: 0, address: o.address });
      }
      say();
      say(green('✓') + ' ' + bold('The demo is running.') + ' Open the dashboard:');
      say();
      say(`    ${cyan(dashboard.url)}`);
      say();
      say('  What runs:  loadgen ──HTTP──> frontend ──gRPC──> catalog ──TCP──> cache');
      say('                                         ├─HTTP──> ratings   (canary route: 90% v1, 10% v2)');
      say(
        '                                         └─HTTP──> cart      (one replica fails 30%; retries hide it) ──TCP──> cache',
      );
      say();
      say('  Try, in another terminal:');
      say(`    sudo npx outrigger stat deploy${hint}                      # success rate, RPS, latency per workload`);
      say(`    sudo npx outrigger stat svc${hint}                         # the same, as callers see each Service`);
      say(
        `    sudo npx outrigger routes deploy/ratings-v1${hint}         # the canary: weights vs what really happened`,
      );
      say(`    sudo npx outrigger top deploy/frontend${hint}              # live: who calls it, what it calls`);
      say(`    sudo npx outrigger stat deploy --from deploy/frontend${hint}`);
      say(`    sudo npx outrigger exec deploy/loadgen${hint} -- curl -s http://frontend/product/p1`);
      say();
      say('  Press Ctrl-C to stop the demo and remove everything it created.');
      // If the mesh is stopped from elsewhere (outrigger down), the demo ends too.
      const watch = setInterval(() => {
        if (stopping === undefined && runningControlPid(dir) === undefined) {
          clearInterval(watch);
          say('\nThe mesh was stopped from elsewhere.');
          stop(0);
        }
      }, 2000);
    });
}

/** Follows `up`'s progress lines, printing the stages; resolves when it exits. */
async function followUp(up: ChildProcess): Promise<{ ok: boolean; stderr: string }> {
  let stderr = '';
  up.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let pods = 0;
  let ready = 0;
  let services = 0;
  const lines = createInterface({ input: up.stdout as NodeJS.ReadableStream });
  const tick = green('✓');
  lines.on('line', (line) => {
    let m: RegExpExecArray | null;
    if ((m = /^network: bridge (\S+), gateway (\S+), services (\S+)/.exec(line)) !== null)
      say(`  ${tick} pod network: bridge ${m[1]}, gateway ${m[2]}`);
    else if ((m = /^control plane: (\S+?),? (identity.*)?$/.exec(line)) !== null)
      say(
        `  ${tick} control plane on ${m[1]}: service discovery, and a mesh CA that gives each proxy its identity (mTLS)`,
      );
    else if (/^service \S+: /.test(line)) services++;
    else if ((m = /^pod (\S+): [0-9.]+, (meshed|not meshed)/.exec(line)) !== null) {
      if (pods++ === 0)
        say(
          `  ${tick} ${services} services, each with a virtual IP and a name in every pod's /etc/hosts\n  … starting the pods, each with its sidecar proxy`,
        );
    } else if ((m = /^pod [^/]+\/(\S+): ready$/.exec(line)) !== null)
      say(`  ${tick} pod ${m[1]} ready, with its proxy (${++ready}/${pods})`);
  });
  const code = await new Promise<number | null>((r) => up.once('close', r));
  return { ok: code === 0, stderr };
}

function runQuiet(argv: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('close', (code) => resolve({ code, output }));
  });
}
