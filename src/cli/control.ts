// `outrigger control`: the mesh's control process, started in the background by `up` (not for people).
import { Command, Option } from 'commander';
import { runControl } from '../runtime/control.js';
import { stateDir, stateDirOption } from './mesh-common.js';

export function controlCommand(): Command {
  return new Command('control')
    .description('(internal) the control process of a local mesh; started by outrigger up')
    .requiredOption('-f, --file <file>', 'a manifest file (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .addOption(stateDirOption())
    .addOption(new Option('--bridge <name>'))
    .addOption(new Option('--pod-cidr <cidr>'))
    .addOption(new Option('--ready-timeout-ms <ms>').default('60000'))
    .action(async (o: { file: string[]; stateDir: string; bridge?: string; podCidr?: string; readyTimeoutMs: string }) => {
      const code = await runControl({
        stateDir: stateDir(o.stateDir),
        files: o.file,
        ...(o.bridge !== undefined ? { bridge: o.bridge } : {}),
        ...(o.podCidr !== undefined ? { podCidr: o.podCidr } : {}),
        readyTimeoutMs: Number(o.readyTimeoutMs),
      });
      process.exit(code);
    });
}
