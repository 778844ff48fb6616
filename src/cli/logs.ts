// `outrigger logs`: prints a pod's container log (an app container, or `proxy`) from the state
// directory, and with -f keeps printing what is appended. Works after `down` too (logs are kept).
// With the per-host data plane a pod has no proxy of its own: `-c proxy` prints the log of the node
// proxy that serves it (every pod of its node), and says so.
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { logPath, podStateDir, PROXY_CONTAINER } from '../runtime/supervisor/index.js';
import { anyStatus, fail, findPod, stateDir, stateDirOption } from './mesh-common.js';

interface LogsOptions {
  readonly namespace: string;
  readonly container?: string;
  readonly follow?: boolean;
  readonly stateDir: string;
}

export function logsCommand(): Command {
  return new Command('logs')
    .description(
      "print the log of a pod's container (default: its first app container; -c proxy: the sidecar, or per-host the node proxy serving the pod)",
    )
    .argument('<pod>', 'pod name, or deploy/NAME')
    .option('-n, --namespace <ns>', 'namespace', 'default')
    .option('-c, --container <name>', 'container name, or proxy')
    .option('-f, --follow', 'keep printing what is appended')
    .addOption(stateDirOption())
    .action(async (ref: string, o: LogsOptions) => {
      const dir = stateDir(o.stateDir);
      const status = await anyStatus(dir);
      let podName = ref;
      let apps: readonly string[] | undefined;
      if (status !== undefined) {
        const pod = findPod(status, o.namespace, ref);
        if (typeof pod === 'string') fail('logs', pod);
        podName = pod.name;
        apps = pod.appContainers;
        const proxy = o.container === 'proxy' || o.container === PROXY_CONTAINER;
        if (proxy && status.dataPlane?.mode === 'per-host' && pod.meshed && pod.node !== undefined) {
          process.stderr.write(
            `outrigger logs: per-host data plane: the log of ${pod.node}'s proxy, which serves every pod of ${pod.node}\n`,
          );
          await printLog(join(dir, 'dataplane', `${pod.node}.log`), o.follow === true);
          return;
        }
      }
      const podDir = podStateDir(dir, o.namespace, podName);
      const files = await readdir(podDir).catch(() =>
        fail('logs', `no logs for pod ${o.namespace}/${podName} in ${dir}`),
      );
      const logged = files.filter((f) => f.endsWith('.log')).map((f) => f.slice(0, -4));
      const container =
        o.container === 'proxy'
          ? PROXY_CONTAINER
          : (o.container ?? apps?.[0] ?? logged.find((c) => c !== PROXY_CONTAINER));
      if (container === undefined || !logged.includes(container)) {
        fail(
          'logs',
          `pod ${o.namespace}/${podName} has no log for container ${JSON.stringify(container ?? '')}; it has: ${logged.map((c) => (c === PROXY_CONTAINER ? 'proxy' : c)).join(', ')}`,
        );
      }
      await printLog(logPath(podDir, container), o.follow === true);
    });
}

async function printLog(path: string, follow: boolean): Promise<void> {
  let pos = 0;
  const fh = await open(path, 'r');
  const buf = Buffer.alloc(64 * 1024);
  const drain = async () => {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      process.stdout.write(buf.subarray(0, bytesRead));
    }
  };
  await drain();
  if (!follow) {
    await fh.close();
    return;
  }
  process.once('SIGINT', () => process.exit(0));
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const { size } = await stat(path).catch(() => ({ size: pos }));
    if (size < pos) pos = 0; // truncated: start again
    await drain();
  }
}
