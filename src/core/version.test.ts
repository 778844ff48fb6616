// The version read from package.json is the package's own, and the view names the runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { outriggerVersion, versionView } from './version.js';

void test('outriggerVersion is the version in package.json; versionView adds the Node.js version', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  assert.match(pkg.version, /^\d+\.\d+\.\d+/);
  assert.equal(outriggerVersion(), pkg.version);
  assert.deepEqual(versionView(), { version: pkg.version, node: process.version });
});
