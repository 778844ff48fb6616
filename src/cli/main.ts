// The `outrigger` command: one subcommand per file in this folder, dispatched here.
import { Command } from 'commander';
import { applyCommand } from './apply.js';
import { checkCommand } from './check.js';
import { controlPlaneCommand } from './control-plane.js';
import { controlCommand } from './control.js';
import { dashboardCommand } from './dashboard.js';
import { demoCommand } from './demo.js';
import { downCommand } from './down.js';
import { execCommand } from './exec.js';
import { getCommand } from './get.js';
import { identityCommand } from './identity.js';
import { authzCommand } from './authz.js';
import { injectCommand } from './inject.js';
import { installCommand } from './install.js';
import { logsCommand } from './logs.js';
import { prometheusConfigCommand } from './prometheus-config.js';
import { proxyCommand } from './proxy.js';
import { tapCommand } from './tap.js';
import { routesCommand } from './routes.js';
import { statCommand } from './stat.js';
import { topCommand } from './top.js';
import { proxyInitCommand } from './proxy-init.js';
import { uninstallCommand } from './uninstall.js';
import { upCommand } from './up.js';

const program = new Command('outrigger')
  .description('Outrigger: a service mesh whose proxy runs beside every pod')
  .showHelpAfterError()
  .addCommand(demoCommand())
  .addCommand(upCommand())
  .addCommand(applyCommand())
  .addCommand(getCommand())
  .addCommand(logsCommand())
  .addCommand(execCommand())
  .addCommand(identityCommand())
  .addCommand(authzCommand())
  .addCommand(tapCommand())
  .addCommand(prometheusConfigCommand())
  .addCommand(statCommand())
  .addCommand(topCommand())
  .addCommand(routesCommand())
  .addCommand(dashboardCommand())
  .addCommand(downCommand())
  .addCommand(proxyCommand())
  .addCommand(installCommand())
  .addCommand(uninstallCommand())
  .addCommand(injectCommand())
  .addCommand(checkCommand())
  .addCommand(proxyInitCommand())
  .addCommand(controlPlaneCommand())
  .addCommand(controlCommand(), { hidden: true });

await program.parseAsync(process.argv);
