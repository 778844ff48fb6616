// `outrigger proxy-init`: the injected init container's one job, to redirect the pod's TCP through its
// proxy with iptables. It writes the same rules the local runtime writes into its pods
// (runtime/net/proxy-init.ts), in the network namespace it runs in, then exits.
import { Command, Option } from 'commander';
import { parsePortList, type PortList } from '../core/ports.js';
import {
  DEFAULT_PROXY_INIT,
  applyProxyInit,
  renderProxyInitRules,
  runCommand,
  type ProxyInitConfig,
} from '../runtime/net/index.js';

interface Flags {
  readonly inboundPort: string;
  readonly outboundPort: string;
  readonly proxyUid: string;
  readonly proxyPorts: string;
  readonly skipInboundPorts: string;
  readonly skipOutboundPorts: string;
  readonly iptables: string;
  readonly dryRun?: boolean;
}

/** The config from the flags; every problem at once. */
export function proxyInitConfig(f: Flags): { cfg?: ProxyInitConfig; problems: string[] } {
  const problems: string[] = [];
  const int = (name: string, v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v)) problems.push(`--${name}: must be a whole number, got ${JSON.stringify(v)}`);
    return n;
  };
  const list = (name: string, v: string): PortList => {
    const p = parsePortList(v);
    if (!p.ok) {
      problems.push(`--${name}: ${p.message}`);
      return [];
    }
    return p.ports;
  };
  const cfg: ProxyInitConfig = {
    inboundPort: int('inbound-port', f.inboundPort),
    outboundPort: int('outbound-port', f.outboundPort),
    proxyUid: int('proxy-uid', f.proxyUid),
    proxyPorts: list('proxy-ports', f.proxyPorts).flatMap((r) =>
      Array.from({ length: r.to - r.from + 1 }, (_, i) => r.from + i),
    ),
    skipInboundPorts: list('skip-inbound-ports', f.skipInboundPorts),
    skipOutboundPorts: list('skip-outbound-ports', f.skipOutboundPorts),
  };
  return problems.length > 0 ? { problems } : { cfg, problems };
}

export function proxyInitCommand(): Command {
  const d = DEFAULT_PROXY_INIT;
  return new Command('proxy-init')
    .description(
      "write the iptables rules that send a pod's TCP through its proxy (the injected init container runs this)",
    )
    .addOption(new Option('--inbound-port <port>', "the proxy's inbound port").default(String(d.inboundPort)))
    .addOption(new Option('--outbound-port <port>', "the proxy's outbound port").default(String(d.outboundPort)))
    .addOption(
      new Option('--proxy-uid <uid>', "the proxy's uid, whose connections are not redirected").default(
        String(d.proxyUid),
      ),
    )
    .addOption(
      new Option('--proxy-ports <ports>', "the proxy's own ports (admin), never redirected inbound").default(
        d.proxyPorts.join(','),
      ),
    )
    .addOption(new Option('--skip-inbound-ports <ports>', 'inbound ports left alone').default(''))
    .addOption(new Option('--skip-outbound-ports <ports>', 'outbound ports left alone').default(''))
    .addOption(
      new Option('--iptables <command>', 'iptables, iptables-nft or iptables-legacy (whichever the node uses)').default(
        'iptables',
      ),
    )
    .option('--dry-run', 'print the rules instead of writing them')
    .action(async (f: Flags) => {
      const { cfg, problems } = proxyInitConfig(f);
      if (cfg === undefined) {
        process.stderr.write(`outrigger proxy-init: ${problems.join('; ')}\n`);
        process.exit(2);
      }
      if (f.dryRun === true) {
        process.stdout.write(renderProxyInitRules(cfg, 'pod'));
        return;
      }
      try {
        const text = await applyProxyInit(runCommand, cfg, {
          iptables: f.iptables,
          label: process.env.HOSTNAME ?? 'pod',
        });
        process.stdout.write(text);
      } catch (err) {
        process.stderr.write(`outrigger proxy-init: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}
