// `outrigger proxy`: runs the sidecar. Every flag has an OUTRIGGER_PROXY_* twin (src/proxy/env.ts).
// The proxy runs in every pod, so main.ts hands it its arguments before loading commander, and they are
// read here with node:util's parseArgs from the same SETTINGS table; commander only lists the command.
import { ConfigError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { loadProxyConfig } from '../proxy/config.js';
import { SETTINGS } from '../proxy/env.js';
import { proxyFlags } from '../proxy/args.js';
import { startProxy } from '../proxy/main.js';

export const PROXY_DESCRIPTION =
  'run the sidecar proxy: outbound and inbound listeners for redirected traffic, and the admin server';

/** `outrigger proxy --help`: the flags with their variables and defaults, as commander lays out help. */
export function proxyHelp(): string {
  const rows: [string, string][] = Object.values(SETTINGS).map((spec) => [
    `--${spec.flag} <value>`,
    `${spec.help} [env ${spec.env}]${'default' in spec ? ` (default: "${spec.default}")` : ''}`,
  ]);
  rows.push(['-h, --help', 'display help for command']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  return `Usage: outrigger proxy [options]\n\n${PROXY_DESCRIPTION}\n\nOptions:\n${rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`).join('\n')}\n`;
}

/** Runs the proxy with `args` (what follows `proxy` on the command line) until it is shut down. */
export async function runProxy(args: readonly string[]): Promise<never> {
  let parsed: ReturnType<typeof proxyFlags>;
  try {
    parsed = proxyFlags(args);
  } catch (err) {
    process.stderr.write(`outrigger proxy: ${(err as Error).message} (see outrigger proxy --help)\n`);
    process.exit(1);
  }
  if (parsed.help) {
    process.stdout.write(proxyHelp());
    process.exit(0);
  }
  const { flags } = parsed;
  let cfg;
  try {
    cfg = loadProxyConfig(flags);
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
}
