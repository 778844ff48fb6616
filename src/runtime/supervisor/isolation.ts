// How a container is isolated from the machine and from other pods, as a container runtime would: its
// own mount and PID namespaces (entered after the pod's network namespace), the host's filesystem
// read-only with the mesh's state hidden, a /run of its own, its volumes, and its privileges (uid,
// gid, capability bounding set, no_new_privs). This file builds the argv; the work is done by
// util-linux (`unshare`, `mount`, `setpriv`, `nsenter`) and a short shell script, the container's init.
//
// The chain, each step exec'ing the next so the recorded pid stays the process group's leader:
//   gate (launch.ts) → ip netns exec NS → unshare --mount --pid --fork --kill-child --mount-proc
//     → [child, pid 1 of the new PID namespace] sh: the mounts below, then runs the app and waits
//       → env --default-signal (undo the shell's SIG_IGN of INT and QUIT for a background job)
//         → setpriv (uid, gid, groups, capabilities, no_new_privs) → the container's argv
// The app is not pid 1: pid 1 ignores every signal it has no handler for, so an app that relies on
// SIGTERM's default action would never stop. The shell is pid 1, as the pause process or tini is; it
// exits with the app's status, and when pid 1 exits the kernel kills everything left in the namespace.
// `--kill-child` ties pid 1 to the recorded process: when that is SIGKILLed, the container goes too.
//
// With the pod's `shareProcessNamespace: true`, the pod has one PID namespace, made by a holder (the
// pause container's part): the same chain with `hold`, whose pid 1 never exits while the pod lives and
// reaps every process orphaned in the namespace (dash's `wait` reaps any child). Each container of the
// pod, the proxy's included, then joins it instead of making its own:
//   gate → ip netns exec NS → nsenter --pid=/proc/<holder's pid 1>/ns/pid --no-fork
//     → unshare --mount --fork --kill-child --mount-proc (the child, in the shared namespace) → sh ...
// Its init is then not pid 1, so it ignores TERM, INT and HUP itself (after starting the app, which
// keeps the default actions) and still waits for the app's own exit status.
import { readFile } from 'node:fs/promises';

/** Who the container's process is, and what it may do. */
export interface Privileges {
  readonly uid: number;
  readonly gid: number;
  /** The capability bounding set (Kubernetes' names, e.g. NET_BIND_SERVICE); a non-root uid ends up
   *  with none of them effective, as in Kubernetes without ambient capabilities. */
  readonly capabilities: readonly string[];
}

export interface VolumeBind {
  /** A directory on the host (the pod's emptyDir). */
  readonly source: string;
  /** Where the container sees it: an existing directory of the host, or a path below /run (made in
   *  the container's own run directory by the runtime). */
  readonly target: string;
  readonly readOnly: boolean;
}

/** What a container sees of the machine. */
export interface Isolation {
  /** Directories no container sees (the mesh's state directory, /etc/netns): covered with an empty
   *  read-only tmpfs. */
  readonly hide: readonly string[];
  /** Paths below a hidden directory this container still sees, at the same path (the proxy's token
   *  directory, the staged proxy command). At most 6. */
  readonly keep: readonly string[];
  /** A host directory the runtime prepared (the ServiceAccount token, mount points of volumes below
   *  /run): mounted over /run, with what is mounted in it. */
  readonly runDir: string;
  readonly binds: readonly VolumeBind[];
  /** Paths of the host that stay writable (mounted onto themselves first); every other mount of the
   *  host is made read-only. Empty with readOnlyRootFilesystem. */
  readonly writable: readonly string[];
  /** The working directory, changed to after the mounts (so that it is the one the container sees). */
  readonly workingDir: string;
  readonly privileges: Privileges;
  /** Its PID namespace: its own (default); `hold`, the pod's shared one, whose pid 1 runs the argv again
   *  whenever it ends (the holder); `join`, the holder's (its pid given when the container starts). */
  readonly pidNamespace?: 'own' | 'hold' | 'join';
}

