// `outrigger lab`: the sidecar-or-per-host comparison measured on this machine (src/lab/run.ts), as a
// terminal summary, JSON (--json) and a self-contained HTML report (--html). It needs root, like `up`;
// it runs on a network and in a work directory of its own, refuses one that is taken, and on Ctrl-C (or
// any failure) takes its mesh down and removes everything it made.
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { versionView } from '../core/version.js';
import { DEFAULT_LAB_NET, networkProblems, type LabMesh, type LabNet } from '../lab/lab-mesh.js';
import { killLoads } from '../lab/measure.js';
import { Progress } from '../lab/progress.js';
import { renderLabHtml } from '../lab/report/html.js';
import { renderLabText } from '../lab/report/text.js';
import { LabStopped, runLab } from '../lab/run.js';
import { MAX_NODES } from '../runtime/dataplane/index.js';
import { kernelProblems } from '../runtime/net/index.js';
import { isolationProblems, PACKAGE_ROOT } from '../runtime/supervisor/index.js';
import { fail } from './mesh-common.js';
import { machineProblems } from './up.js';

interface LabOptions {
  readonly quick?: boolean;
  readonly json?: string;
  readonly html?: string;
  readonly podsPerNode?: string;
  readonly nodes: string;
  readonly duration?: string;
  readonly rate?: string;
  readonly workDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  readonly controlPort?: string;
}

export const DEFAULT_LAB_DIR = '/tmp/outrigger-lab';
/** The full run and --quick: pods per node, seconds per measured load, requests/s of the overhead load. */
const FULL = { steps: [2, 8, 32], duration: 20, rate: 200 } as const;
const QUICK = { steps: [2, 8], duration: 5, rate: 100 } as const;

export function notRootMessage(): string {
  return [
    'outrigger lab needs root.',
    '',
    'It runs real meshes on this machine, as `outrigger up` does: every pod is a Linux network namespace',
    'on a bridge with iptables rules sending its traffic through the data plane, and every pod and node',
    'proxy runs in a cgroup whose CPU and memory the lab reads. Namespaces, links, iptables rules and',
    'cgroups take root. Nothing is installed: when it ends, or on Ctrl-C, all of it is removed.',
    '',
    `Run it as: sudo ${process.execPath} ${join(PACKAGE_ROOT, 'bin', 'outrigger.js')} lab --quick`,
    '',
  ].join('\n');
}

