// The original destination of a redirected connection, read from the kernel by the native addon
// (native/origdst.c). Loaded lazily so that a proxy with a static destination works without it.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { toPort, type OrigDst } from '../../core/addr.js';

interface Addon {
  getOriginalDst(fd: number): { address: string; port: number; family: 4 | 6 };
  listenInNetns(nsPath: string, address: string, port: number, backlog: number, ownerUid: number): number;
  socketInNetns(nsPath: string, family: 4 | 6): number;
}

// dist/src/proxy/transport/ → native/build/Release/ (the addon is built by `npm ci`). fileURLToPath, not
// URL.pathname: a checkout under a folder with a space or non-ASCII letters would be percent-encoded.
const BUILT_ADDON = fileURLToPath(new URL('../../../../native/build/Release/origdst.node', import.meta.url));

/** Names another build of the addon to load instead of native/build/Release/origdst.node: the same
 *  source built against another Node's headers (scripts/node24.sh), without overwriting the default build. */
export const ORIGDST_ADDON_ENV = 'OUTRIGGER_ORIGDST_ADDON';

/** The addon this process loads: $OUTRIGGER_ORIGDST_ADDON if set (not empty), else the project's build. */
export function origDstAddonPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env[ORIGDST_ADDON_ENV];
  return override !== undefined && override !== '' ? override : BUILT_ADDON;
}

let addon: Addon | undefined;

function load(): Addon {
  if (!addon) {
    const require = createRequire(import.meta.url);
    const path = origDstAddonPath();
    try {
      addon = require(path) as Addon;
    } catch (err) {
      const how =
        path === BUILT_ADDON
          ? 'build it with `npm ci` or `npx node-gyp rebuild --directory native`'
          : `${ORIGDST_ADDON_ENV} names it`;
      throw new Error(`native addon ${path} cannot be loaded (${(err as Error).message.split('\n')[0]}); ${how}`, {
        cause: err,
      });
    }
  }
  return addon;
}

/** Loads the addon now, so that a missing build fails at start-up rather than on the first connection. */
export function checkOrigDstAddon(): void {
  load();
}

/**
 * The connection's original destination. Throws (code ENOENT) when conntrack knows nothing of it (not
 * redirected, untracked). A tracked connection that was not NATed answers the proxy's own address, which
 * the caller must treat as a loop.
 */
export function originalDst(socket: Socket): OrigDst {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw Object.assign(new Error('socket has no file descriptor'), { code: 'EBADF' });
  const r = load().getOriginalDst(fd);
  return { host: r.address, port: toPort(r.port) } as OrigDst;
}

/**
 * A TCP listening socket opened inside the network namespace at `nsPath` (e.g. /run/netns/<name>): its
 * file descriptor, for net.Server.listen({ fd }). The runtime (root) opens a pod's listeners with it for
 * the per-host data plane's node proxy. Throws with .code an errno name (EPERM without CAP_SYS_ADMIN,
 * EADDRINUSE, ENOENT for a namespace that is not there). The socket has SO_REUSEPORT, so a second one
 * of the same owner can bind beside it (a node proxy's listeners handed over to the next); `ownerUid`
 * (root only; -1: the caller's) makes another uid own it, so that no process of another uid (a root
 * app in the pod) can bind beside it.
 */
export function listenInNetns(nsPath: string, address: string, port: number, backlog = 511, ownerUid = -1): number {
  return load().listenInNetns(nsPath, address, port, backlog, ownerUid);
}

/** An unconnected TCP socket made inside the network namespace at `nsPath`: its fd, for
 *  `new net.Socket({ fd })` (the node proxy's connections to a pod's app). Needs CAP_SYS_ADMIN. */
export function socketInNetns(nsPath: string, family: 4 | 6): number {
  return load().socketInNetns(nsPath, family);
}
