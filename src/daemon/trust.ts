// The local mesh's trust rotation (`outrigger trust rotate [--anchor] [--rollback]`, `trust status`),
// run by the daemon so that it goes on whatever happens to the command that asked for it. The safe
// order, each stage waiting until every meshed proxy shows it on its admin /identity:
//   1 both:   publish a bundle of the old and the new anchor;     wait: every proxy trusts both
//   2 switch: sign with the new issuer (leaves and the control plane's own certificate), raise the
//             bundle's generation so that proxies renew now;       wait: every proxy holds a new-issuer leaf
//   3 drop:   publish the new anchor alone;                        wait: every proxy trusts only it
// Rolling back: from 1, publish the old anchor alone (back-drop); from 2, sign with the old issuer again
// (back-switch) and then back-drop. After 3 there is nothing to go back to (rotate again instead).
// The record (stage, generation, both CAs' PEMs with their keys) is kept in the state directory's
// identity/ (0600) before each stage acts, so that a daemon restarted meanwhile starts with the stage's
// issuer and bundle, and the next `trust rotate` resumes it. Each stage's actions can be done again.
import { X509Certificate } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { join } from 'node:path';
import { CA_FILE_NAMES, MeshCa } from '../control/identity/ca.js';
import { exists, writeFileAtomic } from '../control/identity/files.js';
import { bundleCerts, type Issuance } from '../control/identity/issuance.js';
import { PROXY_ADMIN_PORT } from '../manifests/contract.js';

export type Stage = 'both' | 'switch' | 'drop' | 'back-switch' | 'back-drop';

interface CaPems {
  readonly trustAnchorPem: string;
  readonly issuerCertPem: string;
  readonly issuerKeyPem: string;
  /** Only for a new anchor made here (kept once the rotation ends). */
  readonly trustAnchorKeyPem?: string;
}

export interface RotationRecord {
  readonly version: 1;
  /** A new anchor too (else a new issuer under the same anchor). */
  readonly anchor: boolean;
  stage: Stage;
  readonly old: CaPems;
  readonly next: CaPems;
  readonly startedAt: string;
}

export interface CertFacts {
  readonly fingerprint: string;
  readonly subject: string;
  readonly notAfter: string;
}

/** What one proxy shows (its /identity). */
export interface ProxyTrust {
  readonly pod: string;
  readonly anchors: readonly string[];
  readonly issuer: string;
  readonly generation: number;
  readonly error?: string;
}

export interface TrustStatus {
  readonly stage: Stage | 'idle';
  readonly anchor?: boolean;
  readonly generation: number;
  readonly bundle: readonly CertFacts[];
  readonly issuer: CertFacts;
  /** The issuer and anchors of the rotation's two sides (while one is recorded). */
  readonly old?: { readonly anchor: string; readonly issuer: string };
  readonly next?: { readonly anchor: string; readonly issuer: string };
  readonly running: boolean;
  readonly waitingFor?: string;
  readonly progress?: { readonly done: number; readonly total: number; readonly laggards: readonly string[] };
  /** Why the last run stopped (a timeout names the laggards). */
  readonly error?: string;
  readonly anchorKeyKept: boolean;
  readonly proxies: readonly ProxyTrust[];
}

const FORWARD: readonly Stage[] = ['both', 'switch', 'drop'];
const BACKWARD: readonly Stage[] = ['back-switch', 'back-drop'];
const BUNDLE_FILE = 'trust-bundle.pem';
const RECORD_FILE = 'rotation.json';

export const STAGE_TEXT: Record<Stage, { readonly step: string; readonly wait: string }> = {
  both: { step: 'publish the bundle of the old and the new anchor', wait: 'every proxy trusts both anchors' },
  switch: {
    step: 'sign with the new issuer (the control plane too); proxies renew now',
    wait: 'every proxy holds a certificate from the new issuer',
  },
  drop: { step: 'drop the old anchor', wait: 'every proxy trusts only the new anchor' },
  'back-switch': {
    step: 'sign with the old issuer again; proxies renew now',
    wait: 'every proxy holds a certificate from the old issuer',
  },
  'back-drop': { step: 'drop the new anchor', wait: 'every proxy trusts only the old anchor' },
};

export class TrustRotationError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'TrustRotationError';
  }
}

export interface TrustManagerDeps {
  /** The mesh's proxies now: meshed, running pods with an address. */
  proxies(): readonly { readonly pod: string; readonly ip: string }[];
  /** The mesh's admin token (proxies answer /identity to the daemon's address only with it). */
  token(): Promise<string | undefined>;
  /** Writes the bundle file the proxies watch. */
  publish(text: string): Promise<void>;
  log(line: string): void;
}

