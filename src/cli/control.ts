// `outrigger control`: the mesh's control process, started in the background by `up` (not for people).
// Here the local runtime and the control plane meet: the runtime publishes snapshots of Services,
// endpoints and pods into a local store, and the control plane serves them to the proxies over gRPC on
// the bridge's address, with the identity service: the mesh CA (created in the state directory on
// first start, or the user's) signs each proxy's CSR after checking its pod's token, which the runtime
// issues (as the kubelet would).
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { startControlPlane } from '../control/server.js';
import { MeshCa } from '../control/identity/ca.js';
import { Certifier } from '../control/identity/certify.js';
import { addIdentityService } from '../control/identity/service.js';
import { LocalTokenIssuer } from '../control/identity/tokens.js';
import { LocalStore } from '../control/store/local/local.js';
import { runControl } from '../daemon/server.js';
import type { ControlPlaneHost } from '../runtime/mesh.js';
import { stateDir, stateDirOption } from './mesh-common.js';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';

/** The pods' network when `up` is not given one (the runtime's default): cluster-authenticated's. */
const DEFAULT_POD_CIDR = '10.244.0.0/16';

export const DEFAULT_CONTROL_PORT = 8086;

interface ControlOptions {
  readonly file: string[];
  readonly stateDir: string;
  readonly bridge?: string;
  readonly podCidr?: string;
  readonly serviceCidr?: string;
  readonly controlPort: string;
  readonly trustDomain: string;
  readonly trustAnchor?: string;
  readonly issuerCert?: string;
  readonly issuerKey?: string;
  readonly certLifetime: string;
  readonly readyTimeoutMs: string;
  readonly resume?: boolean;
  readonly defaultInboundPolicy: DefaultPolicyName;
  readonly traceCollector?: string;
}

/** The mesh CA: the user's files when given (all three), else the one in the state directory. */
export async function openMeshCa(o: { stateDir: string; trustDomain: string; trustAnchor?: string; issuerCert?: string; issuerKey?: string }): Promise<MeshCa> {
  if (o.trustAnchor !== undefined && o.issuerCert !== undefined && o.issuerKey !== undefined) {
    return MeshCa.load({ trustAnchor: o.trustAnchor, issuerCert: o.issuerCert, issuerKey: o.issuerKey }, { trustDomain: o.trustDomain });
  }
  return (await MeshCa.openDir(join(o.stateDir, 'identity'), { trustDomain: o.trustDomain })).ca;
}

export function controlCommand(): Command {
  return new Command('control')
    .description('(internal) the control process of a local mesh; started by outrigger up')
    .option('-f, --file <file>', 'a manifest file (repeatable)', (v: string, prev: string[] = []) => [...prev, v], [] as string[])
    .option('--resume', 'take over the running mesh a killed control process left, from its records')
    .addOption(stateDirOption())
    .addOption(new Option('--bridge <name>'))
    .addOption(new Option('--pod-cidr <cidr>'))
    .addOption(new Option('--service-cidr <cidr>'))
    .addOption(new Option('--control-port <port>').default(String(DEFAULT_CONTROL_PORT)))
    .addOption(new Option('--trust-domain <domain>').default('cluster.local'))
    .addOption(new Option('--trust-anchor <file>'))
    .addOption(new Option('--issuer-cert <file>'))
    .addOption(new Option('--issuer-key <file>'))
    .addOption(new Option('--cert-lifetime <seconds>').default(String(24 * 3600)))
    .addOption(new Option('--ready-timeout-ms <ms>').default('60000'))
    .addOption(new Option('--default-inbound-policy <policy>').choices(DEFAULT_POLICY_NAMES).default('all-unauthenticated'))
    .addOption(new Option('--trace-collector <url>'))
    .action(async (o: ControlOptions) => {
      const dir = stateDir(o.stateDir);
      const log = pino({ level: 'info' }, pino.destination({ dest: 1, sync: false }));
      const store = new LocalStore();
      const ca = await openMeshCa({ ...o, stateDir: dir });
      const { issuer } = await LocalTokenIssuer.openDir(join(dir, 'identity'));
      const controlPlane: ControlPlaneHost = {
        port: Number(o.controlPort),
        async start(gateway, podExists) {
          const certifier = new Certifier({ ca, reviewer: issuer.reviewer(podExists), leafLifetimeSeconds: Number(o.certLifetime) });
          const cp = await startControlPlane({
            store,
            host: gateway,
            port: Number(o.controlPort),
            trustDomain: ca.trustDomain,
            log,
            policy: { defaultPolicy: o.defaultInboundPolicy, clusterNetworks: [o.podCidr ?? DEFAULT_POD_CIDR] },
            services: (server) => addIdentityService(server, { certifier, log: log.child({ service: 'identity' }) }),
          });
          return { addr: `${gateway}:${cp.address.port}`, close: () => cp.close() };
        },
        publish: (snapshot) => store.replace(snapshot),
        identity: { trustDomain: ca.trustDomain, issueToken: (subject) => issuer.issue(subject, { lifetimeSeconds: 3600 }) },
      };
      const code = await runControl({
        stateDir: dir,
        files: o.file,
        ...(o.resume === true ? { resume: true } : {}),
        ...(o.bridge !== undefined ? { bridge: o.bridge } : {}),
        ...(o.podCidr !== undefined ? { podCidr: o.podCidr } : {}),
        ...(o.serviceCidr !== undefined ? { serviceCidr: o.serviceCidr } : {}),
        controlPlane,
        readyTimeoutMs: Number(o.readyTimeoutMs),
        defaultInboundPolicy: o.defaultInboundPolicy,
        ...(o.traceCollector !== undefined ? { traceCollector: o.traceCollector } : {}),
      });
      process.exit(code);
    });
}
