// `outrigger tap [-n NS] POD|deploy/NAME`: the live requests a pod's proxy (or every pod of a Deployment
// at once) sees, from each proxy's admin GET /tap, with the mesh's tap token from the state directory.
import { Command, Option } from 'commander';
import { tapPod, TapError, type TapEvent, type TapQuery } from '../observe/tap.js';
import { readTapToken } from '../daemon/client.js';
import type { MeshStatus, PodView } from '../runtime/mesh.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';

interface TapOptions {
  readonly namespace: string;
  readonly path?: string;
  readonly method?: string;
  readonly authority?: string;
  readonly direction?: 'inbound' | 'outbound';
  readonly to?: string;
  readonly max: string;
  readonly headers?: boolean;
  readonly output?: string;
  readonly stateDir: string;
}

/** The meshed pods `ref` names: one pod, or every pod of a Deployment. */
export function tapTargets(status: MeshStatus, namespace: string, ref: string): PodView[] | string {
  const m = /^(?:deploy|deployment|deployments)\/(.+)$/.exec(ref);
  const pods =
    m !== null
      ? status.pods.filter((p) => p.namespace === namespace && p.deployment === m[1] && p.terminating !== true)
      : status.pods.filter((p) => p.namespace === namespace && p.name === ref);
  if (pods.length === 0) return m !== null ? `no deployment ${namespace}/${m[1]}` : `no pod ${namespace}/${ref}`;
  const meshed = pods.filter((p) => p.meshed);
  if (meshed.length === 0) return `${ref} is not meshed: no proxy to tap`;
  return meshed;
}

/** One line per event, the way people read it. */
export function formatTapLine(pod: string, e: TapEvent): string {
  const status = e.grpc_status !== undefined ? `${e.status} grpc=${e.grpc_status}` : String(e.status);
  const id = e.direction === 'inbound' ? e.client_id : e.server_id;
  return [
    e.ts.slice(11, 23),
    pod,
    e.direction === 'inbound' ? 'in ' : 'out',
    `${e.src} -> ${e.dst}`,
    e.method,
    `${e.authority}${e.path}`,
    status,
    `${e.latency_ms}ms`,
    `route=${e.route}`,
    e.dst_workload !== undefined ? `dst=${e.dst_workload}` : '',
    e.tls ? `tls ${id}` : 'no tls',
  ]
    .filter((x) => x !== '')
    .join(' ');
}

export function tapCommand(): Command {
  return new Command('tap')
    .description('stream the requests a pod (or every pod of deploy/NAME) sends and receives, live')
    .argument('<target>', 'a pod name, or deploy/NAME (every pod of the Deployment)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('--path <prefix>', 'only requests whose path starts with this')
    .option('--method <method>', 'only this method')
    .option('--authority <host>', 'only this authority (Host)')
    .addOption(new Option('--direction <dir>', 'only inbound or only outbound').choices(['inbound', 'outbound']))
    .option('--to <name>', 'only requests to this workload, Service or pod')
    .option('--max <n>', 'stop after this many events in all (at most 10000 per pod)', '100')
    .option('--headers', 'show header values (otherwise only their names)')
    .addOption(new Option('-o, --output <format>', 'one JSON object per line, with the pod').choices(['json']))
    .addOption(stateDirOption())
    .action(async (ref: string, o: TapOptions) => {
      const dir = stateDir(o.stateDir);
      if (!/^\d+$/.test(o.max) || Number(o.max) < 1)
        fail('tap', `--max must be a positive integer, got ${JSON.stringify(o.max)}`);
      const max = Number(o.max);
      const status = await liveStatus('tap', dir);
      const pods = tapTargets(status, o.namespace, ref);
      if (typeof pods === 'string') fail('tap', pods);
      let token: string;
      try {
        token = await readTapToken(dir);
      } catch (err) {
        return fail('tap', `cannot read the mesh's tap token (run as root): ${(err as Error).message}`);
      }
      const filter: TapQuery = {
        ...(o.path !== undefined ? { path: o.path } : {}),
        ...(o.method !== undefined ? { method: o.method } : {}),
        ...(o.authority !== undefined ? { authority: o.authority } : {}),
        ...(o.direction !== undefined ? { direction: o.direction } : {}),
        ...(o.to !== undefined ? { to: o.to } : {}),
        max: Math.min(max, 10_000),
        ...(o.headers === true ? { headers: true } : {}),
      };
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      let seen = 0;
      let started = 0;
      const errors: string[] = [];
      const onEvent = (pod: PodView) => (e: TapEvent) => {
        if (seen >= max) return;
        seen++;
        process.stdout.write(
          o.output === 'json' ? `${JSON.stringify({ pod: pod.name, ...e })}\n` : `${formatTapLine(pod.name, e)}\n`,
        );
        if (seen >= max) ac.abort();
      };
      await Promise.all(
        pods.map((p) =>
          tapPod({
            addr: `${p.ip}:${PROXY_ADMIN_PORT}`,
            token,
            filter,
            signal: ac.signal,
            onEvent: onEvent(p),
            onStart: () => {
              if (++started === pods.length)
                process.stderr.write(`tapping ${pods.map((x) => x.name).join(', ')} (^C to stop)\n`);
            },
          }).catch((err: unknown) =>
            errors.push(err instanceof TapError ? `${p.name}: ${err.message}` : `${p.name}: ${(err as Error).message}`),
          ),
        ),
      );
      if (errors.length > 0) fail('tap', errors.join('; '));
    });
}
