// `outrigger apply -f FILE`: changes a running mesh to what the files now say. Objects from these files
// are created or changed; an object that an earlier up or apply took from one of these files and that
// is no longer in it is removed. A Deployment whose template changed is replaced one pod at a time.
// Prints the mesh's progress while it works and returns when the change is in force.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { applyManifests, ControlError, meshStatus } from '../daemon/client.js';
import type { ManifestFile } from '../runtime/mesh.js';
import { fail, liveStatus, stateDir, stateDirOption } from './mesh-common.js';

interface ApplyOptions {
  readonly file: string[];
  readonly stateDir: string;
  readonly timeout: string;
}

export function applyCommand(): Command {
  return new Command('apply')
    .description('add, change or remove objects of the running mesh from manifests')
    .requiredOption('-f, --file <file>', 'a manifest file (repeatable)', (v: string, prev: string[] = []) => [
      ...prev,
      v,
    ])
    .addOption(stateDirOption())
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the change to be in force').default('300'))
    .action(async (o: ApplyOptions) => {
      const dir = stateDir(o.stateDir);
      const timeoutS = Number(o.timeout);
      if (!Number.isFinite(timeoutS) || timeoutS <= 0)
        fail('apply', `--timeout must be a number of seconds, got ${JSON.stringify(o.timeout)}`);
      // The files are checked by the mesh, together with the files it runs (an object of these files may
      // name objects that earlier files hold), never on their own here.
      const files: ManifestFile[] = [];
      const unreadable: string[] = [];
      for (const f of o.file) {
        try {
          files.push({ path: resolve(f), name: f, text: await readFile(f, 'utf8') });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          unreadable.push(`  ${f}: cannot read: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
        }
      }
      if (unreadable.length > 0) fail('apply', `refused, nothing changed:\n${unreadable.join('\n')}`);
      const before = await liveStatus('apply', dir);

      let printed = before.progress.length;
      let done = false;
      const follow = (async () => {
        while (!done) {
          await new Promise((r) => setTimeout(r, 200));
          const s = await meshStatus(dir).catch(() => undefined);
          if (s === undefined) continue;
          for (; printed < s.progress.length; printed++) process.stdout.write(`${s.progress[printed] ?? ''}\n`);
        }
      })();
      try {
        const r = await applyManifests(dir, files, timeoutS * 1000);
        done = true;
        await follow;
        const s = await meshStatus(dir).catch(() => undefined);
        for (; s !== undefined && printed < s.progress.length; printed++)
          process.stdout.write(`${s.progress[printed] ?? ''}\n`);
        const parts = [
          `${r.created.length} created`,
          `${r.replaced.length} replaced`,
          `${r.deleted.length} deleted`,
          `${r.unchanged} unchanged`,
        ];
        process.stdout.write(`applied: pods ${parts.join(', ')}\n`);
      } catch (err) {
        done = true;
        await follow;
        if (err instanceof ControlError)
          fail('apply', err.status === 422 ? `refused, nothing changed:\n${err.message}` : err.message);
        fail('apply', (err as Error).message);
      }
    });
}
