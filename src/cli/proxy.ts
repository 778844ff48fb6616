// `outrigger proxy`: runs the sidecar. Every flag has an OUTRIGGER_PROXY_* twin (src/proxy/env.ts).
import { Command, Option } from 'commander';
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { loadProxyConfig } from '../proxy/config.js';
import { SETTINGS, type SettingName } from '../proxy/env.js';
import { startProxy } from '../proxy/main.js';

export function proxyCommand(): Command {
  const cmd = new Command('proxy').description(
    'run the sidecar proxy: outbound and inbound listeners for redirected traffic, and the admin server',
  );
  for (const spec of Object.values(SETTINGS)) {
    const opt = new Option(`--${spec.flag} <value>`, `${spec.help} [env ${spec.env}]${'default' in spec ? ` (default: "${spec.default}")` : ''}`);
    cmd.addOption(opt);
  }
  cmd.action(async (opts: Partial<Record<SettingName, string>>) => {
    let cfg;
    try {
      cfg = loadProxyConfig(opts);
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`outrigger proxy: ${err.message}\n`);
        process.exit(2);
      }
      throw err;
    }
    const log = createLogger('outrigger-proxy', cfg.logLevel);
    let proxy;
    try {
      proxy = await startProxy(cfg, log);
    } catch (err) {
      process.stderr.write(`outrigger proxy: cannot start: ${(err as Error).message}\n`);
      process.exit(1);
    }
    const stop = () => void proxy.shutdown();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    await proxy.closed;
    process.exit(0);
  });
  return cmd;
}
