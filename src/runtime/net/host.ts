// Questions asked of the host's network state (which links, namespaces and chains exist), answered
// from `ip -j` JSON and iptables exit codes rather than from parsing localized error messages.
import type { Runner } from './exec.js';

export interface LinkInfo {
  readonly ifname: string;
  readonly master?: string;
  readonly kind?: string;
}

export async function listLinks(run: Runner): Promise<LinkInfo[]> {
  const { stdout } = await run('ip', ['-j', '-d', 'link', 'show']);
  const links = parseJsonArray(stdout) as { ifname?: string; master?: string; linkinfo?: { info_kind?: string } }[];
  return links.flatMap((l) =>
    typeof l.ifname === 'string'
      ? [
          {
            ifname: l.ifname,
            ...(l.master !== undefined ? { master: l.master } : {}),
            ...(l.linkinfo?.info_kind !== undefined ? { kind: l.linkinfo.info_kind } : {}),
          },
        ]
      : [],
  );
}

export async function listNetns(run: Runner): Promise<string[]> {
  const { stdout } = await run('ip', ['-j', 'netns', 'list']);
  return (parseJsonArray(stdout) as { name?: string }[]).flatMap((n) => (typeof n.name === 'string' ? [n.name] : []));
}

/** The IPv4 destinations in the main routing table, e.g. `default`, `192.0.2.0/24`. */
export async function listRoutes(run: Runner): Promise<{ dst: string; dev?: string }[]> {
  const { stdout } = await run('ip', ['-j', '-4', 'route', 'show']);
  return (parseJsonArray(stdout) as { dst?: string; dev?: string }[]).flatMap((r) =>
    typeof r.dst === 'string' ? [{ dst: r.dst, ...(r.dev !== undefined ? { dev: r.dev } : {}) }] : [],
  );
}

/** Pids of processes whose network namespace is `netns`. */
export async function netnsPids(run: Runner, netns: string): Promise<number[]> {
  const { stdout } = await run('ip', ['netns', 'pids', netns]);
  return stdout
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
}

/** True when the command succeeds: for `iptables -C ...` and `iptables -S CHAIN` existence checks. */
export async function succeeds(run: Runner, file: string, args: readonly string[]): Promise<boolean> {
  try {
    await run(file, args);
    return true;
  } catch {
    return false;
  }
}

function parseJsonArray(text: string): unknown[] {
  // `ip -j netns list` prints nothing at all when there are no namespaces.
  if (text.trim() === '') return [];
  const v: unknown = JSON.parse(text);
  return Array.isArray(v) ? v : [];
}

/** Splits a line of `iptables -S` output into arguments, honouring its double quotes. */
export function splitRule(line: string): string[] {
  const args: string[] = [];
  let cur = '';
  let inArg = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] ?? '';
    if (quoted) {
      if (ch === '\\' && i + 1 < line.length) cur += line[++i];
      else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') {
      quoted = true;
      inArg = true;
    } else if (ch === ' ' || ch === '\t') {
      if (inArg) args.push(cur);
      cur = '';
      inArg = false;
    } else {
      cur += ch;
      inArg = true;
    }
  }
  if (inArg) args.push(cur);
  return args;
}
