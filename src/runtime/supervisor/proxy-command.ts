// How the runtime runs `outrigger proxy` as the proxy's uid (2102) wherever the project is installed.
//
// The proxy must be started from files that uid can read: a clone in a private home directory (0700)
// is not. So we first try the project in place, as that uid; if that fails, we copy what the proxy
// needs (package.json, bin/, dist/src/, the native addon and the production dependencies, about 20 MB)
// into the state directory with world-readable modes, and the Node binary too if the uid cannot run
// it (e.g. under ~/.nvm). The copy is made once per build and reused.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROXY_NODE_OPTIONS } from '../../proxy/node-options.js';
import { ORIGDST_ADDON_ENV } from '../../proxy/transport/origdst.js';
import { placedArgv, runBounded, type RunAs } from './launch.js';
import { RuntimeCodes, RuntimeError } from '../errors.js';

export interface ProxyCommand {
  /** The argv prefix that runs the proxy: `[node, ...PROXY_NODE_OPTIONS, <root>/bin/outrigger.js, 'proxy']`. */
  readonly argv: readonly string[];
  /** The project the files come from, or the copy made for the proxy's uid. */
  readonly root: string;
  readonly staged: boolean;
  /** Variables the proxy needs besides its own settings: only OUTRIGGER_ORIGDST_ADDON, when the runtime
   *  was given another build of the addon and the proxy runs in place (a copy holds it in the usual place). */
  readonly env: Readonly<Record<string, string>>;
}

export interface ProxyCommandOptions {
  readonly user: RunAs;
  /** Where a copy goes if one is needed: `<stateDir>/proxy/<build>`. Every directory above it must be
   *  searchable by the uid (the default /var/run/outrigger is). */
  readonly stateDir: string;
  /** The project's root; default: the one this module was loaded from. */
  readonly packageRoot?: string;
  /** Default: the Node running the runtime. */
  readonly execPath?: string;
}

/** dist/src/runtime/supervisor/ → the project root. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../../', import.meta.url)).replace(/\/$/, '');

const BIN = join('bin', 'outrigger.js');
const ADDON = join('native', 'build', 'Release', 'origdst.node');

/** The addon the proxy is to load: the one $OUTRIGGER_ORIGDST_ADDON names (e.g. built for another Node
 *  by scripts/node24.sh), else the project's own build. */
function addonSource(root: string): string {
  const override = process.env[ORIGDST_ADDON_ENV];
  return override !== undefined && override !== '' ? override : join(root, ADDON);
}

export class ProxyCommandError extends RuntimeError {
  constructor(message: string) {
    super(RuntimeCodes.PROXY_COMMAND, message);
    this.name = 'ProxyCommandError';
  }
}

/** Finds (or makes) a way to run the proxy as `user`. Costs one or two Node starts as that user. */
export async function resolveProxyCommand(o: ProxyCommandOptions): Promise<ProxyCommand> {
  const root = o.packageRoot ?? PACKAGE_ROOT;
  const execPath = o.execPath ?? process.execPath;
  const addon = addonSource(root);
  const inPlace = await canRunProxy(o.user, execPath, root, addon);
  if (inPlace.ok) {
    const env: Record<string, string> = addon === join(root, ADDON) ? {} : { [ORIGDST_ADDON_ENV]: addon };
    return { argv: [execPath, ...PROXY_NODE_OPTIONS, join(root, BIN), 'proxy'], root, staged: false, env };
  }

  const dest = await stageProxyFiles(root, o.stateDir, execPath);
  const node = (await canRun(o.user, [execPath, '-e', '0'])).ok ? execPath : await stageNode(execPath, dest);
  const staged = await canRunProxy(o.user, node, dest, join(dest, ADDON));
  if (!staged.ok) {
    throw new ProxyCommandError(
      `the proxy cannot run as uid ${o.user.uid}: from ${root}: ${inPlace.why}; from the copy in ${dest}: ${staged.why}. ` +
        `Every directory above ${o.stateDir} must be searchable by uid ${o.user.uid} (o+x), as the default /var/run/outrigger is`,
    );
  }
  return { argv: [node, ...PROXY_NODE_OPTIONS, join(dest, BIN), 'proxy'], root: dest, staged: true, env: {} };
}

interface CanRun {
  readonly ok: boolean;
  readonly why: string;
}

async function canRun(user: RunAs, argv: readonly string[]): Promise<CanRun> {
  const r = await runBounded(placedArgv({ user }, argv), {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cwd: '/',
    timeoutMs: 30_000,
  });
  if (r.error !== undefined) return { ok: false, why: r.error.message };
  if (r.code === 0) return { ok: true, why: '' };
  const lines = r.output
    .trim()
    .split('\n')
    .filter((l) => l.trim() !== '');
  // Node's first line of an error is usually the file it could not read.
  const first =
    lines.find((l) => /EACCES|EPERM|ENOENT|Cannot find|Error/.test(l)) ?? lines[0] ?? `exit ${r.code ?? r.signal}`;
  return { ok: false, why: first.trim() };
}

