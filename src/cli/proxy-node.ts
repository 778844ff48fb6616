// `outrigger proxy-node`: the per-host data plane's node proxy (src/proxy/node), started by the local
// runtime with an IPC channel; not a command for people (hidden). Like `outrigger proxy`, it loads the
// proxy alone and reads its few flags with node:util's parseArgs.
import { parseArgs } from 'node:util';
import { createLogger } from '../core/log.js';
import { NodeProxy } from '../proxy/node/node.js';
import { parseRuntimeMessage } from '../proxy/node/protocol.js';

export async function runProxyNode(args: readonly string[]): Promise<never> {
  const fail = (why: string): never => {
    process.stderr.write(`outrigger proxy-node: ${why}\n`);
    process.exit(2);
  };
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        node: { type: 'string' },
        'admin-addr': { type: 'string', default: '127.0.0.1' },
        'admin-port': { type: 'string', default: '0' },
        'log-level': { type: 'string', default: 'info' },
      },
      strict: true,
      allowPositionals: false,
    }) as { values: Record<string, string | undefined> });
  } catch (err) {
    return fail((err as Error).message);
  }
  const node = values['node'];
  if (node === undefined || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(node)) return fail('--node must name the node');
  const port = Number(values['admin-port']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return fail('--admin-port must be 0 to 65535');
  const send = process.send?.bind(process);
  if (send === undefined) return fail('must be started by the runtime with an IPC channel');
  const level = values['log-level'] as Parameters<typeof createLogger>[1];
  const log = createLogger('outrigger-proxy-node', level).child({ node });
  const np = new NodeProxy({
    node,
    adminAddr: values['admin-addr'] ?? '127.0.0.1',
    adminPort: port,
    log,
    send: (m) => void send(m),
  });
  let admin;
  try {
    admin = await np.start();
  } catch (err) {
    return fail(`cannot start: ${(err as Error).message}`);
  }
  process.on('message', (m: unknown, handle: unknown) => {
    const msg = parseRuntimeMessage(m);
    if (msg === undefined) {
      log.warn('malformed message from the runtime ignored');
      return;
    }
    np.handle(msg, handle);
  });
  const stop = () =>
    void np.stop().then(() => {
      log.info('node proxy stopped');
      process.exit(0);
    });
  // The runtime gone (its control process killed): the pods still run, so their proxy serves on, as a
  // sidecar does; a resumed runtime starts a new node proxy beside this one (the pods' listeners share
  // their ports, SO_REUSEPORT) and then ends this one with SIGTERM; `down` ends it by its node's cgroup.
  process.once('disconnect', () => log.warn("the runtime is gone: serving this node's pods on until one takes over"));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  send({ type: 'ready', node, pid: process.pid, admin: `${admin.host}:${admin.port}` });
  log.info({ admin: `${admin.host}:${admin.port}` }, 'node proxy ready');
  return new Promise<never>(() => undefined);
}
