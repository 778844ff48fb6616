// `outrigger down`: stops the mesh through its control process, or, when that process is gone (killed,
// crashed), from the records in the state directory. Afterwards only the logs and the mesh CA remain
// (the trust anchor outlives a restart, as a cluster's does); `--purge` removes them too.
import { rm } from 'node:fs/promises';
import { Command } from 'commander';
import { controlRequest } from '../daemon/client.js';
import { cleanupFromRecords } from '../runtime/cleanup.js';
import { readJson, runningControlPid, statePaths } from '../runtime/state.js';
import { fail, stateDir, stateDirOption } from './mesh-common.js';

export function downCommand(): Command {
  return new Command('down')
    .description(
      'stop the mesh and remove every namespace, link, rule, process and state file it created (logs and the mesh CA stay)',
    )
    .addOption(stateDirOption())
    .option('--timeout <seconds>', 'how long to wait for the control process to stop', '90')
    .option('--purge', 'also remove the logs and the mesh CA (the whole state directory)')
    .action(async (o: { stateDir: string; timeout: string; purge?: boolean }) => {
      const dir = stateDir(o.stateDir);
      await stop(dir, Number(o.timeout));
      if (o.purge === true) {
        await rm(dir, { recursive: true, force: true });
        process.stdout.write(`removed ${dir}\n`);
      }
    });
}

async function stop(dir: string, timeoutS: number): Promise<void> {
  const pid = runningControlPid(dir);
  if (pid !== undefined) {
    process.stdout.write(`stopping the mesh (control process ${pid})...\n`);
    try {
      await controlRequest(dir, 'POST', '/shutdown');
    } catch {
      process.kill(pid, 'SIGTERM'); // not answering: the signal does the same
    }
    const deadline = Date.now() + timeoutS * 1000;
    while (runningControlPid(dir) === pid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (runningControlPid(dir) === pid) fail('down', `the control process ${pid} did not stop within ${timeoutS} s`);
    // It removes everything itself; anything its stop could not remove is still in the records.
    if ((await readJson(statePaths(dir).net)) === undefined) {
      process.stdout.write('mesh stopped\n');
      return;
    }
    process.stdout.write('the control process left things behind; removing them from the records\n');
  }
  try {
    const r = await cleanupFromRecords(dir);
    if (!r.found && pid === undefined) {
      process.stdout.write(`no mesh in ${dir}\n`);
      return;
    }
    for (const k of r.killed) process.stdout.write(`killed ${k}\n`);
    for (const x of r.removed) process.stdout.write(`removed ${x}\n`);
    for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
    process.stdout.write('mesh removed\n');
  } catch (err) {
    fail('down', (err as Error).message);
  }
}