/** The whole CLI (every module the proxy command loads) and the native addon, loaded as `user`. */
function canRunProxy(user: RunAs, node: string, root: string, addon: string): Promise<CanRun> {
  const script = '"$0" "$1" proxy --help >/dev/null && exec "$0" -e "require(process.argv[1])" "$2"';
  return canRun(user, ['/bin/sh', '-c', script, node, join(root, BIN), addon]);
}

/** Copies what the proxy needs from `root` into `<stateDir>/proxy/<build id>`, readable by everyone,
 *  unless that copy exists already. Returns its directory. */
export async function stageProxyFiles(root: string, stateDir: string, execPath = process.execPath): Promise<string> {
  const base = join(stateDir, 'proxy');
  const dest = join(base, await buildId(root, execPath));
  try {
    await stat(join(dest, '.complete'));
    return dest;
  } catch {
    // not there yet
  }
  await mkdir(base, { recursive: true, mode: 0o755 });
  await chmod(base, 0o755);
  const tmp = `${dest}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await copyProxyFiles(root, tmp);
    await writeFile(join(tmp, '.complete'), `${root}\n`, { mode: 0o644 });
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return dest;
}

/** The files the proxy runs from, into `dest` (which must not exist), with modes 0755/0644. */
export async function copyProxyFiles(root: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true, mode: 0o755 });
  const copy = async (rel: string, filter?: (src: string) => boolean) => {
    await mkdir(dirname(join(dest, rel)), { recursive: true, mode: 0o755 });
    await cp(join(root, rel), join(dest, rel), {
      recursive: true,
      dereference: true,
      ...(filter !== undefined ? { filter } : {}),
    });
  };
  await copy('package.json');
  await copy('bin');
  await copy(join('dist', 'src'), (src) => !/\.test\.js(\.map)?$/.test(src));
  await mkdir(dirname(join(dest, ADDON)), { recursive: true, mode: 0o755 });
  await cp(addonSource(root), join(dest, ADDON), { dereference: true });
  for (const pkg of await productionPackages(root)) {
    const abs = join(root, pkg);
    // A package's own node_modules holds its nested dependencies, which the closure lists themselves.
    await copy(pkg, (src) => !relative(abs, src).split(sep).includes('node_modules'));
  }
  await makeReadable(dest);
}

/** The node_modules directories (relative to root) of the production dependency closure, resolved
 *  as Node does: the nearest node_modules from the requiring package up to the root. */
export async function productionPackages(root: string): Promise<string[]> {
  const found = new Set<string>();
  const visit = async (pkgDir: string): Promise<void> => {
    const manifest = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
      peerDependencies?: Record<string, string>;
    };
    const required = Object.keys(manifest.dependencies ?? {});
    const optional = [
      ...Object.keys(manifest.optionalDependencies ?? {}),
      ...Object.keys(manifest.peerDependencies ?? {}),
    ];
    for (const [names, mustExist] of [
      [required, true],
      [optional, false],
    ] as const) {
      for (const name of names) {
        const dir = await resolvePackage(root, pkgDir, name);
        if (dir === undefined) {
          if (mustExist)
            throw new ProxyCommandError(
              `cannot stage the proxy: package ${name} (needed by ${relative(root, pkgDir) || 'the project'}) is not installed; run npm ci`,
            );
          continue;
        }
        const rel = relative(root, dir);
        if (found.has(rel)) continue;
        found.add(rel);
        await visit(dir);
      }
    }
  };
  await visit(root);
  return [...found].sort();
}

async function resolvePackage(root: string, from: string, name: string): Promise<string | undefined> {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    try {
      await stat(join(candidate, 'package.json'));
      const real = await realpath(candidate);
      // Stay inside the project: a link out of it (npm link) is copied from where it is linked from.
      return relative(root, real).startsWith('..') ? candidate : real;
    } catch {
      // not here
    }
    if (dir === root || dirname(dir) === dir) return undefined;
  }
}

async function makeReadable(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await makeReadable(p);
    else if (e.isFile()) await chmod(p, ((await stat(p)).mode & 0o100) !== 0 ? 0o755 : 0o644);
  }
}

async function stageNode(execPath: string, dest: string): Promise<string> {
  const node = join(dest, 'node');
  try {
    await stat(node);
  } catch {
    await cp(execPath, node, { dereference: true });
    await chmod(node, 0o755);
  }
  return node;
}

/** Changes when the build or the Node binary does, so a stale copy is never used. */
async function buildId(root: string, execPath: string): Promise<string> {
  const h = createHash('sha256').update(root).update('\0').update(execPath);
  for (const f of [join(root, 'package-lock.json'), join(root, 'dist', '.tsbuildinfo'), addonSource(root)]) {
    try {
      const s = await stat(f);
      h.update(`\0${f}:${s.size}:${s.mtimeMs}`);
    } catch {
      h.update(`\0${f}:-`);
    }
  }
  return h.digest('hex').slice(0, 12);
}
