// `outrigger check [--pre]`: is this cluster ready for Outrigger, and is Outrigger healthy on it. The
// Kubernetes client is loaded when the command runs (see control-plane.ts for why).
import { Command, Option } from 'commander';
import { DEFAULT_NAMESPACE } from '../kube/names.js';

export function checkCommand(): Command {
  return new Command('check')
    .description('check a Kubernetes cluster before (--pre) or after installing Outrigger; one line per check')
    .option('--pre', 'the checks before installing')
    .addOption(new Option('-n, --namespace <ns>', "the control plane's namespace").default(DEFAULT_NAMESPACE))
    .addOption(new Option('--kubeconfig <file>', 'default: $KUBECONFIG or ~/.kube/config'))
    .addOption(new Option('--context <name>', 'a kubeconfig context other than the current one'))
    .action(async (f: { pre?: boolean; namespace: string; kubeconfig?: string; context?: string }) => {
      const k8s = await import('@kubernetes/client-node');
      const { formatResult, runChecks } = await import('../kube/check.js');
      const kubeConfig = new k8s.KubeConfig();
      try {
        if (f.kubeconfig !== undefined) kubeConfig.loadFromFile(f.kubeconfig);
        else kubeConfig.loadFromDefault();
        if (f.context !== undefined) kubeConfig.setCurrentContext(f.context);
      } catch (err) {
        process.stdout.write(`✗ kubeconfig: ${(err as Error).message}\n    hint: pass --kubeconfig FILE\n`);
        process.exit(1);
      }
      const results = await runChecks({ kubeConfig, namespace: f.namespace }, f.pre === true, (r) =>
        process.stdout.write(`${formatResult(r)}\n`),
      );
      const failed = results.filter((r) => !r.ok).length;
      process.stdout.write(
        failed === 0 ? `\nall ${results.length} checks passed\n` : `\n${failed} of ${results.length} checks failed\n`,
      );
      process.exit(failed === 0 ? 0 : 1);
    });
}
