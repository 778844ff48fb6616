// `outrigger inject FILE|-`: the injector's work on manifests, offline (see kube/offline.ts).
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';
import { DEFAULT_IMAGE, DEFAULT_NAMESPACE, controlAddr, controlIdentity } from '../kube/names.js';

async function readInput(file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `--trust-anchor` is no longer needed (the proxies mount the trust bundle's ConfigMap): accepted, so
 *  that scripts keep working, and said so. */
export function injectCommand(): Command {
  return new Command('inject')
    .description(
      'add the mesh to the workloads in a manifest file (- for stdin) and print the result, for `| kubectl apply -f -`',
    )
    .argument('<file>', 'a YAML or JSON manifest file, or - for stdin')
    .addOption(new Option('-n, --namespace <ns>', "the control plane's namespace").default(DEFAULT_NAMESPACE))
    .addOption(new Option('--trust-domain <domain>').default('cluster.local'))
    .addOption(new Option('--trust-anchor <file>').hideHelp())
    .addOption(new Option('--image <image>', 'the image the proxy and proxy-init run').default(DEFAULT_IMAGE))
    .addOption(
      new Option(
        '--default-inbound-policy <policy>',
        "the mesh's default (as given to install), for pods without their own config.outrigger.io/default-inbound-policy; the proxies use it only until the control plane answers",
      )
        .choices(DEFAULT_POLICY_NAMES)
        .default('all-unauthenticated'),
    )
    .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
    .action(
      async (
        file: string,
        f: {
          namespace: string;
          trustDomain: string;
          trustAnchor?: string;
          image: string;
          defaultInboundPolicy: DefaultPolicyName;
          output: 'yaml' | 'json';
        },
      ) => {
        const { injectManifests } = await import('../kube/offline.js');
        const { renderObjects } = await import('../kube/render.js');
        if (f.trustAnchor !== undefined)
          process.stderr.write(
            'outrigger inject: --trust-anchor is no longer needed and is ignored: the proxies read the trust bundle from the ConfigMap outrigger-trust-anchors the control plane keeps in their namespace\n',
          );
        try {
          const { objects, report } = injectManifests(await readInput(file), {
            image: f.image,
            controlAddr: controlAddr(f.namespace),
            trustDomain: f.trustDomain,
            controlIdentity: controlIdentity(f.trustDomain, f.namespace),
            defaultInboundPolicy: f.defaultInboundPolicy,
          });
          process.stdout.write(renderObjects(objects, f.output));
          for (const line of report) process.stderr.write(`${line}\n`);
        } catch (err) {
          process.stderr.write(`outrigger inject: ${file === '-' ? 'stdin' : file}: ${(err as Error).message}\n`);
          process.exit(1);
        }
      },
    );
}
