// The `outrigger` command: one subcommand per file in this folder, dispatched here. Each command's
// module is loaded only when it is needed: the proxy, which runs in every pod, loads the proxy alone
// (not the dashboard, the Kubernetes client, the other commands, nor commander: it reads its own
// flags), and every other command loads its own module.
import type { Command } from 'commander';

if (process.argv[2] === 'proxy') {
  await (await import('./proxy.js')).runProxy(process.argv.slice(3));
}
if (process.argv[2] === 'proxy-node') {
  await (await import('./proxy-node.js')).runProxyNode(process.argv.slice(3));
}

// Answered before any command is loaded (as `outrigger version --client` is).
if (process.argv[2] === '--version' || process.argv[2] === '-V') {
  process.stdout.write(`${(await import('../core/version.js')).outriggerVersion()}\n`);
  process.exit(0);
}

const { Command: CommandClass } = await import('commander');

type Loader = () => Promise<Command>;

/** In the order `outrigger --help` lists them. */
const COMMANDS: readonly (readonly [name: string, load: Loader, hidden?: boolean])[] = [
  ['demo', async () => (await import('./demo.js')).demoCommand()],
  ['lab', async () => (await import('./lab.js')).labCommand()],
  ['up', async () => (await import('./up.js')).upCommand()],
  ['apply', async () => (await import('./apply.js')).applyCommand()],
  ['get', async () => (await import('./get.js')).getCommand()],
  ['logs', async () => (await import('./logs.js')).logsCommand()],
  ['exec', async () => (await import('./exec.js')).execCommand()],
  ['identity', async () => (await import('./identity.js')).identityCommand()],
  ['trust', async () => (await import('./trust.js')).trustCommand()],
  ['authz', async () => (await import('./authz.js')).authzCommand()],
  ['tap', async () => (await import('./tap.js')).tapCommand()],
  ['prometheus-config', async () => (await import('./prometheus-config.js')).prometheusConfigCommand()],
  ['stat', async () => (await import('./stat.js')).statCommand()],
  ['top', async () => (await import('./top.js')).topCommand()],
  ['routes', async () => (await import('./routes.js')).routesCommand()],
  ['dashboard', async () => (await import('./dashboard.js')).dashboardCommand()],
  ['down', async () => (await import('./down.js')).downCommand()],
  ['version', async () => (await import('./version.js')).versionCommand()],
  // Listed here only (`outrigger --help`, `outrigger help proxy`, with the proxy's own help text); it
  // runs from the top of this file.
  [
    'proxy',
    async () => {
      const [{ PROXY_DESCRIPTION, proxyHelp }, { SETTINGS }] = await Promise.all([
        import('./proxy.js'),
        import('../proxy/env.js'),
      ]);
      const cmd = new CommandClass('proxy')
        .description(PROXY_DESCRIPTION)
        .configureHelp({ formatHelp: () => proxyHelp() });
      for (const spec of Object.values(SETTINGS)) cmd.option(`--${spec.flag} <value>`, spec.help);
      return cmd;
    },
  ],
  ['install', async () => (await import('./install.js')).installCommand()],
  ['uninstall', async () => (await import('./uninstall.js')).uninstallCommand()],
  ['inject', async () => (await import('./inject.js')).injectCommand()],
  ['check', async () => (await import('./check.js')).checkCommand()],
  ['proxy-init', async () => (await import('./proxy-init.js')).proxyInitCommand()],
  ['control-plane', async () => (await import('./control-plane.js')).controlPlaneCommand()],
  ['control', async () => (await import('./control.js')).controlCommand(), true],
];

const program = new CommandClass('outrigger')
  .description('Outrigger: a service mesh whose proxy runs beside every pod')
  .version((await import('../core/version.js')).outriggerVersion(), '-V, --version', "show the CLI's version")
  .showHelpAfterError()
  // The program's own options (only --version) come before a command: after it, every argument is the
  // command's, so that a command's subcommand (`install trust-rotation`) can have options of the same
  // name as its parent's (-n, -o).
  .enablePositionalOptions();
const asked = COMMANDS.find(([name]) => name === process.argv[2]);
// A known command: only its module. Anything else (help, a typo): all of them, for the listing.
for (const [, load, hidden] of asked !== undefined ? [asked] : COMMANDS) {
  program.addCommand(await load(), hidden === true ? { hidden: true } : {});
}

await program.parseAsync(process.argv);
