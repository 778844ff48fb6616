// `outrigger --version` and `outrigger version` without a mesh, and the table a running mesh gives
// (the running mesh itself: test/runtime-cli.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { outriggerVersion } from '../core/version.js';
import { formatVersionReport } from './version.js';

const BIN = fileURLToPath(new URL('../../../bin/outrigger.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

void test('outrigger --version and -V print the version alone', () => {
  for (const flag of ['--version', '-V']) {
    const r = run(flag);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${outriggerVersion()}\n`);
  }
});

void test('outrigger version without a mesh: the client, and that no mesh runs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-version-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const r = run('version', '--state-dir', dir);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    r.stdout,
    `Client version:  ${outriggerVersion()} (node ${process.version})\nControl process: no mesh is running in ${dir}\n`,
  );
  const j = run('version', '--client', '-o', 'json');
  assert.equal(j.status, 0, j.stderr);
  assert.deepEqual(JSON.parse(j.stdout), {
    client: { version: outriggerVersion(), node: process.version },
    proxies: [],
  });
});

void test('the version table: one line a proxy, and why a part did not answer', () => {
  const text = formatVersionReport(
    {
      client: { version: '0.2.0', node: 'v24.11.0' },
      control: { version: '0.2.0', node: 'v24.11.0' },
      proxies: [
        { namespace: 'shop', pod: 'web-7d9f-abcde', version: '0.1.0', node: 'v24.11.0' },
        { namespace: 'default', pod: 'client', error: 'no answer within 3000 ms' },
      ],
    },
    '/var/run/outrigger',
  );
  assert.equal(
    text,
    [
      'Client version:  0.2.0 (node v24.11.0)',
      'Control process: 0.2.0 (node v24.11.0)',
      'Proxies:',
      'NAMESPACE  POD             VERSION',
      'shop       web-7d9f-abcde  0.1.0 (node v24.11.0)',
      'default    client          unavailable (no answer within 3000 ms)',
      '',
    ].join('\n'),
  );
  const none = formatVersionReport(
    { client: { version: '1', node: 'v' }, control: { version: '1', node: 'v' }, proxies: [] },
    '/d',
  );
  assert.match(none, /Proxies: +none \(no meshed pods\)/);
});
