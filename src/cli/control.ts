// `outrigger control`: the local mesh's daemon (src/daemon), started in the background by `up` (not for
// people). The options here; the daemon and the control plane it hosts are assembled in src/daemon.
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_CONTROL_PORT, localControlPlane } from '../daemon/control-plane.js';
import { runDaemon } from '../daemon/server.js';
import { dataPlaneSettings } from '../runtime/dataplane/index.js';
import { stateDir, stateDirOption } from './mesh-common.js';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';

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
  readonly dataPlane?: string;
  readonly nodes?: string;
}

export function controlCommand(): Command {
  return new Command('control')
    .description('(internal) the control process of a local mesh; started by outrigger up')
    .option(
      '-f, --file <file>',
      'a manifest file (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
      [] as string[],
    )
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
    .addOption(
      new Option('--default-inbound-policy <policy>').choices(DEFAULT_POLICY_NAMES).default('all-unauthenticated'),
    )
    .addOption(new Option('--trace-collector <url>'))
    .addOption(new Option('--data-plane <mode>'))
    .addOption(new Option('--nodes <n>'))
    .action(async (o: ControlOptions) => {
      const dir = stateDir(o.stateDir);
      const dataPlane = dataPlaneSettings(o.dataPlane, o.nodes);
      const controlPlane = await localControlPlane({
        stateDir: dir,
        ...(o.podCidr !== undefined ? { podCidr: o.podCidr } : {}),
        controlPort: Number(o.controlPort),
        trustDomain: o.trustDomain,
        ...(o.trustAnchor !== undefined ? { trustAnchor: o.trustAnchor } : {}),
        ...(o.issuerCert !== undefined ? { issuerCert: o.issuerCert } : {}),
        ...(o.issuerKey !== undefined ? { issuerKey: o.issuerKey } : {}),
        certLifetimeSeconds: Number(o.certLifetime),
        defaultInboundPolicy: o.defaultInboundPolicy,
      });
      const code = await runDaemon({
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
        dataPlane,
        // The CA's issuer key, when it lives outside the state directory: no container may read it.
        ...(o.issuerKey !== undefined ? { hide: [resolve(o.issuerKey)] } : {}),
      });
      process.exit(code);
    });
}
