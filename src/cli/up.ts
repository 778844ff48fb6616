// `outrigger up`: checks the machine, validates the manifests, starts the mesh's control process in
// the background and follows its progress until every pod is ready (exit 0) or it failed (exit 1).
import { dataPlaneSettings } from '../runtime/dataplane/index.js';
import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { ManifestError, loadManifestFiles, planPods } from '../runtime/manifests/index.js';
import { checkBridgeName, kernelProblems, parseCidr } from '../runtime/net/index.js';
import { isolationProblems } from '../runtime/supervisor/index.js';
import { controlRequest, meshStatus } from '../daemon/client.js';
import { cleanupFromRecords } from '../runtime/cleanup.js';
import type { MeshStatus } from '../runtime/mesh.js';
import {
  controlMarker,
  DEFAULT_STATE_DIR,
  ensureStateDir,
  readJson,
  recordedControlPid,
  runningControlPid,
  statePaths,
  writeJsonAtomic,
} from '../runtime/state.js';
import { PACKAGE_ROOT, tailFile } from '../runtime/supervisor/index.js';
import { openMeshCa } from '../daemon/control-plane.js';
import { fail, stateDir, stateDirOption } from './mesh-common.js';
import { DEFAULT_POLICY_NAMES } from '../api/policy.js';

interface UpOptions {
  readonly file: string[];
  readonly stateDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  readonly controlPort?: string;
  readonly trustDomain?: string;
  readonly trustAnchor?: string;
  readonly issuerCert?: string;
  readonly issuerKey?: string;
  readonly certLifetime?: string;
  readonly timeout: string;
  readonly defaultInboundPolicy?: string;
  readonly traceCollector?: string;
  readonly dataPlane?: string;
  readonly nodes?: string;
}

/** What the machine needs, and the package that usually provides it. */
const TOOLS = [
  ['ip', '-V', 'iproute2'],
  ['iptables', '--version', 'iptables'],
  ['setpriv', '--version', 'util-linux'],
] as const;

export function machineProblems(): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0) out.push('not running as root (try sudo)');
  for (const [cmd, flag, pkg] of TOOLS) {
    if (spawnSync(cmd, [flag], { stdio: 'ignore' }).error !== undefined) out.push(`missing ${cmd} (package ${pkg})`);
  }
  return out;
}

