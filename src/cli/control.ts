// `outrigger control`: the mesh's control process, started in the background by `up` (not for people).
// Here the local runtime and the control plane meet: the runtime publishes snapshots of Services,
// endpoints and pods into a local store, and the control plane serves them to the proxies over gRPC on
// the bridge's address.
import { Command, Option } from 'commander';
import { startControlPlane } from '../control/server.js';
import { LocalStore } from '../control/store/local/local.js';
import { runControl } from '../runtime/control.js';
import type { ControlPlaneHost } from '../runtime/mesh.js';
import { stateDir, stateDirOption } from './mesh-common.js';

export const DEFAULT_CONTROL_PORT = 8086;

interface ControlOptions {
  readonly file: string[];
  readonly stateDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  readonly controlPort: string;
  readonly trustDomain: string;
  readonly readyTimeoutMs: string;
}

export function controlCommand(): Command {
  return new Command('control')
    .description('(internal) the control process of a local mesh; started by outrigger up')
    .requiredOption('-f, --file <file>', 'a manifest file (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addOption(stateDirOption())
    .addOption(new Option('--bridge <name>'))
    .addOption(new Option('--pod-cidr <cidr>'))
    .addOption(new Option('--service-cidr <cidr>'))
    .addOption(new Option('--control-port <port>').default(String(DEFAULT_CONTROL_PORT)))
    .addOption(new Option('--trust-domain <domain>').default('cluster.local'))
    .addOption(new Option('--ready-timeout-ms <ms>').default('60000'))
    .action(async (o: ControlOptions) => {
      const store = new LocalStore();
      const controlPlane: ControlPlaneHost = {
        async start(gateway) {
          const cp = await startControlPlane({ store, host: gateway, port: Number(o.controlPort), trustDomain: o.trustDomain });
          return { addr: `${gateway}:${cp.address.port}`, close: () => cp.close() };
        },
        publish: (snapshot) => store.replace(snapshot),
      };
      const code = await runControl({
        stateDir: stateDir(o.stateDir),
        files: o.file,
        ...(o.bridge !== undefined ? { bridge: o.bridge } : {}),
        ...(o.podCidr !== undefined ? { podCidr: o.podCidr } : {}),
        ...(o.serviceCidr !== undefined ? { serviceCidr: o.serviceCidr } : {}),
        controlPlane,
        readyTimeoutMs: Number(o.readyTimeoutMs),
      });
      process.exit(code);
    });
}
