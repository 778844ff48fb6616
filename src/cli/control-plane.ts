// `outrigger control-plane --store kubernetes`: the control plane as it runs in a cluster. The command
// is defined here with light imports only; what it runs (control-plane-start.ts, with the Kubernetes
// client) is loaded when it runs, so that no other command, the proxy least of all, pays for it.
import { Command, Option } from 'commander';
import { createLogger } from '../core/log.js';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';
import { IDENTITY_TOKEN_AUDIENCE } from '../manifests/contract.js';
import {
  CONTROL_ADMIN_PORT,
  DEFAULT_CLUSTER_NETWORKS,
  DEFAULT_IMAGE,
  parseClusterNetworks,
  DEFAULT_NAMESPACE,
  GRPC_PORT,
  IDENTITY_DIR,
  IDENTITY_KEYS,
  INJECTOR_TLS_DIR,
  TRUST_BUNDLE_DIR,
  TRUST_BUNDLE_KEY,
  WEBHOOK_PORT,
} from '../kube/names.js';

interface Flags {
  readonly store: string;
  readonly kubeconfig?: string;
  readonly namespace: string;
  readonly trustDomain: string;
  readonly identityLifetime: string;
  readonly tokenAudience: string;
  readonly image: string;
  readonly host: string;
  readonly grpcPort: string;
  readonly webhookPort: string;
  readonly adminPort: string;
  readonly identityDir: string;
  readonly injectorTlsDir: string;
  readonly trustBundleDir: string;
  readonly defaultInboundPolicy: DefaultPolicyName;
  readonly clusterNetworks: string;
  readonly logLevel: string;
}

export function controlPlaneCommand(): Command {
  return new Command('control-plane')
    .description(
      'the control plane in a Kubernetes cluster (destination, identity, policy, the injector webhook); the Deployment from `outrigger install` runs it',
    )
    .addOption(new Option('--store <kind>', 'where the truth comes from').choices(['kubernetes']).default('kubernetes'))
    .addOption(new Option('--kubeconfig <file>', 'a kubeconfig (default: in-cluster, or $KUBECONFIG)'))
    .addOption(
      new Option('--namespace <ns>', 'the namespace the control plane runs in').default(
        process.env.OUTRIGGER_POD_NAMESPACE ?? DEFAULT_NAMESPACE,
      ),
    )
    .addOption(new Option('--trust-domain <domain>').default('cluster.local'))
    .addOption(
      new Option('--identity-lifetime <seconds>', "lifetime of the proxies' certificates").default(String(24 * 3600)),
    )
    .addOption(new Option('--token-audience <aud>').default(IDENTITY_TOKEN_AUDIENCE))
    .addOption(new Option('--image <image>', 'the image injected proxies run').default(DEFAULT_IMAGE))
    .addOption(new Option('--host <addr>').default('0.0.0.0'))
    .addOption(new Option('--grpc-port <port>').default(String(GRPC_PORT)))
    .addOption(new Option('--webhook-port <port>').default(String(WEBHOOK_PORT)))
    .addOption(new Option('--admin-port <port>').default(String(CONTROL_ADMIN_PORT)))
    .addOption(
      new Option(
        '--identity-dir <dir>',
        `the mounted identity Secret (${Object.values(IDENTITY_KEYS).join(', ')})`,
      ).default(IDENTITY_DIR),
    )
    .addOption(
      new Option('--injector-tls-dir <dir>', 'the mounted injector TLS Secret (tls.crt, tls.key)').default(
        INJECTOR_TLS_DIR,
      ),
    )
    .addOption(
      new Option(
        '--trust-bundle-dir <dir>',
        `the mounted trust bundle ConfigMap (${TRUST_BUNDLE_KEY}); read again while running, and copied into every namespace`,
      ).default(TRUST_BUNDLE_DIR),
    )
    .addOption(
      new Option(
        '--default-inbound-policy <policy>',
        "inbound policy of ports no Server covers, unless the pod's or its namespace's config.outrigger.io/default-inbound-policy says otherwise",
      )
        .choices(DEFAULT_POLICY_NAMES)
        .default('all-unauthenticated'),
    )
    .addOption(
      new Option(
        '--cluster-networks <cidrs>',
        "the cluster's pod networks, comma-separated IPv4 CIDRs (what cluster-authenticated admits)",
      ).default(DEFAULT_CLUSTER_NETWORKS.join(',')),
    )
    .addOption(new Option('--log-level <level>').default('info'))
    .action(async (f: Flags) => {
      const log = createLogger('outrigger-control-plane', f.logLevel as 'info');
      const k8s = await import('@kubernetes/client-node');
      const { startKubeControlPlane } = await import('./control-plane-start.js');
      const lifetime = Number(f.identityLifetime);
      const { networks, problems } = parseClusterNetworks(f.clusterNetworks);
      if (!Number.isInteger(lifetime) || lifetime < 60)
        problems.unshift(
          `--identity-lifetime must be a whole number of seconds, at least 60; got ${JSON.stringify(f.identityLifetime)}`,
        );
      if (problems.length > 0) {
        process.stderr.write(`outrigger control-plane: ${problems.join('; ')}\n`);
        process.exit(2);
      }
      const kubeConfig = new k8s.KubeConfig();
      if (f.kubeconfig !== undefined) kubeConfig.loadFromFile(f.kubeconfig);
      else kubeConfig.loadFromDefault();
      let cp: Awaited<ReturnType<typeof startKubeControlPlane>>;
      try {
        cp = await startKubeControlPlane({
          kubeConfig,
          namespace: f.namespace,
          trustDomain: f.trustDomain,
          identityLifetimeSeconds: lifetime,
          tokenAudience: f.tokenAudience,
          image: f.image,
          host: f.host,
          grpcPort: Number(f.grpcPort),
          webhookPort: Number(f.webhookPort),
          adminPort: Number(f.adminPort),
          identityDir: f.identityDir,
          injectorTlsDir: f.injectorTlsDir,
          trustBundleDir: f.trustBundleDir,
          defaultInboundPolicy: f.defaultInboundPolicy,
          clusterNetworks: networks,
          log,
        });
      } catch (err) {
        process.stderr.write(`outrigger control-plane: ${(err as Error).message}\n`);
        process.exit(1);
      }
      const stop = () => void cp.close().then(() => process.exit(0));
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
}
