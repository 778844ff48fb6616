// The trust bundle: the anchors (one or more root certificates) a proxy trusts, for its peers and for
// the control plane. During a rotation it holds the old and the new anchor; it may change while the
// proxy runs, read from a file that is replaced atomically (the local runtime's, or a Kubernetes
// ConfigMap mounted as a file): the file is polled (a rename gives it a new inode, which a watch on the
// old one would miss), the last good bundle is kept when the file is unreadable or bad, and every
// change is told to the listeners (new connections use the new bundle; open ones are not cut).
//
// A bundle file may carry a generation line, `# outrigger-trust-generation: N`, outside the PEM blocks:
// the runtime raises it to ask every proxy to renew its certificate now (when issuance switched to a
// new issuer), without waiting for 70% of the current one's lifetime. It may also carry an issuer line,
// `# outrigger-trust-issuer: <SHA-256 fingerprint>`: the issuer that signs from this generation on (a
// Kubernetes rotation's stage 2 names it, as the control plane's replicas may load the new issuer a
// little after the bundle reaches the proxies); a proxy given a certificate from another issuer asks
// again, with backoff, until it holds one from this issuer.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../../core/log.js';

/** The public facts of one anchor, as /identity and the metrics show them. */
export interface TrustAnchorView {
  /** SHA-256 of the DER, colon-separated upper-case hex (openssl's form). */
  readonly fingerprint: string;
  readonly subject: string;
  readonly notAfter: string;
}

export interface TrustBundle {
  /** The PEM certificates, as node:tls takes them (`ca`). */
  readonly pem: string;
  readonly anchors: readonly X509Certificate[];
  /** The anchors' facts, in the bundle's order. */
  readonly views: readonly TrustAnchorView[];
  /** The generation line's number, 0 without one. */
  readonly generation: number;
  /** The issuer line's fingerprint (colon-separated upper-case hex), when there is one. */
  readonly issuer?: string;
}

const BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;
const GENERATION = /^# outrigger-trust-generation: (\d{1,15})\s*$/m;
const ISSUER = /^# outrigger-trust-issuer: ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31})\s*$/m;
const ISSUER_LINE = /^# outrigger-trust-issuer:(.*)$/m;

/** A bundle file's text: the generation line, the issuer line when given, then the anchors' PEM. */
export function formatTrustBundle(o: { anchorsPem: string; generation: number; issuer?: string }): string {
  const pem = (o.anchorsPem.match(BLOCK) ?? []).map((b) => `${b}\n`).join('');
  return (
    `# outrigger-trust-generation: ${o.generation}\n` +
    (o.issuer !== undefined ? `# outrigger-trust-issuer: ${o.issuer.toUpperCase()}\n` : '') +
    pem
  );
}

export class TrustBundleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrustBundleError';
  }
}

/** Reads PEM text as a bundle; throws a TrustBundleError naming `what` and the problem (no certificate,
 *  one that does not parse, one that is not a CA certificate). */
