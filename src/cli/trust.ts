// `outrigger trust rotate [--anchor] [--anchor-key FILE] [--rollback]` and `outrigger trust status`: the
// local mesh's trust rotation, which the daemon runs (src/daemon/trust.ts); this command starts or
// resumes it and follows it, stage by stage, with each proxy's progress. Interrupted, the rotation
// stops at its recorded stage once the daemon stops, or goes on in a daemon that keeps running.
import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { controlRequest, ControlError } from '../daemon/client.js';
import { STAGE_TEXT, type Stage, type TrustStatus } from '../daemon/trust.js';
import { parseDuration } from '../manifests/routes.js';
import { fail, stateDir, stateDirOption } from './mesh-common.js';

const STAGE_NUMBER: Record<Stage, string> = {
  both: '1/3',
  switch: '2/3',
  drop: '3/3',
  'back-switch': 'back 1/2',
  'back-drop': 'back 2/2',
};

interface RotateOptions {
  readonly anchor?: boolean;
  readonly anchorKey?: string;
  readonly rollback?: boolean;
  readonly timeout: string;
  readonly stateDir: string;
}

export function trustCommand(): Command {
  const trust = new Command('trust').description(
    "the local mesh's trust anchor and issuer: rotate them, see where a rotation is",
  );
  trust
    .command('rotate')
    .description(
      'replace the issuer (--anchor: the trust anchor too) without downtime: publish old + new anchor, switch issuance, drop the old anchor, waiting for every proxy at each step; resumes a rotation that was interrupted',
    )
    .option('--anchor', 'a new trust anchor too (else a new issuer under the same anchor)')
    .addOption(
      new Option(
        '--anchor-key <file>',
        "the trust anchor's private key (PEM), when the state directory does not keep it",
      ),
    )
    .option('--rollback', 'go back from a rotation that has not dropped the old anchor yet')
    .addOption(new Option('--timeout <duration>', 'how long each step waits for every proxy').default('5m'))
    .addOption(stateDirOption())
    .action(async (o: RotateOptions) => {
      const dir = stateDir(o.stateDir);
      const ms = parseDuration(o.timeout);
      if (ms === undefined || ms <= 0) fail('trust rotate', `--timeout ${o.timeout}: not a duration such as 90s or 5m`);
      let anchorKeyPem: string | undefined;
      if (o.anchorKey !== undefined) {
        try {
          anchorKeyPem = await readFile(o.anchorKey, 'utf8');
        } catch (err) {
          fail(
            'trust rotate',
            `--anchor-key ${o.anchorKey}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          );
        }
      }
      let started: { stage: Stage };
      try {
        started = await controlRequest<{ stage: Stage }>(
          dir,
          'POST',
          o.rollback === true ? '/trust/rollback' : '/trust/rotate',
          10_000,
          JSON.stringify({
            anchor: o.anchor === true,
            timeoutMs: ms,
            ...(anchorKeyPem !== undefined ? { anchorKeyPem } : {}),
          }),
        );
      } catch (err) {
        return fail(
          'trust rotate',
          err instanceof ControlError ? err.message : `the mesh is not running: ${(err as Error).message}`,
        );
      }
      process.stdout.write(
        `${o.rollback === true ? 'rolling back' : 'rotating'} from stage ${STAGE_NUMBER[started.stage]} (${started.stage})\n`,
      );
      const code = await follow(dir);
      process.exit(code);
    });
  trust
    .command('status')
    .description('the trust bundle, the issuer, the stage of a rotation, and what each proxy trusts and holds')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addOption(stateDirOption())
    .action(async (o: { output?: string; stateDir: string }) => {
      const dir = stateDir(o.stateDir);
      let s: TrustStatus;
      try {
        s = await controlRequest<TrustStatus>(dir, 'GET', '/trust', 15_000);
      } catch (err) {
        return fail(
          'trust status',
          err instanceof ControlError ? err.message : `the mesh is not running: ${(err as Error).message}`,
        );
      }
      if (o.output === 'json') {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return;
      }
      process.stdout.write(formatStatus(s));
    });
  return trust;
}

const short = (fp: string) => fp.slice(0, 23);

export function formatStatus(s: TrustStatus): string {
  const lines = [
    `stage       ${s.stage === 'idle' ? 'no rotation' : `${STAGE_NUMBER[s.stage]} ${s.stage}${s.anchor === true ? ' (--anchor)' : ''}${s.running ? ', running' : ', stopped'}`}`,
    `generation  ${s.generation}`,
    ...s.bundle.map(
      (b, i) => `${i === 0 ? 'trusts' : ''.padEnd(6)}      ${short(b.fingerprint)}  ${b.subject}, until ${b.notAfter}`,
    ),
    `issuer      ${short(s.issuer.fingerprint)}  ${s.issuer.subject}, until ${s.issuer.notAfter}`,
    `anchor key  ${s.anchorKeyKept ? 'kept in the state directory' : 'not kept (trust rotate needs --anchor-key FILE or --anchor)'}`,
  ];
  if (s.waitingFor !== undefined) lines.push(`waiting     ${s.waitingFor}`);
  if (s.error !== undefined) lines.push(`stopped     ${s.error}`);
  lines.push('', 'PROXY'.padEnd(32) + 'GEN  ANCHORS  ISSUER');
  for (const p of s.proxies) {
    const side = (fp: string, which: 'anchor' | 'issuer') =>
      s.old !== undefined && fp === s.old[which]
        ? 'old'
        : s.next !== undefined && fp === s.next[which]
          ? 'new'
          : short(fp);
    lines.push(
      p.error !== undefined
        ? `${p.pod.padEnd(32)}(${p.error})`
        : `${p.pod.padEnd(32)}${String(p.generation).padEnd(5)}${p.anchors
            .map((a) => side(a, 'anchor'))
            .join('+')
            .padEnd(9)}${side(p.issuer, 'issuer')}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Follows the rotation until it stops: each stage's step and wait, and n/m proxies as they change. */
async function follow(dir: string): Promise<number> {
  let last = '';
  let stage: string | undefined;
  let total: number | undefined;
  for (;;) {
    let s: TrustStatus;
    try {
      s = await controlRequest<TrustStatus>(dir, 'GET', '/trust', 15_000);
    } catch (err) {
      process.stdout.write(
        `the daemon stopped answering (${(err as Error).message}); \`outrigger trust rotate\` resumes\n`,
      );
      return 1;
    }
    // The daemon moves on as soon as every proxy is there, which may fall between two polls: a stage left
    // behind (or a rotation done) had all its proxies, so say so before what comes next.
    const finished = () => {
      if (total !== undefined && last !== `  ${total}/${total} proxies`)
        process.stdout.write(`  ${total}/${total} proxies\n`);
      total = undefined;
    };
    if (s.stage !== 'idle' && s.stage !== stage) {
      if (stage !== undefined) finished();
      stage = s.stage;
      process.stdout.write(
        `stage ${STAGE_NUMBER[s.stage]}: ${STAGE_TEXT[s.stage].step}\n  waiting until ${STAGE_TEXT[s.stage].wait}\n`,
      );
      last = '';
    }
    if (s.progress !== undefined && s.running) {
      total = s.progress.total;
      const line = `  ${s.progress.done}/${s.progress.total} proxies${s.progress.laggards.length > 0 ? ` (waiting for ${s.progress.laggards.slice(0, 5).join(', ')}${s.progress.laggards.length > 5 ? ', ...' : ''})` : ''}`;
      if (line !== last) process.stdout.write(`${line}\n`);
      last = line;
    }
    if (!s.running) {
      if (s.error !== undefined) {
        process.stdout.write(
          `stopped: ${s.error}\nthe stage is recorded: \`outrigger trust rotate\` resumes it, \`outrigger trust rotate --rollback\` goes back\n`,
        );
        return 1;
      }
      finished();
      process.stdout.write(
        `done: the issuer is ${short(s.issuer.fingerprint)}; every proxy trusts ${s.bundle.map((b) => short(b.fingerprint)).join(' + ')}\n`,
      );
      return 0;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