const fp = (pem: string) => new X509Certificate(pem).fingerprint256;
const facts = (c: X509Certificate): CertFacts => ({
  fingerprint: c.fingerprint256,
  subject: c.subject.split('\n').join(', '),
  notAfter: new Date(c.validTo).toISOString(),
});

export class TrustManager {
  readonly #dir: string;
  readonly #issuance: Issuance;
  #generation: number;
  #record: RotationRecord | undefined;
  #deps: TrustManagerDeps | undefined;
  #running: Promise<void> | undefined;
  #abort = false;
  #waitingFor: string | undefined;
  #progress: { done: number; total: number; laggards: string[] } | undefined;
  #error: string | undefined;
  #userFiles: boolean;

  private constructor(dir: string, issuance: Issuance, generation: number, userFiles: boolean) {
    this.#dir = dir;
    this.#issuance = issuance;
    this.#generation = generation;
    this.#userFiles = userFiles;
  }

  /**
   * Opens the state in `dir` (the CA's identity/ directory): a recorded rotation sets its stage's bundle
   * on `issuance` (whose issuer the CA files already are), else the bundle file kept from the last one.
   */
  static async open(dir: string, issuance: Issuance, userFiles: boolean): Promise<TrustManager> {
    const bundleText = await readFile(join(dir, BUNDLE_FILE), 'utf8').catch(() => undefined);
    const generation = Number(/^# outrigger-trust-generation: (\d+)/m.exec(bundleText ?? '')?.[1] ?? '0');
    const m = new TrustManager(dir, issuance, generation, userFiles);
    const rec = await readFile(join(dir, RECORD_FILE), 'utf8').catch(() => undefined);
    if (rec !== undefined && !userFiles) {
      m.#record = JSON.parse(rec) as RotationRecord;
      await m.#apply(m.#record.stage, false);
    } else if (bundleText !== undefined) {
      try {
        issuance.setBundle(bundleText);
      } catch {
        // A bundle without the CA's anchor (files replaced by hand): the anchor alone.
      }
    }
    return m;
  }

  /** The running mesh's parts (set once it has started). */
  attach(deps: TrustManagerDeps): void {
    this.#deps = deps;
  }

  /** The bundle file's text: the generation line and the anchors. */
  bundleText(): string {
    return `# outrigger-trust-generation: ${this.#generation}\n${bundleCerts(this.#issuance.bundlePem)
      .map((c) => c.toString())
      .join('')}`;
  }

  async status(): Promise<TrustStatus> {
    const r = this.#record;
    const side = (p: CaPems) => ({ anchor: fp(p.trustAnchorPem), issuer: fp(p.issuerCertPem) });
    return {
      stage: r?.stage ?? 'idle',
      ...(r !== undefined ? { anchor: r.anchor, old: side(r.old), next: side(r.next) } : {}),
      generation: this.#generation,
      bundle: bundleCerts(this.#issuance.bundlePem).map(facts),
      issuer: facts(new X509Certificate(this.#issuance.ca.issuerPem)),
      running: this.#running !== undefined,
      ...(this.#waitingFor !== undefined ? { waitingFor: this.#waitingFor } : {}),
      ...(this.#progress !== undefined ? { progress: this.#progress } : {}),
      ...(this.#error !== undefined ? { error: this.#error } : {}),
      anchorKeyKept: await exists(join(this.#dir, CA_FILE_NAMES.trustAnchorKey)),
      proxies: await this.#poll(),
    };
  }

  /** Starts (or resumes) a rotation; returns the stage it starts at. */
  async rotate(o: { anchor: boolean; anchorKeyPem?: string; timeoutMs: number }): Promise<Stage> {
    this.#check();
    if (this.#record === undefined) {
      const old = await this.#currentPems();
      let next: CaPems;
      if (o.anchor) next = await MeshCa.generatePems(this.#issuance.ca.trustDomain);
      else {
        const key = o.anchorKeyPem ?? old.trustAnchorKeyPem;
        if (key === undefined)
          throw new TrustRotationError(
            400,
            `the trust anchor's key is not kept in ${this.#dir} (a mesh made before keys were kept): give it with --anchor-key FILE, or rotate the anchor too with --anchor`,
          );
        try {
          next = await MeshCa.issuerUnder(old.trustAnchorPem, key, this.#issuance.ca.trustDomain);
        } catch (err) {
          throw new TrustRotationError(400, `--anchor-key: ${(err as Error).message}`);
        }
      }
      this.#record = { version: 1, anchor: o.anchor, stage: 'both', old, next, startedAt: new Date().toISOString() };
    } else if (BACKWARD.includes(this.#record.stage)) {
      throw new TrustRotationError(
        409,
        `a rollback stopped at stage ${this.#record.stage}: finish it with \`outrigger trust rotate --rollback\``,
      );
    }
    const from = this.#record.stage;
    this.#start(FORWARD.slice(FORWARD.indexOf(from)), o.timeoutMs);
    return from;
  }

  /** Goes back from a rotation that has not dropped the old anchor yet; returns the first stage. */
  rollback(o: { timeoutMs: number }): Stage {
    this.#check();
    const r = this.#record;
    if (r === undefined) throw new TrustRotationError(409, 'no trust rotation is recorded: nothing to roll back');
    if (r.stage === 'drop')
      throw new TrustRotationError(
        409,
        'the old anchor is being dropped already: finish with `outrigger trust rotate` (then rotate again to go back)',
      );
    const stages: Stage[] =
      r.stage === 'both' || r.stage === 'back-drop' ? ['back-drop'] : ['back-switch', 'back-drop'];
    this.#start(stages, o.timeoutMs);
    return stages[0] as Stage;
  }

  /** Stops a running rotation at its current stage (the record stays); resolves once it has stopped. */
  async stop(): Promise<void> {
    this.#abort = true;
    await this.#running;
    this.#abort = false;
  }

  #check(): void {
    if (this.#userFiles)
      throw new TrustRotationError(
        409,
        "this mesh's CA comes from files given to `outrigger up` (--trust-anchor, --issuer-cert, --issuer-key): replace them there",
      );
    if (this.#deps === undefined) throw new TrustRotationError(409, 'the mesh is not running yet');
    if (this.#running !== undefined) throw new TrustRotationError(409, 'a trust rotation is running already');
  }

  #start(stages: readonly Stage[], timeoutMs: number): void {
    this.#error = undefined;
    this.#running = (async () => {
      try {
        for (const s of stages) {
          await this.#apply(s, true);
          await this.#wait(s, timeoutMs);
        }
        await this.#finish();
      } catch (err) {
        this.#error = (err as Error).message;
        this.#deps?.log(`trust rotation stopped: ${this.#error}`);
      } finally {
        this.#waitingFor = undefined;
        this.#running = undefined;
      }
    })();
  }

  /** Sets the stage's issuer and bundle (recording the stage first), and publishes the bundle. */
  async #apply(stage: Stage, announce: boolean): Promise<void> {
    const r = this.#record;
    if (r === undefined) return;
    r.stage = stage;
    await writeFileAtomic(join(this.#dir, RECORD_FILE), JSON.stringify(r), 0o600);
    const oldCa = await MeshCa.fromPems(r.old, { trustDomain: this.#issuance.ca.trustDomain });
    const nextCa = await MeshCa.fromPems(r.next, { trustDomain: this.#issuance.ca.trustDomain });
    const both =
      fp(r.old.trustAnchorPem) === fp(r.next.trustAnchorPem)
        ? r.old.trustAnchorPem
        : r.old.trustAnchorPem + r.next.trustAnchorPem;
    const useNext = stage === 'switch' || stage === 'drop';
    const ca = useNext ? nextCa : oldCa;
    const bundle = stage === 'drop' ? r.next.trustAnchorPem : stage === 'back-drop' ? r.old.trustAnchorPem : both;
    // The CA files are the issuer that signs (what a restarted daemon loads).
    await this.#writeCa(useNext ? r.next : r.old);
    this.#issuance.use(ca, bundle);
    if (announce) {
      this.#generation++;
      this.#deps?.log(`trust rotation: ${stage}: ${STAGE_TEXT[stage].step} (generation ${this.#generation})`);
    }
    await writeFileAtomic(join(this.#dir, BUNDLE_FILE), this.bundleText(), 0o644);
    await this.#deps?.publish(this.bundleText());
  }

  async #writeCa(p: CaPems): Promise<void> {
    await writeFileAtomic(join(this.#dir, CA_FILE_NAMES.issuerKey), p.issuerKeyPem, 0o600);
    await writeFileAtomic(join(this.#dir, CA_FILE_NAMES.issuerCert), p.issuerCertPem, 0o644);
    await writeFileAtomic(join(this.#dir, CA_FILE_NAMES.trustAnchor), p.trustAnchorPem, 0o644);
  }

  async #finish(): Promise<void> {
    const r = this.#record;
    if (r === undefined) return;
    const kept = r.stage === 'drop' ? r.next : r.old;
    // The anchor's key goes with its anchor: a new anchor's is kept, the dropped one's removed.
    const keyFile = join(this.#dir, CA_FILE_NAMES.trustAnchorKey);
    if (kept.trustAnchorKeyPem !== undefined) await writeFileAtomic(keyFile, kept.trustAnchorKeyPem, 0o600);
    else if (r.anchor && r.stage === 'drop') await rm(keyFile, { force: true });
    await rm(join(this.#dir, RECORD_FILE), { force: true });
    this.#record = undefined;
    this.#progress = undefined;
    this.#deps?.log(`trust rotation: done; issuer ${fp(kept.issuerCertPem)}, anchor ${fp(kept.trustAnchorPem)}`);
  }

  /** Waits until every proxy shows what `stage` asks; throws naming the laggards after `timeoutMs`. */
  async #wait(stage: Stage, timeoutMs: number): Promise<void> {
    const r = this.#record as RotationRecord;
    const want = new Set(bundleCerts(this.#issuance.bundlePem).map((c) => c.fingerprint256));
    const issuer = fp(stage === 'back-switch' || stage === 'back-drop' ? r.old.issuerCertPem : r.next.issuerCertPem);
    const ok = (p: ProxyTrust): boolean => {
      if (p.error !== undefined || p.generation < this.#generation) return false;
      const trusts = p.anchors.length === want.size && p.anchors.every((a) => want.has(a));
      return stage === 'switch' || stage === 'back-switch' ? trusts && p.issuer === issuer : trusts;
    };
    this.#waitingFor = STAGE_TEXT[stage].wait;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#abort) throw new Error(`stopped at stage ${stage}`);
      const proxies = await this.#poll();
      const laggards = proxies.filter((p) => !ok(p));
      this.#progress = {
        done: proxies.length - laggards.length,
        total: proxies.length,
        laggards: laggards.map((p) => p.pod),
      };
      if (laggards.length === 0) return;
      if (Date.now() > deadline)
        throw new Error(
          `stage ${stage}: ${laggards.length} of ${proxies.length} proxies not there after ${Math.round(timeoutMs / 1000)} s (${STAGE_TEXT[stage].wait}): ${laggards
            .map(
              (p) =>
                `${p.pod} (${p.error ?? `generation ${p.generation}, ${p.anchors.length} anchor(s), issuer ${p.issuer.slice(0, 11)}`})`,
            )
            .join(', ')}`,
        );
      await new Promise((res) => setTimeout(res, 500));
    }
  }

  async #currentPems(): Promise<CaPems> {
    const read = (f: string) => readFile(join(this.#dir, f), 'utf8');
    const key = await read(CA_FILE_NAMES.trustAnchorKey).catch(() => undefined);
    return {
      trustAnchorPem: await read(CA_FILE_NAMES.trustAnchor),
      issuerCertPem: await read(CA_FILE_NAMES.issuerCert),
      issuerKeyPem: await read(CA_FILE_NAMES.issuerKey),
      ...(key !== undefined ? { trustAnchorKeyPem: key } : {}),
    };
  }

  /** Every proxy's /identity now. */
  async #poll(): Promise<ProxyTrust[]> {
    const deps = this.#deps;
    if (deps === undefined) return [];
    const token = await deps.token();
    return Promise.all(
      deps.proxies().map(async ({ pod, ip }): Promise<ProxyTrust> => {
        try {
          const r = await adminGet(ip, '/identity', token);
          if (r.status !== 200) throw new Error(r.body.trim() || `status ${r.status}`);
          const v = JSON.parse(r.body) as {
            issuerFingerprint?: string;
            trust?: { generation: number; anchors: { fingerprint: string }[] };
          };
          return {
            pod,
            anchors: v.trust?.anchors.map((a) => a.fingerprint) ?? [],
            issuer: v.issuerFingerprint ?? '',
            generation: v.trust?.generation ?? 0,
          };
        } catch (err) {
          return { pod, anchors: [], issuer: '', generation: 0, error: (err as Error).message };
        }
      }),
    );
  }
}

function adminGet(ip: string, path: string, token: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = token !== undefined ? { authorization: `Bearer ${token}` } : {};
    const req = http.get(`http://${ip}:${PROXY_ADMIN_PORT}${path}`, { timeout: 2000, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 2 s')));
    req.on('error', reject);
  });
}
