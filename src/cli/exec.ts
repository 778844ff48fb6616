// `outrigger exec`: runs a command inside a pod's network namespace (with its hosts file, and subject
// to the same redirection as its app), passing the command's exit code through.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Command } from 'commander';
import { netnsExecArgv } from '../runtime/net/index.js';
import { fail, findPod, liveStatus, stateDir, stateDirOption } from './mesh-common.js';

export function execCommand(): Command {
  return new Command('exec')
    .description("run a command in a pod's network namespace: outrigger exec POD -- CMD ...")
    .argument('<pod>', 'pod name, or deploy/NAME (its first ready pod)')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .addOption(stateDirOption())
    .action(async (ref: string, argv: string[], o: { namespace: string; stateDir: string }) => {
      const status = await liveStatus('exec', stateDir(o.stateDir));
      const pod = findPod(status, o.namespace, ref);
      if (typeof pod === 'string') fail('exec', pod);
      if (pod.netns === undefined) fail('exec', `pod ${pod.namespace}/${pod.name} has no network namespace`);
      const [cmd, ...args] = netnsExecArgv(pod.netns, argv);
      const child = spawn(cmd as string, args, { stdio: 'inherit' });
      // The terminal sends ^C to the whole foreground group; the command decides what to do with it.
      process.on('SIGINT', () => undefined);
      child.on('error', (err) => fail('exec', `cannot run ip netns exec: ${err.message}`, 126));
      child.on('exit', (code, signal) => {
        if (signal !== null) process.exit(128 + (signalNumber(signal) ?? 1));
        process.exit(code ?? 1);
      });
    });
}

function signalNumber(s: NodeJS.Signals): number | undefined {
  return (constants.signals as Partial<Record<NodeJS.Signals, number>>)[s];
}