/** A whole number from `min` to `max`, or a clear error naming the flag. */
function whole(flag: string, v: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(v.trim()) || Number(v) < min || Number(v) > max)
    fail('lab', `${flag} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return Number(v);
}

export function labCommand(): Command {
  return new Command('lab')
    .description(
      'measure sidecars against a per-host data plane on this machine (overhead, attribution, noisy neighbour, blast radius, upgrade, keys); needs root',
    )
    .option(
      '--quick',
      `a short run (pods per node ${QUICK.steps.join(',')}, ${QUICK.duration} s loads): under five minutes`,
    )
    .addOption(new Option('--json <file>', 'write the report as JSON'))
    .addOption(new Option('--html <file>', 'write the report as a self-contained HTML page'))
    .addOption(
      new Option(
        '--pods-per-node <list>',
        `the steps of the overhead phase, comma-separated (default ${FULL.steps.join(',')}; --quick ${QUICK.steps.join(',')}); the other phases run at the first`,
      ),
    )
    .addOption(new Option('--nodes <n>', 'simulated nodes').default('2'))
    .addOption(
      new Option(
        '--duration <seconds>',
        `seconds of each measured load (default ${FULL.duration}; --quick ${QUICK.duration})`,
      ),
    )
    .addOption(
      new Option(
        '--rate <rps>',
        `requests per second of the overhead load, over all pods together (default ${FULL.rate}; --quick ${QUICK.rate})`,
      ),
    )
    .addOption(
      new Option(
        '--work-dir <dir>',
        "the lab's work directory (its meshes' state, the pods' programs, the loads' results)",
      ).default(DEFAULT_LAB_DIR),
    )
    .addOption(new Option('--bridge <name>', `the lab's bridge (default ${DEFAULT_LAB_NET.bridge})`))
    .addOption(new Option('--pod-cidr <cidr>', `the lab's pod addresses (default ${DEFAULT_LAB_NET.podCidr})`))
    .addOption(
      new Option('--service-cidr <cidr>', `the lab's Service addresses (default ${DEFAULT_LAB_NET.serviceCidr})`),
    )
    .addOption(
      new Option('--control-port <port>', `the lab's control-plane port (default ${DEFAULT_LAB_NET.controlPort})`),
    )
    .action(async (o: LabOptions) => {
      if (process.getuid?.() !== 0) {
        process.stderr.write(notRootMessage());
        process.exit(1);
      }
      const quick = o.quick === true;
      const preset = quick ? QUICK : FULL;
      const steps =
        o.podsPerNode !== undefined
          ? o.podsPerNode.split(',').map((s) => whole('--pods-per-node', s, 1, 64))
          : [...preset.steps];
      if (steps.length === 0) fail('lab', '--pods-per-node needs at least one step');
      const nodes = whole('--nodes', o.nodes, 1, MAX_NODES);
      const durationS = o.duration !== undefined ? whole('--duration', o.duration, 1, 3600) : preset.duration;
      const rateRps = o.rate !== undefined ? whole('--rate', o.rate, 1, 100_000) : preset.rate;
      const net: LabNet = {
        bridge: o.bridge ?? DEFAULT_LAB_NET.bridge,
        podCidr: o.podCidr ?? DEFAULT_LAB_NET.podCidr,
        serviceCidr: o.serviceCidr ?? DEFAULT_LAB_NET.serviceCidr,
        controlPort:
          o.controlPort !== undefined ? whole('--control-port', o.controlPort, 1, 65535) : DEFAULT_LAB_NET.controlPort,
      };
      const largest = Math.max(...steps) * nodes + 1;
      const bits = Number(net.podCidr.split('/')[1] ?? 32);
      if (2 ** (32 - bits) - 3 < largest)
        fail(
          'lab',
          `the pod CIDR ${net.podCidr} cannot hold ${largest} pods (${Math.max(...steps)} per node on ${nodes} nodes and the sink)`,
        );
      const machine = machineProblems();
      if (machine.length > 0) fail('lab', `this machine cannot run a mesh: ${machine.join('; ')}`);
      const kernel = [...(await kernelProblems()), ...(await isolationProblems())];
      if (kernel.length > 0)
        fail('lab', `this machine lacks what pods need:\n${kernel.map((k) => `  - ${k}`).join('\n')}`);
      const workDir = resolve(o.workDir);
      const stateDir = join(workDir, 'state');
      const taken = await networkProblems(net, stateDir);
      if (taken.length > 0)
        fail(
          'lab',
          `the lab's network is not free:\n${taken.map((t) => `  - ${t}`).join('\n')}\nchoose others with --bridge, --pod-cidr, --service-cidr`,
        );

      const madeWorkDir = !existsSync(workDir);
      let mesh: LabMesh | undefined;
      const cleanup = async () => {
        killLoads();
        const problems = mesh !== undefined ? await mesh.down() : [];
        mesh = undefined;
        if (madeWorkDir) await rm(workDir, { recursive: true, force: true });
        else {
          for (const d of ['state', 'programs', 'results'])
            await rm(join(workDir, d), { recursive: true, force: true });
          for (const mode of ['sidecar', 'per-host'])
            for (const s of steps)
              for (const suffix of ['', '-baseline'])
                await rm(join(workDir, `lab-${mode}-${s}${suffix}.yaml`), { force: true });
        }
        return problems;
      };
      const abort = new AbortController();
      let stopping: Promise<void> | undefined;
      process.on('SIGINT', () => {
        if (stopping !== undefined) return;
        process.stderr.write('\noutrigger lab: interrupted: taking the lab down...\n');
        abort.abort();
        stopping = cleanup().then(
          (problems) => {
            for (const p of problems) process.stderr.write(`outrigger lab: ${p}\n`);
            process.stderr.write('outrigger lab: stopped; nothing is left behind\n');
            process.exit(130);
          },
          (err: unknown) => {
            process.stderr.write(`outrigger lab: cleanup: ${(err as Error).message}\n`);
            process.exit(130);
          },
        );
      });

      process.stdout.write(
        `outrigger lab: ${quick ? 'quick run' : 'full run'}: pods per node ${steps.join(', ')} on ${nodes} node${nodes === 1 ? '' : 's'}, ` +
          `${durationS} s loads at ${rateRps} requests/s; network ${net.bridge} ${net.podCidr}; work directory ${workDir}\n`,
      );
      let report;
      try {
        report = await runLab({
          quick,
          nodes,
          podsPerNode: steps,
          durationS,
          rateRps,
          workDir,
          net,
          version: versionView().version,
          progress: new Progress(process.stdout),
          signal: abort.signal,
          onMesh: (m) => (mesh = m),
        });
      } catch (err) {
        if (err instanceof LabStopped || abort.signal.aborted) {
          await stopping;
          return;
        }
        process.stderr.write(`outrigger lab: ${(err as Error).message}\nremoving what the lab made...\n`);
        for (const p of await cleanup()) process.stderr.write(`outrigger lab: ${p}\n`);
        process.exit(1);
      }
      for (const p of await cleanup()) process.stderr.write(`outrigger lab: ${p}\n`);
      if (o.json !== undefined) await writeFile(o.json, `${JSON.stringify(report, null, 2)}\n`);
      if (o.html !== undefined) await writeFile(o.html, renderLabHtml(report));
      process.stdout.write(renderLabText(report));
      for (const [flag, file] of [
        ['JSON', o.json],
        ['HTML', o.html],
      ] as const)
        if (file !== undefined) process.stdout.write(`${flag} report: ${resolve(file)}\n`);
      process.exit(0);
    });
}