/** How a container enters the PID namespace it joins: the holder's pid 1 as the host sees it. */
export interface JoinPid {
  readonly holderPid: number;
}

/** Where the host stays writable for a container without readOnlyRootFilesystem: the scratch
 *  directories every program expects to write to. */
export const DEFAULT_WRITABLE: readonly string[] = ['/tmp', '/var/tmp', '/dev/shm'];

/**
 * The container's setup and init (run by `sh -c`, as pid 1 of its PID namespace). Arguments: a list of
 * operations, then `--`, then the argv of the app (with its env and setpriv in front). Any failure
 * stops the container before the app runs, with a line in its log saying which step failed.
 */
export const INIT_SCRIPT = `
fail() { echo "outrigger: container setup: $*" >&2; exit 126; }
under() { case "$1" in "$2"|"$2"/*) return 0;; esac; return 1; }
keepn=4; keeps=""; writable=""; binds=""; hold=""
while [ "$#" -gt 0 ]; do
  op=$1; shift
  case "$op" in
    --) break ;;
    keep)
      [ "$keepn" -le 9 ] || fail "too many kept paths"
      [ -e "$1" ] || fail "$1 does not exist"
      eval "exec $keepn<\\"\\$1\\"" || fail "cannot open $1"
      keeps="$keeps $keepn"; eval "keep_$keepn=\\$1"; keepn=$((keepn + 1)); shift ;;
    bind)
      [ -d "$1" ] || fail "volume directory $1 does not exist"
      [ -d "$2" ] || fail "volumeMount $2: no such directory on this machine (mount below /run, or on a directory that exists)"
      mount --bind "$1" "$2" || fail "cannot mount $1 on $2"
      [ "$3" = ro ] && { mount -o remount,bind,ro "$2" || fail "cannot make $2 read-only"; }
      binds="$binds
$2"; shift 3 ;;
    run)
      mount --rbind "$1" /run || fail "cannot mount $1 on /run"; shift ;;
    writable)
      if [ -d "$1" ]; then mount --rbind "$1" "$1" || fail "cannot keep $1 writable"; writable="$writable
$1"; fi; shift ;;
    readonly)
      # Every other mount of the host, read-only (the host's filesystem stands in for the image), but
      # for kernel filesystems (/proc is new, /sys is ip netns exec's) and /dev, whose nodes are not
      # written through their filesystem.
      while read -r _id _parent _dev _root mp _rest; do
        # Only a mount point with a space or the like is escaped (as octal): unescape those alone, as
        # this runs in every container start and forks are what it costs.
        case "$mp" in *\\\\*) mp=$(printf '%b' "$(printf '%s' "$mp" | sed 's/\\\\\\([0-7][0-7][0-7]\\)/\\\\0\\1/g')") ;; esac
        skip=""
        for p in /proc /sys /dev /run $writable $binds; do under "$mp" "$p" && skip=1; done
        [ -n "$skip" ] && continue
        mount -o remount,bind,ro "$mp" 2>/dev/null || mount -o remount,ro "$mp" || fail "cannot make $mp read-only"
      done < /proc/self/mountinfo ;;
    hide)
      if [ -d "$1" ]; then
        mount -t tmpfs -o nosuid,nodev,noexec,size=64k,mode=755 outrigger-hidden "$1" || fail "cannot hide $1"
        for n in $keeps; do
          eval "k=\\$keep_$n"
          under "$k" "$1" || continue
          if [ -d "/proc/self/fd/$n/" ]; then mkdir -p "$k"; else mkdir -p "\${k%/*}" && : > "$k"; fi || fail "cannot make $k"
          mount -c --bind "/proc/self/fd/$n" "$k" || fail "cannot mount $k back"
        done
        mount -o remount,bind,ro "$1" || fail "cannot make $1 read-only"
      elif [ -e "$1" ]; then
        mount --bind /dev/null "$1" || fail "cannot hide $1"
      fi; shift ;;
    cd)
      cd "$1" || fail "workingDir $1: cannot enter it"; shift ;;
    hold) hold=1 ;;
    *) fail "unknown step $op" ;;
  esac
done
for n in $keeps; do eval "exec $n<&-"; done
if [ -n "$hold" ]; then
  while :; do "$@" & wait; done
fi
"$@" &
trap '' TERM INT HUP
wait $!
`;

