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

interface RotationFlags {
  readonly stage: string;
  readonly namespace: string;
  readonly trustDomain: string;
  readonly oldAnchor: string;
  readonly newAnchor: string;
  readonly newIssuerCert?: string;
  readonly newIssuerKey?: string;
  readonly newAnchorKey?: string;
  readonly generation?: string;
  readonly output: 'yaml' | 'json';
}

/** `outrigger install trust-rotation --stage N`: what to `kubectl apply` for one stage of an anchor
 *  rotation (src/kube/trust.ts), and on stderr what it does, what to wait for, and what comes next. */
function trustRotationCommand(): Command {
  return new Command('trust-rotation')
    .description(
      'print the manifests of one stage of a trust anchor rotation (1: trust both anchors, 2: sign with the new issuer, 3: drop the old anchor), for `kubectl apply -f -`',
    )
    .addOption(new Option('--stage <n>', 'the stage: 1, 2 or 3').choices(['1', '2', '3']).makeOptionMandatory())
    .addOption(new Option('-n, --namespace <ns>', "the control plane's namespace").default(DEFAULT_NAMESPACE))
    .addOption(new Option('--trust-domain <domain>').default('cluster.local'))
    .addOption(new Option('--old-anchor <file>', 'the anchor the mesh trusts now (PEM)').makeOptionMandatory())
    .addOption(new Option('--new-anchor <file>', 'the anchor to rotate to (PEM)').makeOptionMandatory())
    .addOption(new Option('--new-issuer-cert <file>', 'stage 2: the new issuer, signed by the new anchor (PEM)'))
    .addOption(new Option('--new-issuer-key <file>', "stage 2: the new issuer's key (PEM)"))
    .addOption(
      new Option(
        '--new-anchor-key <file>',
        "stage 2, instead of --new-issuer-cert/--new-issuer-key: the new anchor's key, to sign a new issuer with here (the key is read, never printed)",
      ),
    )
    .addOption(
      new Option(
        '--generation <n>',
        "the trust bundle's generation; default the time in seconds (each stage must be higher than the last)",
      ),
    )
    .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
    .action(async (f: RotationFlags) => {
      const problems: string[] = [];
      const stage = Number(f.stage) as 1 | 2 | 3;
      const generation = f.generation !== undefined ? Number(f.generation) : Math.floor(Date.now() / 1000);
      if (f.generation !== undefined && !(/^[0-9]+$/.test(f.generation) && generation >= 1))
        problems.push(`--generation: must be a whole number from 1, got ${JSON.stringify(f.generation)}`);
      const issuerFiles = [f.newIssuerCert, f.newIssuerKey].filter((x) => x !== undefined).length;
      if (issuerFiles === 1) problems.push('--new-issuer-cert and --new-issuer-key go together');
      if (issuerFiles === 2 && f.newAnchorKey !== undefined)
        problems.push('--new-anchor-key or --new-issuer-cert/--new-issuer-key: give one, not both');
      if (stage === 2 && issuerFiles === 0 && f.newAnchorKey === undefined)
        problems.push(
          "stage 2 signs with the new issuer: give --new-issuer-cert and --new-issuer-key, or --new-anchor-key to sign one with the new anchor's key",
        );
      if (stage !== 2 && (issuerFiles > 0 || f.newAnchorKey !== undefined))
        problems.push(
          `stage ${stage} does not change the issuer: --new-issuer-cert, --new-issuer-key and --new-anchor-key are for stage 2`,
        );
      if (problems.length > 0) {
        process.stderr.write(`outrigger install trust-rotation: ${problems.join('; ')}\n`);
        process.exit(2);
      }
      const read = async (flag: string, file: string) => {
        try {
          return await readFile(file, 'utf8');
        } catch (err) {
          throw new Error(`${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
        }
      };
      try {
        const { rotationStageObjects, ROTATION_STAGES } = await import('../kube/trust.js');
        const { renderObjects } = await import('../kube/render.js');
        const objects = await rotationStageObjects({
          namespace: f.namespace,
          trustDomain: f.trustDomain,
          stage,
          oldAnchorPem: await read('--old-anchor', f.oldAnchor),
          newAnchorPem: await read('--new-anchor', f.newAnchor),
          ...(issuerFiles === 2
            ? {
                newIssuer: {
                  certPem: await read('--new-issuer-cert', f.newIssuerCert as string),
                  keyPem: await read('--new-issuer-key', f.newIssuerKey as string),
                },
              }
            : {}),
          ...(f.newAnchorKey !== undefined ? { newAnchorKeyPem: await read('--new-anchor-key', f.newAnchorKey) } : {}),
          generation,
        });
        process.stdout.write(renderObjects(objects, f.output));
        const s = ROTATION_STAGES[stage];
        process.stderr.write(
          `stage ${stage} of 3 (generation ${generation}): ${s.does}.\n` +
            (stage === 2
              ? 'The issuer key is in the Secret printed above: pipe it to kubectl, do not keep it in a file.\n'
              : '') +
            `Then wait until ${s.waitFor}; next, ${s.next}.\n`,
        );
      } catch (err) {
        process.stderr.write(`outrigger install trust-rotation: ${(err as Error).message}\n`);
        process.exit(1);
      }
    });
}

/** install's own options (-n, -o, ...) are read before `trust-rotation` only; after it, its own. */
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
    .enablePositionalOptions()
    .addCommand(trustRotationCommand())
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
