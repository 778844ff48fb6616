// The proxy's command-line flags read into settings with node:util's parseArgs, from the one SETTINGS
// table: shared by `outrigger proxy` and the per-host data plane's node proxy, which is given each pod's
// flags exactly as that pod's sidecar would be.
import { parseArgs } from 'node:util';
import { loadProxyConfig, type ProxyConfig } from './config.js';
import { SETTINGS, type SettingName } from './env.js';

/** Flag name → setting, and parseArgs' options: every setting takes a value. */
const BY_FLAG = new Map<string, SettingName>(
  (Object.keys(SETTINGS) as SettingName[]).map((name) => [SETTINGS[name].flag, name]),
);
export const PROXY_ARG_OPTIONS = Object.fromEntries([
  ...[...BY_FLAG.keys()].map((flag) => [flag, { type: 'string' as const }]),
  ['help', { type: 'boolean' as const, short: 'h' }],
]);

/** A PEM value given after a space (`--trust-anchors "$(cat ca.crt)"`) starts with dashes, which
 *  parseArgs takes for an option and refuses as ambiguous. Every proxy flag takes a value, and no flag
 *  starts with five dashes: a `-----BEGIN ` argument right after a flag is that flag's value, joined as
 *  `--flag=value`. */
function joinPemValues(args: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    const next = args[i + 1];
    if (/^--[a-z0-9-]+$/.test(a) && BY_FLAG.has(a.slice(2)) && next?.startsWith('-----BEGIN ') === true) {
      out.push(`${a}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** The settings `args` give (flags only; parseArgs throws on an unknown one), and whether --help was. */
export function proxyFlags(args: readonly string[]): {
  readonly flags: Partial<Record<SettingName, string>>;
  readonly help: boolean;
} {
  const { values } = parseArgs({
    args: joinPemValues(args),
    options: PROXY_ARG_OPTIONS,
    strict: true,
    allowPositionals: false,
  }) as {
    values: Record<string, string | boolean | undefined>;
  };
  const flags: Partial<Record<SettingName, string>> = {};
  for (const [flag, value] of Object.entries(values)) {
    const name = BY_FLAG.get(flag);
    if (name !== undefined && typeof value === 'string') flags[name] = value;
  }
  return { flags, help: values['help'] === true };
}

/** A proxy's settings from flags alone (the environment is not read: the node proxy serves many pods,
 *  and one pod's settings must not come from the process's variables). Throws ConfigError or a
 *  parseArgs error. */
export function proxyConfigFromArgs(args: readonly string[]): ProxyConfig {
  return loadProxyConfig(proxyFlags(args).flags, {});
}