export function upCommand(): Command {
  return new Command('up')
    .description('start a local mesh from manifests and wait until every pod is ready')
    .option(
      '-f, --file <file>',
      'a manifest file (repeatable); without any, `up` resumes a mesh whose control process was killed',
      (v: string, prev: string[] = []) => [...prev, v],
      [] as string[],
    )
    .addOption(stateDirOption())
    .addOption(new Option('--bridge <name>', "the pods' bridge (default outr0)"))
    .addOption(new Option('--pod-cidr <cidr>', "the pods' addresses (default 10.244.0.0/16)"))
    .addOption(new Option('--service-cidr <cidr>', "Services' virtual addresses (default 10.96.0.0/16)"))
    .addOption(
      new Option('--control-port <port>', "the control plane's gRPC port on the bridge address (default 8086)"),
    )
    .addOption(new Option('--trust-domain <domain>', 'the trust domain of workload identities (default cluster.local)'))
    .addOption(
      new Option(
        '--trust-anchor <file>',
        'your trust anchor (root) certificate, PEM; with --issuer-cert and --issuer-key',
      ),
    )
    .addOption(
      new Option('--issuer-cert <file>', 'your issuer (intermediate) certificate, PEM, signed by the trust anchor'),
    )
    .addOption(new Option('--issuer-key <file>', "the issuer's private key, PEM (ECDSA)"))
    .addOption(new Option('--cert-lifetime <seconds>', "lifetime of the proxies' certificates (default 86400)"))
    .addOption(new Option('--timeout <seconds>', 'how long each pod may take to become ready').default('60'))
    .addOption(
      new Option(
        '--data-plane <mode>',
        'sidecar: one proxy in each meshed pod; per-host: one proxy per simulated node serving every meshed pod of it (default sidecar)',
      ).choices(['sidecar', 'per-host']),
    )
    .addOption(new Option('--nodes <n>', 'simulated nodes of the per-host data plane (default 2)'))
    .addOption(
      new Option(
        '--default-inbound-policy <policy>',
        'inbound policy of ports no Server covers, unless a pod or namespace annotation says otherwise (default all-unauthenticated)',
      ).choices(DEFAULT_POLICY_NAMES),
    )
    .addOption(
      new Option(
        '--trace-collector <url>',
        'an OTLP/HTTP collector (http://HOST:4318) every proxy sends one span per request to (default: no tracing)',
      ),
    )
    .action(async (o: UpOptions) => {
      const dir = stateDir(o.stateDir);
      const problems = machineProblems();
      if (problems.length > 0) fail('up', `this machine cannot run a mesh: ${problems.join('; ')}`);
      const running = runningControlPid(dir);
      if (running !== undefined) fail('up', `a mesh is already running (pid ${running}); use apply or down`);
      const stale = recordedControlPid(dir);
      const downCmd = `outrigger down${dir !== DEFAULT_STATE_DIR ? ` --state-dir ${dir}` : ''}`;
      if (stale !== undefined || (await readJson(statePaths(dir).net)) !== undefined) {
        const paths = statePaths(dir);
        const args = (await readJson(paths.controlArgs)) as string[] | undefined;
        const resumable = args !== undefined && (await readJson(paths.resume)) !== undefined;
        if (!resumable)
          fail(
            'up',
            `a mesh in ${dir} was not shut down${stale !== undefined ? ` (its control process ${stale} is gone)` : ''} and cannot be resumed; run ${downCmd} first`,
          );
        if (o.file.length > 0) {
          fail(
            'up',
            `the mesh in ${dir} lost its control process${stale !== undefined ? ` (${stale})` : ''} but its pods may still run: run outrigger up${dir !== DEFAULT_STATE_DIR ? ` --state-dir ${dir}` : ''} without -f to resume it, or ${downCmd} to remove it`,
          );
        }
        process.stdout.write(
          `the mesh in ${dir} lost its control process${stale !== undefined ? ` (${stale})` : ''}: resuming it\n`,
        );
        return runAndFollow(dir, [...args, '--resume'], 'a');
      }
      if (o.file.length === 0) fail('up', 'no manifests: give at least one with -f FILE');
      const timeoutS = Number(o.timeout);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0)
        fail('up', `--timeout must be a number of seconds, got ${JSON.stringify(o.timeout)}`);

      try {
        if (o.bridge !== undefined) checkBridgeName(o.bridge);
        if (o.podCidr !== undefined) parseCidr(o.podCidr, 'pod CIDR');
        if (o.serviceCidr !== undefined) parseCidr(o.serviceCidr, 'service CIDR');
      } catch (err) {
        fail('up', (err as Error).message);
      }
      if (o.controlPort !== undefined && !/^[0-9]+$/.test(o.controlPort))
        fail('up', `--control-port must be a port number, got ${JSON.stringify(o.controlPort)}`);
      if (o.controlPort !== undefined && (Number(o.controlPort) < 1 || Number(o.controlPort) > 65535))
        fail('up', `--control-port must be from 1 to 65535, got ${o.controlPort}`);
      const caFiles = [o.trustAnchor, o.issuerCert, o.issuerKey].filter((f) => f !== undefined).length;
      if (caFiles !== 0 && caFiles !== 3)
        fail(
          'up',
          '--trust-anchor, --issuer-cert and --issuer-key go together: give all three, or none for a CA made in the state directory',
        );
      if (o.certLifetime !== undefined && !(/^[0-9]+$/.test(o.certLifetime) && Number(o.certLifetime) >= 2)) {
        fail(
          'up',
          `--cert-lifetime must be a whole number of seconds, 2 or more, got ${JSON.stringify(o.certLifetime)}`,
        );
      }
      if (o.traceCollector !== undefined && !/^https?:\/\/[^/]+/.test(o.traceCollector))
        fail('up', `--trace-collector must be an http:// or https:// URL, got ${JSON.stringify(o.traceCollector)}`);
      const kernel = [...(await kernelProblems()), ...(await isolationProblems())];
      if (kernel.length > 0)
        fail('up', `this machine lacks what pods need:\n${kernel.map((k) => `  - ${k}`).join('\n')}`);

      const files = o.file.map((f) => resolve(f));
      try {
        planPods(await loadManifestFiles(o.file));
      } catch (err) {
        if (err instanceof ManifestError) fail('up', err.message);
        throw err;
      }

      await ensureStateDir(dir);
      // The CA is opened (made, on first start) here, so that a bad file is reported before anything runs.
      const abs = (f: string | undefined) => (f !== undefined ? resolve(f) : undefined);
      const ca = { trustAnchor: abs(o.trustAnchor), issuerCert: abs(o.issuerCert), issuerKey: abs(o.issuerKey) };
      try {
        await openMeshCa({ stateDir: dir, trustDomain: o.trustDomain ?? 'cluster.local', ...ca });
      } catch (err) {
        fail('up', `mesh CA: ${(err as Error).message}`);
      }
      const args = [controlMarker(dir), '--ready-timeout-ms', String(Math.round(timeoutS * 1000))];
      if (o.bridge !== undefined) args.push('--bridge', o.bridge);
      if (o.podCidr !== undefined) args.push('--pod-cidr', o.podCidr);
      if (o.serviceCidr !== undefined) args.push('--service-cidr', o.serviceCidr);
      if (o.controlPort !== undefined) args.push('--control-port', o.controlPort);
      if (o.trustDomain !== undefined) args.push('--trust-domain', o.trustDomain);
      if (ca.trustAnchor !== undefined && ca.issuerCert !== undefined && ca.issuerKey !== undefined) {
        args.push('--trust-anchor', ca.trustAnchor, '--issuer-cert', ca.issuerCert, '--issuer-key', ca.issuerKey);
      }
      if (o.certLifetime !== undefined) args.push('--cert-lifetime', o.certLifetime);
      if (o.traceCollector !== undefined) args.push('--trace-collector', o.traceCollector);
      if (o.defaultInboundPolicy !== undefined) args.push('--default-inbound-policy', o.defaultInboundPolicy);
      if (o.dataPlane !== undefined || o.nodes !== undefined) {
        try {
          const dp = dataPlaneSettings(o.dataPlane, o.nodes);
          args.push('--data-plane', dp.mode);
          if (dp.mode === 'per-host') args.push('--nodes', String(dp.nodes));
        } catch (err) {
          fail('up', (err as Error).message);
        }
      }
      // Kept for a later `up` that resumes this mesh after its control process was killed.
      await writeJsonAtomic(statePaths(dir).controlArgs, args);
      return runAndFollow(dir, [...args, ...files.flatMap((f) => ['-f', f])], 'w');
    });
}