/** The capability names as setpriv takes them. */
function capList(caps: readonly string[]): string {
  return ['-all', ...caps.map((c) => `+${c.toLowerCase()}`)].join(',');
}

/** setpriv's arguments for `p`: exactly that uid, gid and no other group, the bounding set, nothing
 *  inheritable, and no_new_privs (setuid binaries and file capabilities grant nothing). */
export function setprivArgs(p: Privileges): string[] {
  return [
    `--reuid=${p.uid}`,
    `--regid=${p.gid}`,
    '--clear-groups',
    `--bounding-set=${capList(p.capabilities)}`,
    '--inh-caps=-all',
    '--nnp',
  ];
}

/** What runs the app inside its namespaces: default signal handling, then the privileges. */
export function privilegedArgv(p: Privileges, argv: readonly string[]): string[] {
  return ['env', '--default-signal=INT,QUIT', 'setpriv', ...setprivArgs(p), '--', ...argv];
}

/** The whole chain for a container of the pod in `netns`; `join` is required (and only allowed) when
 *  its isolation joins the pod's shared PID namespace. */
export function isolatedArgv(netns: string, iso: Isolation, argv: readonly string[], join?: JoinPid): string[] {
  if (iso.keep.length > 6) throw new RangeError(`at most 6 kept paths, got ${iso.keep.length}`);
  const mode = iso.pidNamespace ?? 'own';
  if ((mode === 'join') !== (join !== undefined)) throw new RangeError(`pid namespace ${mode}: join pid mismatch`);
  if (join !== undefined && (!Number.isInteger(join.holderPid) || join.holderPid <= 1))
    throw new RangeError(`bad holder pid ${join.holderPid}`);
  const ops: string[] = [];
  for (const k of iso.keep) ops.push('keep', k);
  for (const b of iso.binds) ops.push('bind', b.source, b.target, b.readOnly ? 'ro' : 'rw');
  ops.push('run', iso.runDir);
  for (const w of iso.writable) ops.push('writable', w);
  ops.push('readonly');
  for (const h of iso.hide) ops.push('hide', h);
  ops.push('cd', iso.workingDir);
  if (mode === 'hold') ops.push('hold');
  const pid =
    join !== undefined
      ? ['nsenter', `--pid=/proc/${join.holderPid}/ns/pid`, '--no-fork', '--', 'unshare']
      : ['unshare', '--pid'];
  return [
    ...['ip', 'netns', 'exec', netns],
    ...[...pid, '--mount', '--fork', '--kill-child', '--mount-proc', '--propagation', 'private'],
    ...['--', '/bin/sh', '-c', INIT_SCRIPT, 'outrigger-init', ...ops, '--'],
    ...privilegedArgv(iso.privileges, argv),
  ];
}

/** A command run inside a running container (`outrigger exec`, exec probes): its mount, PID and
 *  network namespaces (entered through its pid 1, `nsPid`), its working directory and privileges. */
export function enterArgv(nsPid: number, p: Privileges, argv: readonly string[], workingDir = '/'): string[] {
  return [
    ...['nsenter', `--target=${nsPid}`, '--mount', '--pid', '--net', `--wd=${workingDir}`, '--'],
    ...privilegedArgv(p, argv),
  ];
}

/** The container's init as the host sees it (pid 1 in its own PID namespace, or a process of the pod's
 *  shared one): the one child of the recorded process (unshare), once it has forked. Undefined while there is none (starting, or gone). */
export async function containerInitPid(recordedPid: number): Promise<number | undefined> {
  try {
    const kids = (await readFile(`/proc/${recordedPid}/task/${recordedPid}/children`, 'utf8')).trim();
    const first = Number(kids.split(/\s+/)[0]);
    return Number.isInteger(first) && first > 1 ? first : undefined;
  } catch {
    return undefined;
  }
}
