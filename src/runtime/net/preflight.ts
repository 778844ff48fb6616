// Before a mesh is made: does this kernel have what the pods need? Tried for real, in a scratch network
// namespace that is removed afterwards (with everything made in it), so the answer is the kernel's own
// rather than a guess from module lists: namespaces, veth, bridges, and every iptables match and
// target the pods' rules use.
import { CommandError, runCommand, type Runner } from './exec.js';
import { renderPodRules } from './pod-rules.js';
import { DEFAULT_PROXY_INIT } from './proxy-init.js';
import { parseCidr } from './cidr.js';

/** What the kernel lacks, one line each; empty when everything worked. */
export async function kernelProblems(
  opts: { readonly iptables?: string; readonly runner?: Runner } = {},
): Promise<string[]> {
  const run = opts.runner ?? runCommand;
  const iptables = opts.iptables ?? 'iptables';
  const ns = `outr-preflight-${process.pid}`;
  const problems: string[] = [];
  const why = (err: unknown) =>
    err instanceof CommandError ? (err.stderr.trim().split('\n')[0] ?? err.message) : (err as Error).message;
  try {
    await run('ip', ['netns', 'add', ns]);
  } catch (err) {
    return [`network namespaces: ${why(err)}`];
  }
  try {
    const steps: [string, () => Promise<unknown>][] = [
      ['veth pairs', () => run('ip', ['-n', ns, 'link', 'add', 'outr-a', 'type', 'veth', 'peer', 'name', 'outr-b'])],
      ['bridges', () => run('ip', ['-n', ns, 'link', 'add', 'outr-br', 'type', 'bridge'])],
      [
        'iptables nat and filter rules (REDIRECT, DNAT, REJECT; owner, multiport, statistic, comment)',
        () =>
          run('ip', ['netns', 'exec', ns, `${iptables}-restore`, '-w'], {
            input: renderPodRules({
              pod: 'preflight',
              proxyInit: { ...DEFAULT_PROXY_INIT, skipOutboundPorts: [{ from: 25, to: 26 }] },
              services: [
                {
                  label: 'preflight',
                  ip: '10.96.0.10',
                  port: 80,
                  endpoints: [
                    { ip: '10.244.0.2', port: 8080 },
                    { ip: '10.244.0.3', port: 8080 },
                  ],
                },
              ],
              serviceCidr: parseCidr('10.96.0.0/16'),
            }),
          }),
      ],
    ];
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (err) {
        problems.push(`${what}: ${why(err)}`);
      }
    }
  } finally {
    await run('ip', ['netns', 'del', ns]).catch((err: unknown) =>
      problems.push(`could not remove the scratch namespace ${ns}: ${why(err)}`),
    );
  }
  return problems;
}
