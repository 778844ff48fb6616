// `outrigger uninstall`: prints what `outrigger install` created, for `| kubectl delete -f -`.
import { Command, Option } from 'commander';
import { DEFAULT_NAMESPACE } from '../kube/names.js';

export function uninstallCommand(): Command {
  return new Command('uninstall')
    .description(
      'print the objects to delete to remove Outrigger (pipe them to `kubectl delete -f -`); injected pods keep their proxies until restarted',
    )
    .addOption(new Option('-n, --namespace <ns>', "the control plane's namespace").default(DEFAULT_NAMESPACE))
    .option('--keep-crds', 'keep the CustomResourceDefinitions (deleting them deletes every policy object)')
    .addOption(new Option('-o, --output <format>').choices(['yaml', 'json']).default('yaml'))
    .action(async (f: { namespace: string; keepCrds?: boolean; output: 'yaml' | 'json' }) => {
      const { uninstallObjects } = await import('../kube/install.js');
      const { renderObjects } = await import('../kube/render.js');
      process.stdout.write(
        renderObjects(uninstallObjects({ namespace: f.namespace, keepCrds: f.keepCrds === true }), f.output),
      );
    });
}