/** Starts the control process in the background with `args` and follows its progress until the mesh
 *  is ready (exit 0) or failed (exit 1, after removing what was made). `logMode` 'a' keeps the log of
 *  the control process being replaced. */
async function runAndFollow(dir: string, controlArgs: readonly string[], logMode: 'w' | 'a'): Promise<never> {
  const paths = statePaths(dir);
  const logFd = openSync(paths.controlLog, logMode, 0o600);
  const args = [join(PACKAGE_ROOT, 'bin', 'outrigger.js'), 'control', ...controlArgs];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd], cwd: '/' });
  closeSync(logFd);
  let childExited = false;
  child.on('exit', () => (childExited = true));
  child.unref();
  process.stdout.write(`control process ${child.pid ?? '?'} (log ${paths.controlLog})\n`);

  const gone = async (what: string): Promise<never> => {
    const tail = await tailFile(paths.controlLog, 20);
    process.stderr.write(`outrigger up: ${what}${tail !== '' ? `; the end of ${paths.controlLog}:\n${tail}` : ''}\n`);
    await cleanupFromRecords(dir).catch((e: unknown) =>
      process.stderr.write(`outrigger up: cleanup: ${(e as Error).message}\n`),
    );
    process.exit(1);
  };

  // ^C while waiting: the mesh is half made, so it is stopped rather than left in the background.
  process.once('SIGINT', () => {
    process.stderr.write('\noutrigger up: interrupted: stopping the mesh...\n');
    void controlRequest(dir, 'POST', '/shutdown')
      .catch(() => (child.pid !== undefined ? process.kill(child.pid, 'SIGTERM') : undefined))
      .then(async () => {
        for (let i = 0; i < 600 && runningControlPid(dir) !== undefined; i++) await sleep(100);
        process.exit(130);
      });
  });

  let printed = 0;
  let status: MeshStatus | undefined;
  for (;;) {
    await sleep(200);
    if (childExited && status?.phase !== 'Failed') return gone('the control process exited');
    try {
      status = await meshStatus(dir);
    } catch {
      if (status !== undefined && !childExited) return gone('the control process stopped answering');
      continue; // not listening yet
    }
    for (; printed < status.progress.length; printed++) process.stdout.write(`${status.progress[printed] ?? ''}\n`);
    if (status.phase === 'Ready') {
      process.stdout.write(
        `mesh is up: ${status.pods.length} pod${status.pods.length === 1 ? '' : 's'} ready (state ${dir})\n`,
      );
      process.exit(0);
    }
    if (status.phase === 'Failed') break;
    if (status.phase === 'Stopping' || status.phase === 'Stopped') {
      process.stderr.write('outrigger up: the mesh is being stopped (outrigger down?)\n');
      process.exit(1);
    }
  }
  process.stderr.write(`outrigger up: failed: ${status.message ?? 'unknown error'}\nremoving what was created...\n`);
  await controlRequest(dir, 'POST', '/shutdown').catch(() => undefined);
  const pid = child.pid;
  for (let i = 0; i < 600 && pid !== undefined && !childExited && runningControlPid(dir) !== undefined; i++)
    await sleep(100);
  if (runningControlPid(dir) !== undefined) fail('up', `the control process did not stop; run outrigger down`);
  // The control process removes everything; if it could not, the records are still there.
  if ((await readJson(paths.net)) !== undefined)
    await cleanupFromRecords(dir).catch((e: unknown) => fail('up', `cleanup: ${(e as Error).message}`));
  process.exit(1);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
