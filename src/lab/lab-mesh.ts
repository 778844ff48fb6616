// The lab's meshes: started and taken down with the real `outrigger up` and `outrigger down` (the same
// code paths and the same teardown a user's mesh has), on a network of the lab's own: its bridge, pod
// and service CIDRs and control port, and a state directory below its work directory. Before anything
// runs the network is checked to be free, so that the lab never touches a user's mesh.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { meshStatus } from '../daemon/client.js';
import type { MeshStatus } from '../runtime/mesh.js';
import { cleanupFromRecords } from '../runtime/cleanup.js';
import { parseCidr, sweepBridge } from '../runtime/net/index.js';
import { runningControlPid } from '../runtime/state.js';
import { PACKAGE_ROOT } from '../runtime/supervisor/index.js';
import { LabCodes, LabError } from './errors.js';

const BIN = join(PACKAGE_ROOT, 'bin', 'outrigger.js');

/** The lab's network. */
export interface LabNet {
  readonly bridge: string;
  readonly podCidr: string;
  readonly serviceCidr: string;
  readonly controlPort: number;
}

/** Chosen apart from `up`'s defaults (outr0, 10.244.0.0/16, 10.96.0.0/16, 8086). */
export const DEFAULT_LAB_NET: LabNet = {
  bridge: 'outrlab0',
  podCidr: '10.252.0.0/22',
  serviceCidr: '10.252.8.0/22',
  controlPort: 8096,
};

/** Whether two CIDRs overlap. */
export function cidrsOverlap(a: string, b: string): boolean {
  const range = (c: string): [number, number] => {
    const [ip, bits] = c.split('/');
    const n = (ip ?? '').split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
    const size = 2 ** (32 - Number(bits ?? 32));
    const start = Math.floor(n / size) * size;
    return [start, start + size - 1];
  };
  const [a0, a1] = range(a);
  const [b0, b1] = range(b);
  return a0 <= b1 && b0 <= a1;
}

/** Why the lab cannot use `net` and `stateDir` now (empty when it can): the bridge exists, a route of
 *  the host overlaps its CIDRs, or a mesh runs in the state directory. */
export async function networkProblems(net: LabNet, stateDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    parseCidr(net.podCidr, 'pod CIDR');
    parseCidr(net.serviceCidr, 'service CIDR');
  } catch (err) {
    return [(err as Error).message];
  }
  if (cidrsOverlap(net.podCidr, net.serviceCidr))
    out.push(`the pod CIDR ${net.podCidr} and the service CIDR ${net.serviceCidr} overlap`);
  if (existsSync(`/sys/class/net/${net.bridge}`))
    out.push(
      `the bridge ${net.bridge} exists already (another lab running, or one that was killed: outrigger down --state-dir ${stateDir})`,
    );
  const pid = runningControlPid(stateDir);
  if (pid !== undefined) out.push(`a mesh is running in ${stateDir} (control process ${pid})`);
  const routes = await new Promise<string>((resolve) => {
    const p = spawn('ip', ['-4', 'route', 'show', 'table', 'all'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let s = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (c: string) => (s += c));
    p.on('close', () => resolve(s));
    p.on('error', () => resolve(''));
  });
  for (const line of routes.split('\n')) {
    const m = /^(?:local |broadcast )?([0-9.]+(?:\/[0-9]+)?)\s.*\bdev (\S+)/.exec(line);
    if (m === null || m[2] === net.bridge) continue;
    const dest = (m[1] as string).includes('/') ? (m[1] as string) : `${m[1] as string}/32`;
    for (const [what, cidr] of [
      ['pod', net.podCidr],
      ['service', net.serviceCidr],
    ] as const) {
      if (cidrsOverlap(dest, cidr))
        out.push(`the ${what} CIDR ${cidr} overlaps the route ${dest} on ${m[2] as string}`);
    }
  }
  return [...new Set(out)];
}

/** Runs the CLI; its exit code and output. `started` gets the child (to end it early). */
export function runCli(
  args: readonly string[],
  started?: (child: ChildProcess) => void,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    started?.(p);
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (c: string) => (out += c));
    p.stderr.on('data', (c: string) => (out += c));
    p.on('close', (code) => resolve({ code: code ?? 1, out }));
    p.on('error', (err) => resolve({ code: 1, out: err.message }));
  });
}

/** One mesh of the lab, brought up from a manifest file. */
export class LabMesh {
  /** `outrigger up` while it follows the mesh's start. */
  private upChild: ChildProcess | undefined;

  constructor(
    readonly net: LabNet,
    readonly stateDir: string,
  ) {}

  async up(manifestFile: string, dataPlane: 'sidecar' | 'per-host', nodes: number): Promise<void> {
    const r = await runCli(
      [
        'up',
        '--state-dir',
        this.stateDir,
        '--bridge',
        this.net.bridge,
        '--pod-cidr',
        this.net.podCidr,
        '--service-cidr',
        this.net.serviceCidr,
        '--control-port',
        String(this.net.controlPort),
        '--data-plane',
        dataPlane,
        ...(dataPlane === 'per-host' ? ['--nodes', String(nodes)] : []),
        '--timeout',
        '180',
        '-f',
        manifestFile,
      ],
      (c) => (this.upChild = c),
    );
    this.upChild = undefined;
    if (r.code !== 0) {
      const log = await readFile(join(this.stateDir, 'control.log'), 'utf8').catch(() => '');
      throw new LabError(
        LabCodes.MESH,
        `outrigger up (${dataPlane}) failed:\n${r.out.trim()}\n${log.split('\n').slice(-15).join('\n')}`,
      );
    }
  }

  status(): Promise<MeshStatus> {
    return meshStatus(this.stateDir);
  }

  /** `outrigger down`; then, whatever it said, the records' cleanup and a sweep of the lab's bridge (a
   *  lab interrupted while `up` was still starting the mesh has no control process to ask). */
  async down(): Promise<string[]> {
    const problems: string[] = [];
    // Interrupted while `up` follows the start: it only watches (the mesh's control process is its
    // own), so it is ended by its pid, and `down` stops the mesh.
    const up = this.upChild;
    if (up !== undefined && up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
    const r = await runCli(['down', '--state-dir', this.stateDir]);
    if (r.code !== 0 && !/no mesh/i.test(r.out)) problems.push(`outrigger down: ${r.out.trim()}`);
    await cleanupFromRecords(this.stateDir).catch(() => undefined);
    await sweepBridge(this.net.bridge).catch((e: unknown) => problems.push(`sweep ${this.net.bridge}: ${String(e)}`));
    return problems;
  }
}
