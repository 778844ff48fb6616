// `outrigger exec`: runs a command inside a pod's container, as `kubectl exec` does: in the container's
// mount, PID and network namespaces, with its user and capabilities (the first app container unless
// -c names another), passing the command's exit code through. A pod whose containers are not isolated
// (an older mesh) gets its network namespace only, with its hosts file.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Command } from 'commander';
import { netnsExecArgv } from '../runtime/net/index.js';
import { containerInitPid, enterArgv } from '../runtime/supervisor/index.js';
import { fail, findPod, liveStatus, stateDir, stateDirOption } from './mesh-common.js';

export function execCommand(): Command {
  return new Command('exec')
    .description('run a command in a container of a pod: outrigger exec POD [-c CONTAINER] -- CMD ...')
    .argument('<pod>', 'pod name, or deploy/NAME (its first ready pod)')
    .argument('<command...>', 'the command and its arguments (after --)')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-c, --container <name>', 'the container (default: the first app container)')
    .addOption(stateDirOption())
    .action(async (ref: string, argv: string[], o: { namespace: string; container?: string; stateDir: string }) => {
      const status = await liveStatus('exec', stateDir(o.stateDir));
      const pod = findPod(status, o.namespace, ref);
      if (typeof pod === 'string') fail('exec', pod);
      if (pod.netns === undefined) fail('exec', `pod ${pod.namespace}/${pod.name} has no network namespace`);
      const name = o.container ?? pod.appContainers[0];
      const c = pod.containers.find((x) => x.name === name);
      if (c === undefined) {
        const names = pod.containers.map((x) => x.name).join(', ');
        fail('exec', `pod ${pod.namespace}/${pod.name} has no container ${name ?? ''} (its containers: ${names})`);
      }
      let full: string[];
      if (c.privileges !== undefined) {
        const nsPid = c.state.state === 'running' ? await containerInitPid(c.state.pid) : undefined;
        if (nsPid === undefined)
          fail('exec', `container ${c.name} of pod ${pod.namespace}/${pod.name} is not running (${c.state.state})`);
        full = enterArgv(nsPid, c.privileges, argv, c.workingDir ?? '/');
      } else {
        full = netnsExecArgv(pod.netns, argv);
      }
      const [cmd, ...args] = full;
      const child = spawn(cmd as string, args, { stdio: 'inherit' });
      // The terminal sends ^C to the whole foreground group; the command decides what to do with it.
      process.on('SIGINT', () => undefined);
      child.on('error', (err) => fail('exec', `cannot run ${cmd ?? ''}: ${err.message}`, 126));
      child.on('exit', (code, signal) => {
        if (signal !== null) process.exit(128 + (signalNumber(signal) ?? 1));
        process.exit(code ?? 1);
      });
    });
}

function signalNumber(s: NodeJS.Signals): number | undefined {
  return (constants.signals as Partial<Record<NodeJS.Signals, number>>)[s];
}
