// `outrigger version` (and `outrigger --version`): the CLI's version and, with a mesh running, the
// control process's and every proxy's, each read from the running process, so that a mesh half-way
// through an upgrade shows which parts run what.
import http from 'node:http';
import { Command, Option } from 'commander';
import { versionView, type VersionView } from '../core/version.js';
import { controlVersion, meshStatus } from '../runtime/control.js';
import type { PodView } from '../runtime/mesh.js';
import { runningControlPid } from '../runtime/state.js';
import { DEFAULT_PROXY_ADMIN_PORT } from '../runtime/supervisor/pod.js';
import { stateDir, stateDirOption } from './mesh-common.js';

interface VersionOptions {
  readonly client?: boolean;
  readonly output?: string;
  readonly stateDir: string;
}

/** One part of the mesh and what it said of its version, or why it could not be asked. */
export interface PartVersion {
  readonly version?: string;
  readonly node?: string;
  readonly error?: string;
}

export interface ProxyVersion extends PartVersion {
  readonly namespace: string;
  readonly pod: string;
}

export interface VersionReport {
  readonly client: VersionView;
  /** Absent: no mesh runs in the state directory. */
  readonly control?: PartVersion;
  readonly proxies: readonly ProxyVersion[];
}

/** How long each running part has to answer. */
const ASK_TIMEOUT_MS = 3000;

function proxyVersion(ip: string): Promise<VersionView> {
  return new Promise((resolve, reject) => {
    const url = `http://${ip}:${DEFAULT_PROXY_ADMIN_PORT}/version`;
    const req = http.get(url, { timeout: ASK_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode ?? 0}: ${body.trim()}`));
        try {
          resolve(JSON.parse(body) as VersionView);
        } catch {
          reject(new Error('answered with something that is not JSON'));
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ASK_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

const asked = (p: Promise<VersionView>): Promise<PartVersion> =>
  p.then(
    (v) => ({ version: v.version, node: v.node }),
    (err: unknown) => ({ error: (err as Error).message }),
  );

/** Asks the control process and every meshed pod's proxy in `dir` for their versions. */
export async function versionReport(dir: string, clientOnly: boolean): Promise<VersionReport> {
  const client = versionView();
  if (clientOnly || runningControlPid(dir) === undefined) return { client, proxies: [] };
  const control = await asked(controlVersion(dir));
  let pods: readonly PodView[];
  try {
    pods = (await meshStatus(dir)).pods;
  } catch (err) {
    return { client, control: { error: (err as Error).message }, proxies: [] };
  }
  const proxies = await Promise.all(
    pods
      .filter((p) => p.meshed)
      .map(async (p) => ({
        namespace: p.namespace,
        pod: p.name,
        ...(p.ip === '' ? { error: 'the pod has no address yet' } : await asked(proxyVersion(p.ip))),
      })),
  );
  return { client, control, proxies };
}

const show = (v: PartVersion): string =>
  v.error !== undefined ? `unavailable (${v.error})` : `${v.version ?? '?'} (node ${v.node ?? '?'})`;

export function formatVersionReport(r: VersionReport, dir: string): string {
  const lines = [`Client version:  ${r.client.version} (node ${r.client.node})`];
  if (r.control === undefined) {
    lines.push(`Control process: no mesh is running in ${dir}`);
    return `${lines.join('\n')}\n`;
  }
  lines.push(`Control process: ${show(r.control)}`);
  if (r.proxies.length === 0) {
    lines.push('Proxies:         none (no meshed pods)');
    return `${lines.join('\n')}\n`;
  }
  const rows = r.proxies.map((p) => [p.namespace, p.pod, show(p)] as const);
  const w0 = Math.max('NAMESPACE'.length, ...rows.map((x) => x[0].length));
  const w1 = Math.max('POD'.length, ...rows.map((x) => x[1].length));
  lines.push('Proxies:', `${'NAMESPACE'.padEnd(w0)}  ${'POD'.padEnd(w1)}  VERSION`);
  for (const [ns, pod, v] of rows) lines.push(`${ns.padEnd(w0)}  ${pod.padEnd(w1)}  ${v}`);
  return `${lines.join('\n')}\n`;
}

export function versionCommand(): Command {
  return new Command('version')
    .description("show the CLI's version and, with a mesh running, the control process's and every proxy's")
    .option('--client', "only the CLI's version")
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addOption(stateDirOption())
    .action(async (o: VersionOptions) => {
      const dir = stateDir(o.stateDir);
      const report = await versionReport(dir, o.client === true);
      if (o.output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(formatVersionReport(report, dir));
    });
}