export function parseTrustBundle(text: string, what = 'trust bundle'): TrustBundle {
  const blocks = text.match(BLOCK) ?? [];
  if (blocks.length === 0)
    throw new TrustBundleError(`${what} holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  const anchors: X509Certificate[] = [];
  const seen = new Set<string>();
  for (const [i, b] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(b);
    } catch {
      throw new TrustBundleError(`${what}: certificate ${i + 1} of ${blocks.length} does not parse`);
    }
    if (!cert.ca)
      throw new TrustBundleError(
        `${what}: certificate ${i + 1} of ${blocks.length} (subject "${oneLine(cert.subject)}") is not a CA certificate`,
      );
    // The same anchor twice is harmless but says nothing more.
    if (seen.has(cert.fingerprint256)) continue;
    seen.add(cert.fingerprint256);
    anchors.push(cert);
  }
  const g = GENERATION.exec(text);
  const i = ISSUER.exec(text);
  if (i === null && ISSUER_LINE.test(text))
    throw new TrustBundleError(
      `${what}: the "# outrigger-trust-issuer:" line does not hold a SHA-256 fingerprint (32 colon-separated hex bytes)`,
    );
  return {
    pem: anchors.map((a) => a.toString()).join(''),
    anchors,
    views: anchors.map((a) => ({
      fingerprint: a.fingerprint256,
      subject: oneLine(a.subject),
      notAfter: new Date(a.validTo).toISOString(),
    })),
    generation: g !== null ? Number(g[1]) : 0,
    ...(i !== null ? { issuer: (i[1] as string).toUpperCase() } : {}),
  };
}

/** The anchors' fingerprints, sorted: two bundles trust the same when these are equal. */
export function bundleKey(b: TrustBundle): string {
  return b.views
    .map((v) => v.fingerprint)
    .sort()
    .join(',');
}

/** The anchor of `b` that signed `issuer`, if any. */
export function anchorOf(b: TrustBundle, issuer: X509Certificate): X509Certificate | undefined {
  return b.anchors.find((a) => issuer.checkIssued(a) && issuer.verify(a.publicKey));
}

/** A distinguished name on one line ('' for an empty subject, which Node gives as undefined). */
export function oneLine(dn: string | undefined): string {
  return (dn ?? '').split('\n').join(', ');
}

/** Where a proxy's bundle comes from: fixed, or a file that is watched. */
export interface TrustSource {
  current(): TrustBundle;
  /** Calls `fn` with every new bundle; returns what stops it. */
  onChange(fn: (b: TrustBundle) => void): () => void;
  close(): void;
}

/** A bundle given once (--trust-anchors). */
export function fixedTrust(b: TrustBundle): TrustSource {
  return { current: () => b, onChange: () => () => undefined, close: () => undefined };
}

export interface TrustFileOptions {
  /** How often the file is read again (ms); default 1000. */
  readonly pollMs?: number;
  readonly log?: Logger;
}

/** A bundle file, read at start (a problem then is thrown, so that start-up stops) and polled. */
export class TrustFile implements TrustSource {
  readonly file: string;
  #bundle: TrustBundle;
  #text: string;
  #timer: NodeJS.Timeout | undefined;
  #reading = false;
  #lastProblem: string | undefined;
  /** Reads of the file that failed or held a bad bundle (the last good one kept). */
  readFailures = 0;
  readonly #listeners = new Set<(b: TrustBundle) => void>();
  readonly #o: TrustFileOptions;

  private constructor(file: string, text: string, bundle: TrustBundle, o: TrustFileOptions) {
    this.file = file;
    this.#text = text;
    this.#bundle = bundle;
    this.#o = o;
  }

  static async open(file: string, o: TrustFileOptions = {}): Promise<TrustFile> {
    const text = await readText(file);
    const t = new TrustFile(file, text, parseTrustBundle(text, file), o);
    t.#timer = setInterval(() => void t.check(), o.pollMs ?? 1000);
    t.#timer.unref();
    return t;
  }

  current(): TrustBundle {
    return this.#bundle;
  }

  onChange(fn: (b: TrustBundle) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Reads the file now; resolves once a change (if any) has been told. */
  async check(): Promise<void> {
    if (this.#reading) return;
    this.#reading = true;
    try {
      const text = await readText(this.file);
      if (text === this.#text) return;
      const next = parseTrustBundle(text, this.file);
      this.#text = text;
      this.#lastProblem = undefined;
      const before = this.#bundle;
      this.#bundle = next;
      this.#o.log?.info(
        {
          file: this.file,
          generation: next.generation,
          anchors: next.views.map((v) => v.fingerprint),
          before: { generation: before.generation, anchors: before.views.map((v) => v.fingerprint) },
        },
        'trust bundle changed',
      );
      for (const fn of this.#listeners) {
        try {
          fn(next);
        } catch (err) {
          this.#o.log?.error({ err }, 'trust bundle listener failed');
        }
      }
    } catch (err) {
      const problem = (err as Error).message;
      this.readFailures++;
      // A degraded mode logs once per distinct problem; the count is the metric.
      if (problem !== this.#lastProblem) {
        this.#o.log?.warn({ file: this.file, problem }, 'trust bundle: keeping the last good one');
        this.#lastProblem = problem;
      }
    } finally {
      this.#reading = false;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new TrustBundleError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
