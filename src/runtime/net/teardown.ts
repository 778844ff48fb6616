// Removing what the pod network created: from a record (after a crash too), and by name prefix for
// anything the record missed, so that after `down` the machine is as it was. Idempotent: what is
// already gone is skipped; one failure does not stop the rest, and all failures are reported at the end.
import { readdir, rm, rmdir, stat } from 'node:fs/promises';
import { OutriggerError } from '../../core/errors.js';
import { basename, dirname, join, resolve } from 'node:path';
import { CommandError, runCommand, type Runner } from './exec.js';
import { listLinks, listNetns, netnsPids, splitRule, succeeds } from './host.js';
import { forwardChain, NETNS_PREFIX, netnsPrefix, vethName } from './names.js';
import type { NetRecord, PodNetRecord } from './record.js';
import { RuntimeCodes } from '../errors.js';

export interface TeardownReport {
  /** What was removed, e.g. `netns outr-outr0-default.web-0`, `link outr0`. */
  readonly removed: string[];
  /** What was left for someone else, e.g. processes still running in a removed namespace. */
  readonly warnings: string[];
}

export class TeardownError extends OutriggerError {
  constructor(
    readonly failures: readonly string[],
    readonly report: TeardownReport,
  ) {
    const things = `${failures.length} thing${failures.length === 1 ? '' : 's'}`;
    super(RuntimeCodes.NET_TEARDOWN, `teardown left ${things} behind:\n  ${failures.join('\n  ')}`);
    this.name = 'TeardownError';
  }
}

/** Collects results so that every step runs even when one fails. */
class Tally {
  readonly removed: string[] = [];
  readonly warnings: string[] = [];
  readonly failures: string[] = [];

  /** Runs `remove`; if it fails, asks `stillThere` before calling it a failure (it may have gone
   *  meanwhile, e.g. a veth deleted along with its namespace). */
  async step(what: string, remove: () => Promise<unknown>, stillThere: () => Promise<boolean>): Promise<void> {
    try {
      await remove();
      this.removed.push(what);
    } catch (err) {
      if (await stillThere().catch(() => true)) this.failures.push(`${what}: ${(err as Error).message}`);
    }
  }

  done(): TeardownReport {
    const report = { removed: this.removed, warnings: this.warnings };
    if (this.failures.length > 0) throw new TeardownError(this.failures, report);
    return report;
  }
}

/** Removes one pod's network: its veth (which takes the pod end with it), namespace and /etc files. */
export async function removePodNetwork(
  p: Pick<PodNetRecord, 'netns' | 'veth' | 'etcDir'>,
  rec: Pick<NetRecord, 'etcNetnsDir'>,
  run: Runner = runCommand,
): Promise<TeardownReport> {
  const t = new Tally();
  await removePod(t, p, rec.etcNetnsDir, run, await listLinks(run), await listNetns(run));
  return t.done();
}

