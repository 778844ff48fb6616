// The state directory without root: file modes, a stale pid file, and what `down` keeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readJson,
  recordedControlPid,
  removeStateFiles,
  runningControlPid,
  statePaths,
  writeJsonAtomic,
} from './state.js';

void test('state: JSON is written 0600 and read back; a missing file reads as undefined', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const p = statePaths(dir);
  await writeJsonAtomic(p.state, { phase: 'Ready' });
  assert.equal((await stat(p.state)).mode & 0o777, 0o600);
  assert.deepEqual(await readJson(p.state), { phase: 'Ready' });
  assert.equal(await readJson(p.net), undefined);
  assert.deepEqual((await readdir(dir)).sort(), ['state.json'], 'no temporary file left');
});

void test('state: a pid file whose process is not our control process is not a running mesh', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(runningControlPid(dir), undefined);
  // This test's own pid: alive, but its command line is not `outrigger control --state-dir=<dir>`.
  await writeFile(statePaths(dir).pid, `${process.pid}\n`);
  assert.equal(runningControlPid(dir), undefined);
  assert.equal(recordedControlPid(dir), process.pid);
});

void test('state: removeStateFiles keeps the logs', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const p = statePaths(dir);
  for (const f of [p.net, p.state, p.pid, p.controlLog]) await writeFile(f, 'x');
  await mkdir(join(p.pods, 'default', 'web'), { recursive: true });
  await writeFile(join(p.pods, 'default', 'web', 'http.log'), 'x');
  await removeStateFiles(dir, { control: false });
  assert.deepEqual((await readdir(dir)).sort(), ['control.log', 'control.pid', 'pods']);
  await removeStateFiles(dir);
  assert.deepEqual((await readdir(dir)).sort(), ['control.log', 'pods']);
});
