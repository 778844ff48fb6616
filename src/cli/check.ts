// `outrigger check [--pre]`: is this cluster ready for Outrigger, and is Outrigger healthy on it. The
// Kubernetes client is loaded when the command runs (see control-plane.ts for why).
import { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_NAMESPACE } from '../kube/names.js';
import { CA_FILE_NAMES } from '../control/identity/ca.js';
import { judgeExpiry } from '../control/identity/expiry.js';
import { stateDir, stateDirOption } from './mesh-common.js';
import { DEFAULT_STATE_DIR } from '../runtime/state.js';

export function checkCommand(): Command {
  return new Command('check')
    .description('check a Kubernetes cluster before (--pre) or after installing Outrigger; one line per check')
    .option('--pre', 'the checks before installing')
    .option(
      '--local',
      "the local mesh instead (its state directory): the issuer's and the anchor's expiry, a trust rotation's stage",
    )
    .addOption(stateDirOption())
    .addOption(new Option('-n, --namespace <ns>', "the control plane's namespace").default(DEFAULT_NAMESPACE))
    .addOption(new Option('--kubeconfig <file>', 'default: $KUBECONFIG or ~/.kube/config'))
    .addOption(new Option('--context <name>', 'a kubeconfig context other than the current one'))
    .action(
      async (f: {
        pre?: boolean;
        local?: boolean;
        namespace: string;
        kubeconfig?: string;
        context?: string;
        stateDir: string;
      }) => {
        if (f.local === true) process.exit(await checkLocal(stateDir(f.stateDir)));
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
      },
    );
}

/** The local mesh's CA, from its state directory (the daemon need not run): the issuer's and the
 *  anchors' expiry (a warning within 30 days, an error once expired), and a rotation's recorded stage. */
async function checkLocal(dir: string): Promise<number> {
  const id = join(dir, 'identity');
  const read = (f: string) => readFile(join(id, f), 'utf8').catch(() => undefined);
  const lines: { mark: string; text: string; hint?: string }[] = [];
  const judge = (name: string, pem: string | undefined, rotate: string) => {
    if (pem === undefined)
      return lines.push({ mark: '✗', text: `${name}: missing in ${id}`, hint: 'outrigger up creates it' });
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
    for (const b of blocks) {
      const v = judgeExpiry(b, new Date(), rotate);
      lines.push({
        mark: v.level === 'ok' ? '✓' : v.level === 'warning' ? '!' : '✗',
        text: `${name}: ${v.detail}`,
        ...(v.hint !== undefined ? { hint: v.hint } : {}),
      });
    }
    return 0;
  };
  const flag = dir !== DEFAULT_STATE_DIR ? ` --state-dir ${dir}` : '';
  judge('issuer certificate', await read(CA_FILE_NAMES.issuerCert), `rotate it: outrigger trust rotate${flag}`);
  judge(
    'trust anchor',
    (await read('trust-bundle.pem')) ?? (await read(CA_FILE_NAMES.trustAnchor)),
    `rotate it: outrigger trust rotate --anchor${flag}`,
  );
  const rec = await read('rotation.json');
  if (rec !== undefined) {
    const stage = (JSON.parse(rec) as { stage: string }).stage;
    lines.push({
      mark: '!',
      text: `trust rotation: stopped or running at stage ${stage}`,
      hint: `outrigger trust status${flag}; outrigger trust rotate${flag} resumes it`,
    });
  } else lines.push({ mark: '✓', text: 'trust rotation: none under way' });
  for (const l of lines)
    process.stdout.write(`${l.mark} ${l.text}\n${l.hint !== undefined ? `    hint: ${l.hint}\n` : ''}`);
  const errors = lines.filter((l) => l.mark === '✗').length;
  const warnings = lines.filter((l) => l.mark === '!').length;
  process.stdout.write(`\n${errors} error(s), ${warnings} warning(s)\n`);
  return errors > 0 ? 1 : 0;
}