async function removePod(
  t: Tally,
  p: Pick<PodNetRecord, 'netns' | 'veth' | 'etcDir'>,
  etcNetnsDir: string,
  run: Runner,
  links: readonly { ifname: string }[],
  namespaces: readonly string[],
): Promise<void> {
  const linkThere = async (name: string) => (await listLinks(run)).some((l) => l.ifname === name);
  const nsThere = async (name: string) => (await listNetns(run)).includes(name);
  if (namespaces.includes(p.netns)) {
    const pids = await netnsPids(run, p.netns).catch(() => []);
    // Deleting the namespace's name does not stop its processes; they keep an anonymous namespace
    // (with only loopback once the veth is gone). Stopping them is the process supervisor's job.
    if (pids.length > 0) t.warnings.push(`processes still in ${p.netns}: ${pids.join(', ')}`);
  }
  // Delete the veth explicitly: if a process keeps the namespace alive, the pair would otherwise
  // stay, still plugged into the bridge.
  if (links.some((l) => l.ifname === p.veth)) {
    await t.step(
      `link ${p.veth}`,
      () => run('ip', ['link', 'del', p.veth]),
      () => linkThere(p.veth),
    );
  }
  if (namespaces.includes(p.netns)) {
    await t.step(
      `netns ${p.netns}`,
      () => run('ip', ['netns', 'del', p.netns]),
      () => nsThere(p.netns),
    );
  }
  if (isOurEtcDir(p.etcDir, etcNetnsDir)) {
    if (await exists(p.etcDir))
      await t.step(
        `dir ${p.etcDir}`,
        () => rm(p.etcDir, { recursive: true, force: true }),
        () => exists(p.etcDir),
      );
  } else {
    t.failures.push(`dir ${p.etcDir}: not removed: not an outrigger directory under ${etcNetnsDir} (damaged record?)`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A damaged record must never make us delete something else: only <etcNetnsDir>/outr-*. */
function isOurEtcDir(dir: string, etcNetnsDir: string): boolean {
  return resolve(dirname(dir)) === resolve(etcNetnsDir) && basename(dir).startsWith(NETNS_PREFIX);
}

export interface TeardownOptions {
  readonly runner?: Runner;
}

/** Removes everything the record lists, and everything named for its bridge that it does not: pod
 *  namespaces (`outr-<bridge>-*`), links on the bridge, /etc/netns leftovers, the host FORWARD rules
 *  and chain, and the bridge. Safe to run again; safe when nothing exists. */
export async function teardownNetwork(rec: NetRecord, opts: TeardownOptions = {}): Promise<TeardownReport> {
  const run = opts.runner ?? runCommand;
  const t = new Tally();
  const prefix = netnsPrefix(rec.bridge);
  const links = await listLinks(run);
  const namespaces = await listNetns(run);

  const pods = new Map<string, Pick<PodNetRecord, 'netns' | 'veth' | 'etcDir'>>();
  for (const p of rec.pods) pods.set(p.netns, p);
  for (const ns of namespaces) {
    if (ns.startsWith(prefix) && !pods.has(ns))
      pods.set(ns, { netns: ns, veth: vethName(ns), etcDir: join(rec.etcNetnsDir, ns) });
  }
  for (const p of pods.values()) await removePod(t, p, rec.etcNetnsDir, run, links, namespaces);

  // Anything still plugged into the bridge (a veth whose namespace name we never learned).
  const linkThere = async (name: string) => (await listLinks(run)).some((l) => l.ifname === name);
  for (const l of await listLinks(run)) {
    if (l.master === rec.bridge)
      await t.step(
        `link ${l.ifname}`,
        () => run('ip', ['link', 'del', l.ifname]),
        () => linkThere(l.ifname),
      );
  }

  let etcEntries: string[] = [];
  try {
    etcEntries = await readdir(rec.etcNetnsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      t.failures.push(`dir ${rec.etcNetnsDir}: ${(err as Error).message}`);
  }
  for (const e of etcEntries) {
    if (!e.startsWith(prefix)) continue;
    const dir = join(rec.etcNetnsDir, e);
    await t.step(
      `dir ${dir}`,
      () => rm(dir, { recursive: true, force: true }),
      () => exists(dir),
    );
  }
  // /etc/netns itself is usually created by us (addPod); remove it when nothing else lives there.
  // rmdir refuses a non-empty directory, so another user's files are never at risk.
  if (await exists(rec.etcNetnsDir)) {
    try {
      await rmdir(rec.etcNetnsDir);
      t.removed.push(`dir ${rec.etcNetnsDir}`);
    } catch {
      // not empty, or gone: either way not ours to remove
    }
  }

  await removeForwardRules(t, run, rec.iptables, rec.forwardChain);

  if (links.some((l) => l.ifname === rec.bridge)) {
    await t.step(
      `link ${rec.bridge}`,
      () => run('ip', ['link', 'del', rec.bridge]),
      () => linkThere(rec.bridge),
    );
  }
  return t.done();
}

/** Every FORWARD rule that jumps to the chain (however it was written), then the chain itself. */
async function removeForwardRules(t: Tally, run: Runner, iptables: string, chain: string): Promise<void> {
  let rules: string[];
  try {
    rules = (await run(iptables, ['-w', '-S', 'FORWARD'])).stdout.split('\n');
  } catch (err) {
    t.failures.push(`FORWARD rules: ${err instanceof CommandError ? err.message : String(err)}`);
    return;
  }
  for (const line of rules) {
    const args = splitRule(line);
    const j = args.indexOf('-j');
    if (args[0] !== '-A' || j === -1 || args[j + 1] !== chain) continue;
    const spec = ['-w', '-D', ...args.slice(1)];
    await t.step(
      `rule ${line}`,
      () => run(iptables, spec),
      () => succeeds(run, iptables, ['-w', '-C', ...args.slice(1)]),
    );
  }
  const chainThere = () => succeeds(run, iptables, ['-w', '-S', chain]);
  if (await chainThere()) {
    await t.step(
      `chain ${chain}`,
      async () => {
        await run(iptables, ['-w', '-F', chain]);
        await run(iptables, ['-w', '-X', chain]);
      },
      chainThere,
    );
  }
}

/** Cleans up a mesh's network knowing only its bridge name (the record is lost). */
export async function sweepBridge(
  bridge: string,
  opts: TeardownOptions & { readonly iptables?: string; readonly etcNetnsDir?: string } = {},
): Promise<TeardownReport> {
  return teardownNetwork(
    {
      version: 1,
      bridge,
      podCidr: '',
      gateway: '',
      iptables: opts.iptables ?? 'iptables',
      etcNetnsDir: opts.etcNetnsDir ?? '/etc/netns',
      forwardChain: forwardChain(bridge),
      pods: [],
    },
    opts,
  );
}
