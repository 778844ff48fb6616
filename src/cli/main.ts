// The `outrigger` command: one subcommand per file in this folder, dispatched here.
import { Command } from 'commander';
import { proxyCommand } from './proxy.js';

const program = new Command('outrigger')
  .description('Outrigger: a service mesh whose proxy runs beside every pod')
  .showHelpAfterError()
  .addCommand(proxyCommand());

await program.parseAsync(process.argv);
