// The secrets a mesh hands its proxies by file, never in argv or logs: the mesh's tap token, and each
// meshed pod's ServiceAccount token (bound to the pod's uid), written where only the proxy uid can
// read them and replaced at half their lifetime, as the kubelet does with projected tokens.
import { randomBytes } from 'node:crypto';
import { chmod, chown, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DEFAULT_PROXY_INIT } from './net/index.js';
import type { StatePaths } from './state.js';
import { RuntimeCodes, RuntimeError } from './errors.js';
import { internalError } from '../core/errors.js';

/** Who a ServiceAccount token is for. */
export interface TokenSubject {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: { readonly name: string; readonly uid: string };
}

/** The audience of the ServiceAccount token app containers get, as a cluster's API server would take
 *  it: never the identity service's, which refuses it. */
export const API_TOKEN_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';

/** How long a pod's token is good for, and how often it is replaced (half of that). */
export const TOKEN_LIFETIME_S = 3600;

export class MeshTokens {
  private timer: NodeJS.Timeout | undefined;
  /** Checked once: the proxy's uid must be able to walk down to the token files. */
  private reachable: Promise<void> | undefined;

  constructor(
    private readonly paths: StatePaths,
    /** Signs a ServiceAccount token bound to a pod, for the identity service unless `audience` says
     *  otherwise (absent without identity). */
    private readonly issue: ((subject: TokenSubject, audience?: string) => Promise<string>) | undefined,
  ) {}

  private get dir(): string {
    return join(this.paths.root, 'tokens');
  }

  /** Where the proxy of pod `namespace/pod` reads its ServiceAccount token. */
  tokenFile(namespace: string, pod: string): string {
    return join(this.dir, namespace, pod, 'token');
  }

  /** Makes the mesh's tap token: `<state>/tap-token` (0600, root: for `outrigger tap` and the
   *  dashboard; kept if there is one, as running proxies hold it) and the proxies' copy in tokens/
   *  (0400, the proxy uid). Returns the copy's path. Made when the mesh starts (down removes it). */
  async writeTapToken(): Promise<string> {
    const root = this.paths.tapToken;
    let token = await readFile(root, 'utf8').then(
      (t) => t.trim(),
      () => '',
    );
    if (token === '') {
      token = randomBytes(32).toString('base64url');
      await writeFile(`${root}.tmp`, `${token}\n`, { mode: 0o600 });
      await rename(`${root}.tmp`, root);
    }
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    const file = join(this.dir, 'tap-token');
    await writeFile(`${file}.tmp`, `${token}\n`, { mode: 0o400 });
    await chown(`${file}.tmp`, DEFAULT_PROXY_INIT.proxyUid, DEFAULT_PROXY_INIT.proxyUid);
    await rename(`${file}.tmp`, file);
    return file;
  }

  /** Writes the mesh's trust anchors (PEM) beside the tap token, for the proxies to check the control
   *  plane's certificate against (public: 0444), and returns the path. */
  async writeTrustAnchors(pem: string): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    const file = join(this.dir, 'trust-anchors.pem');
    await writeFile(`${file}.tmp`, pem, { mode: 0o444 });
    await rename(`${file}.tmp`, file);
    return file;
  }

  /** Writes a pod's ServiceAccount token where only its proxy's uid can read it (0400, owned by that
   *  uid, in a root-owned directory of its own) and returns the path. Replaced atomically, so the
   *  proxy reads either the old token or the new one. */
  async writeToken(subject: TokenSubject): Promise<string> {
    if (this.issue === undefined) throw internalError('no identity to issue tokens');
    const file = this.tokenFile(subject.namespace, subject.pod.name);
    const dir = dirname(file);
    await mkdir(dir, { recursive: true, mode: 0o711 });
    this.reachable ??= searchableByOthers(dir);
    await this.reachable;
    const tmp = `${file}.tmp`;
    await writeFile(tmp, await this.issue(subject), { mode: 0o400 });
    await chown(tmp, DEFAULT_PROXY_INIT.proxyUid, DEFAULT_PROXY_INIT.proxyUid);
    await rename(tmp, file);
    return file;
  }

  /** Writes the token of a pod's app containers, for the API audience, in the pod's directory
   *  (`<podDir>/secrets/serviceaccount/token`, 0644 as Kubernetes mounts it, below a 0700 directory:
   *  the containers see it at /run/secrets/kubernetes.io/serviceaccount/token). Replaced atomically. */
  async writeAppToken(subject: TokenSubject, podDir: string): Promise<void> {
    if (this.issue === undefined) throw internalError('no identity to issue tokens');
    const dir = join(podDir, 'secrets', 'serviceaccount');
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await chmod(dirname(dir), 0o700);
    const file = join(dir, 'token');
    await writeFile(`${file}.tmp`, await this.issue(subject, API_TOKEN_AUDIENCE), { mode: 0o644 });
    await rename(`${file}.tmp`, file);
  }

  /** Removes a pod's token directory (the pod is gone). */
  async removePod(namespace: string, pod: string): Promise<void> {
    await rm(join(this.dir, namespace, pod), { recursive: true, force: true });
  }

  /** Writes a new token for each subject in turn (taken one at a time, so a lazy list can stop early);
   *  a failure is reported and the others still go. */
  async refresh(
    subjects: Iterable<TokenSubject>,
    onError: (subject: TokenSubject, err: Error) => void,
    apps: Iterable<{ readonly subject: TokenSubject; readonly podDir: string }> = [],
  ): Promise<void> {
    for (const s of subjects) await this.writeToken(s).catch((err: unknown) => onError(s, err as Error));
    for (const a of apps)
      await this.writeAppToken(a.subject, a.podDir).catch((err: unknown) => onError(a.subject, err as Error));
  }

  /** Refreshes the tokens of `subjects()` at half their lifetime until stop(). */
  refreshPeriodically(
    subjects: () => Iterable<TokenSubject>,
    onError: (subject: TokenSubject, err: Error) => void,
    apps: () => Iterable<{ readonly subject: TokenSubject; readonly podDir: string }> = () => [],
  ): void {
    this.timer = setInterval(() => void this.refresh(subjects(), onError, apps()), (TOKEN_LIFETIME_S / 2) * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}

/** Rejects, naming the first directory from `/` down to `dir` that other users cannot search (the
 *  proxies run as their own uid and must reach their token file). */
async function searchableByOthers(dir: string): Promise<void> {
  const parts = dir.split('/').filter((p) => p !== '');
  for (let i = 0; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join('/')}`;
    const mode = (await stat(d)).mode & 0o777;
    if ((mode & 0o001) === 0) {
      throw new RuntimeError(
        RuntimeCodes.TOKEN_ACCESS,
        `the proxies (uid ${DEFAULT_PROXY_INIT.proxyUid}) cannot reach their token files: ${d} is mode ` +
          `${mode.toString(8).padStart(4, '0')}; use a state directory whose parents others may search ` +
          `(chmod o+x ${d}), as the default /var/run/outrigger is`,
      );
    }
  }
}
