// Running the host's network tools (ip, iptables, iptables-restore) without a shell, with their stderr
// in the error, so a failure says which command failed and what the tool said.
import { execFile } from 'node:child_process';
import { OutriggerError } from '../../core/errors.js';
import { RuntimeCodes } from '../errors.js';

export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one command; rejects with CommandError when it exits non-zero or cannot start. */
export type Runner = (
  file: string,
  args: readonly string[],
  opts?: { readonly input?: string },
) => Promise<CommandResult>;

/** A command that failed, e.g. "ip link add outr0 type bridge: exit 2: RTNETLINK answers: File exists". */
export class CommandError extends OutriggerError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    detail?: string,
  ) {
    const why = detail ?? (exitCode === null ? 'killed' : `exit ${exitCode}`);
    super(RuntimeCodes.NET_COMMAND, `${argv.join(' ')}: ${why}${stderr.trim() !== '' ? `: ${stderr.trim()}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Generous: `ip` and `iptables` finish in milliseconds, but an xtables lock may be held briefly. */
const TIMEOUT_MS = 30_000;

/** The default runner: execFile (no shell), C locale so the tools' messages are stable. */
export const runCommand: Runner = (file, args, opts) =>
  new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { env: { ...process.env, LC_ALL: 'C' }, timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean };
        if (typeof e.code === 'string') {
          // Could not start: ENOENT when the tool is not installed.
          reject(
            new CommandError(
              [file, ...args],
              null,
              stderr,
              e.code === 'ENOENT' ? `${file} is not installed (or not on PATH)` : e.message,
            ),
          );
        } else {
          reject(
            new CommandError(
              [file, ...args],
              typeof e.code === 'number' ? e.code : null,
              stderr,
              e.killed === true ? `timed out after ${TIMEOUT_MS} ms` : undefined,
            ),
          );
        }
      },
    );
    if (opts?.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
