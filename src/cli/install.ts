// `outrigger install`: prints every manifest a cluster needs, for `| kubectl apply -f -`. What makes
// them (certificates, CRD schemas) is loaded when the command runs.
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { parseDuration } from '../manifests/routes.js';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';
import { DEFAULT_CLUSTER_NETWORKS, DEFAULT_IMAGE, DEFAULT_NAMESPACE, parseClusterNetworks } from '../kube/names.js';

interface Flags {
  readonly namespace: string;
  readonly trustDomain: string;
  readonly identityLifetime: string;
  readonly image: string;
  readonly replicas: string;
  readonly webhookFailurePolicy: 'Ignore' | 'Fail';
  readonly defaultInboundPolicy: DefaultPolicyName;
  readonly clusterNetworks: string;
  readonly trustAnchor?: string;
  readonly issuerCert?: string;
  readonly issuerKey?: string;
  readonly crds?: boolean;
  readonly controlPlane?: boolean;
  readonly output: 'yaml' | 'json';
}

/** Seconds, from `86400` or a duration such as `24h`, `90m`. */
export function parseSeconds(text: string): number | undefined {
  if (/^[0-9]+$/.test(text)) return Number(text);
  const ms = parseDuration(text);
  return ms === undefined ? undefined : Math.floor(ms / 1000);
}

export function installCommand(): Command {
  return new Command('install')
    .description(
      'print the manifests that install Outrigger on a Kubernetes cluster (pipe them to `kubectl apply -f -`)',
    )
    .addOption(new Option('-n, --namespace <ns>', "the control plane's namespace").default(DEFAULT_NAMESPACE))
    .addOption(
      new Option('--trust-domain <domain>', 'the SPIFFE trust domain of workload identities').default('cluster.local'),
    )
    .addOption(
      new Option(
        '--identity-lifetime <duration>',
        "lifetime of the proxies' certificates (seconds, or e.g. 24h)",
      ).default('24h'),
    )
    .addOption(
      new Option('--image <image>', 'the image the control plane, proxies and proxy-init run').default(DEFAULT_IMAGE),
    )
    .addOption(new Option('--replicas <n>', 'control plane replicas').default('2'))
    .addOption(
      new Option(
        '--webhook-failure-policy <policy>',
        'Ignore: pods are admitted (unmeshed) while the injector is down; Fail: they wait',
      )
        .choices(['Ignore', 'Fail'])
        .default('Ignore'),
    )
    .addOption(
      new Option(
        '--default-inbound-policy <policy>',
        "inbound policy of ports no Server covers (a namespace's or pod's config.outrigger.io/default-inbound-policy wins)",
      )
        .choices(DEFAULT_POLICY_NAMES)
        .default('all-unauthenticated'),
    )
    .addOption(
      new Option(
        '--cluster-networks <cidrs>',
        "the cluster's pod networks, comma-separated IPv4 CIDRs: what cluster-authenticated admits",
      ).default(DEFAULT_CLUSTER_NETWORKS.join(',')),
    )
    .addOption(
      new Option(
        '--trust-anchor <file>',
        'your trust anchor (PEM); with --issuer-cert and --issuer-key, instead of a generated CA',
      ),
    )
    .addOption(new Option('--issuer-cert <file>'))
    .addOption(new Option('--issuer-key <file>'))
    .option('--crds', 'print only the CustomResourceDefinitions')
    .option('--control-plane', 'print everything but the CustomResourceDefinitions')
    .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
    .action(async (f: Flags) => {
      const problems: string[] = [];
      const lifetime = parseSeconds(f.identityLifetime);
      if (lifetime === undefined || lifetime < 60)
        problems.push(
          `--identity-lifetime: must be at least 60 seconds (e.g. 86400 or 24h), got ${JSON.stringify(f.identityLifetime)}`,
        );
      const replicas = Number(f.replicas);
      if (!Number.isInteger(replicas) || replicas < 1)
        problems.push(`--replicas: must be a whole number from 1, got ${JSON.stringify(f.replicas)}`);
      const given = [f.trustAnchor, f.issuerCert, f.issuerKey].filter((x) => x !== undefined).length;
      if (given !== 0 && given !== 3)
        problems.push('--trust-anchor, --issuer-cert and --issuer-key go together (all three or none)');
      if (f.crds === true && f.controlPlane === true)
        problems.push('--crds and --control-plane: choose one (neither prints both)');
      const networks = parseClusterNetworks(f.clusterNetworks);
      problems.push(...networks.problems);
      if (problems.length > 0) {
        process.stderr.write(`outrigger install: ${problems.join('; ')}\n`);
        process.exit(2);
      }
      try {
        const { installObjects } = await import('../kube/install.js');
        const { renderObjects } = await import('../kube/render.js');
        const ca =
          given === 3
            ? {
                trustAnchorPem: await readFile(f.trustAnchor as string, 'utf8'),
                issuerCertPem: await readFile(f.issuerCert as string, 'utf8'),
                issuerKeyPem: await readFile(f.issuerKey as string, 'utf8'),
              }
            : undefined;
        const objects = await installObjects({
          namespace: f.namespace,
          trustDomain: f.trustDomain,
          identityLifetimeSeconds: lifetime as number,
          image: f.image,
          replicas,
          failurePolicy: f.webhookFailurePolicy,
          defaultInboundPolicy: f.defaultInboundPolicy,
          clusterNetworks: networks.networks,
          ...(ca !== undefined ? { ca } : {}),
          part: f.crds === true ? 'crds' : f.controlPlane === true ? 'control-plane' : 'all',
        });
        process.stdout.write(renderObjects(objects, f.output));
      } catch (err) {
        process.stderr.write(`outrigger install: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}
