// Running the proxy as its uid: in place when the project is readable, from a copy in the state
// directory when it is not (a clone in a private home directory). The uid part needs root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ORIGDST_ADDON_ENV } from '../../proxy/transport/origdst.js';
import { placedArgv, runBounded } from './launch.js';
import { PROXY_NODE_OPTIONS } from '../../proxy/node-options.js';
import { copyProxyFiles, PACKAGE_ROOT, productionPackages, resolveProxyCommand } from './proxy-command.js';

const PROXY = { uid: 2102, gid: 2102 };

void test('proxy files: the production dependency closure, without dev tools', async () => {
  const pkgs = await productionPackages(PACKAGE_ROOT);
  for (const p of [
    'node_modules/commander',
    'node_modules/pino',
    'node_modules/prom-client',
    'node_modules/zod',
    'node_modules/sonic-boom',
  ])
    assert.ok(pkgs.includes(p), p);
  for (const p of pkgs) assert.doesNotMatch(p, /typescript|eslint|node-gyp/);
});

const isRoot = process.getuid?.() === 0;
const why = 'needs root to run a process as uid 2102';
if (!isRoot && process.env.CI === 'true') {
  void test('proxy command as uid 2102', () =>
    assert.fail(`proxy-command.test.js ${why}, and CI=true: run CI as root`));
} else if (!isRoot) {
  process.stderr.write(`\n!!! SKIPPING the uid part of proxy-command.test.ts: it ${why} !!!\n\n`);
  void test('proxy command as uid 2102', { skip: `SKIPPED: ${why}` }, () => undefined);
} else {
  void test(
    'proxy command: in place when readable; staged into the state dir from a private clone',
    { timeout: 60_000 },
    async (t) => {
      const work = await mkdtemp(join(tmpdir(), 'outr-pc-test-'));
      t.after(() => rm(work, { recursive: true, force: true }));
      const readable = (await stat(PACKAGE_ROOT)).mode & 0o005;
      const stateDir = join(work, 'state');
      if (readable) {
        const cmd = await resolveProxyCommand({ user: PROXY, stateDir });
        assert.equal(cmd.staged, false, 'a world-readable project runs in place');
        // The proxy's V8 settings come first, as node's own flags, then the CLI.
        assert.deepEqual(cmd.argv.slice(1), [
          ...PROXY_NODE_OPTIONS,
          join(PACKAGE_ROOT, 'bin', 'outrigger.js'),
          'proxy',
        ]);
      }
      // A "clone in a private home": a complete copy inside a 0700 directory.
      const home = join(work, 'home');
      await copyProxyFiles(PACKAGE_ROOT, join(home, 'outrigger'));
      await chmod(home, 0o700);
      await chmod(work, 0o755);
      const staged = await resolveProxyCommand({ user: PROXY, stateDir, packageRoot: join(home, 'outrigger') });
      assert.equal(staged.staged, true);
      assert.deepEqual(staged.argv.slice(1, 1 + PROXY_NODE_OPTIONS.length), PROXY_NODE_OPTIONS);
      assert.ok(staged.root.startsWith(join(stateDir, 'proxy') + '/'), staged.root);
      const help = await runBounded(placedArgv({ user: PROXY }, [...staged.argv, '--help']), {
        env: { PATH: process.env.PATH ?? '' },
        cwd: '/',
        timeoutMs: 20_000,
      });
      assert.equal(help.code, 0, help.output);
      assert.match(help.output, /--opaque-ports/);
      const again = await resolveProxyCommand({ user: PROXY, stateDir, packageRoot: join(home, 'outrigger') });
      assert.equal(again.root, staged.root, 'the copy is reused');

      // A state dir the uid cannot reach: a clear error naming the fix.
      const hidden = join(work, 'hidden');
      await mkdir(hidden, { mode: 0o700 });
      await assert.rejects(
        resolveProxyCommand({ user: PROXY, stateDir: join(hidden, 'state'), packageRoot: join(home, 'outrigger') }),
        /the proxy cannot run as uid 2102: .*must be searchable by uid 2102/s,
      );
    },
  );

  void test(
    'proxy command: another build of the addon ($OUTRIGGER_ORIGDST_ADDON) is handed to a proxy run in place, and is the one a copy holds',
    { timeout: 60_000 },
    async (t) => {
      const work = await mkdtemp(join(tmpdir(), 'outr-pc-addon-'));
      await chmod(work, 0o755);
      const saved = process.env[ORIGDST_ADDON_ENV];
      t.after(async () => {
        if (saved === undefined) delete process.env[ORIGDST_ADDON_ENV];
        else process.env[ORIGDST_ADDON_ENV] = saved;
        await rm(work, { recursive: true, force: true });
      });
      // "Another build": the same addon with a few bytes after its end (the dynamic loader ignores them).
      const other = join(work, 'origdst-other.node');
      await copyFile(join(PACKAGE_ROOT, 'native', 'build', 'Release', 'origdst.node'), other);
      await appendFile(other, 'outrigger test: another build');
      await chmod(other, 0o755);
      process.env[ORIGDST_ADDON_ENV] = other;

      if ((await stat(PACKAGE_ROOT)).mode & 0o005) {
        const cmd = await resolveProxyCommand({ user: PROXY, stateDir: join(work, 'state') });
        assert.equal(cmd.staged, false);
        assert.deepEqual(cmd.env, { [ORIGDST_ADDON_ENV]: other });
      }
      // What a staged copy is made with: the other build goes where the proxy looks by default, so a
      // proxy run from the copy needs no variable.
      await copyProxyFiles(PACKAGE_ROOT, join(work, 'copy'));
      assert.ok(
        (await readFile(join(work, 'copy', 'native', 'build', 'Release', 'origdst.node'))).equals(
          await readFile(other),
        ),
      );
    },
  );
}
