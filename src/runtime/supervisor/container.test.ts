// Container supervision on the host's own namespace (no root needed): restarts with backoff, log
// markers, the record written before the process runs, stopping whole groups, start errors, readiness,
// and finding processes again after the runtime was killed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../../../test/basics.js';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { open } from 'node:fs/promises';
import { Container, type ContainerSpec } from './container.js';
import { spawnGated, GATE_CLOSED_EXIT } from './launch.js';
import { isGone } from './proc.js';
import { killRecordedProcesses, podStateDir, recordPath } from './record.js';

const PATH = process.env.PATH ?? '/usr/bin:/bin';
const fast = { initialMs: 50, maxMs: 200, resetAfterMs: 10_000 };

async function setup(t: {
  after: (fn: () => Promise<void>) => void;
}): Promise<{ stateDir: string; podDir: string; make: (s: Partial<ContainerSpec> & { argv: string[] }) => Container }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'outr-sv-test-'));
  const podDir = podStateDir(stateDir, 'default', 'p');
  const made: Container[] = [];
  t.after(async () => {
    await Promise.all(made.map((c) => c.stop(100).catch(() => undefined)));
    await rm(stateDir, { recursive: true, force: true });
  });
  const make = (s: Partial<ContainerSpec> & { argv: string[] }) => {
    const c = new Container(
      { name: 'c', env: { PATH }, restartPolicy: 'Always', terminationGraceMs: 2000, ...s },
      { pod: { namespace: 'default', name: 'p' }, podDir, backoff: fast },
    );
    made.push(c);
    return c;
  };
  return { stateDir, podDir, make };
}

void test('container: a crashing process is restarted with growing backoff, counted, each start marked in its log', async (t) => {
  const { make } = await setup(t);
  const c = make({ argv: ['sh', '-c', 'echo "run $$"; exit 7'] });
  const delays: number[] = [];
  const codes = new Set<number>();
  c.on('exit', (e) => {
    if (e.restartInMs === undefined) return; // the stop at the end
    codes.add(e.termination.exitCode);
    delays.push(e.restartInMs);
  });
  await c.start();
  await waitFor('three restarts', () => c.status().restarts >= 3, 10_000);
  await c.stop();
  assert.deepEqual(delays.slice(0, 3), [50, 100, 200], 'the delay doubles up to maxMs');
  assert.deepEqual([...codes], [7]);
  const log = await readFile(c.logFile, 'utf8');
  const starts = log.split('\n').filter((l) => /^\[outrigger [^\]]+\] start/.test(l));
  const runs = log.split('\n').filter((l) => l.startsWith('run '));
  assert.ok(starts.length >= 4, `a marker per start:\n${log}`);
  assert.match(starts[1] ?? '', /start \(restart 1\) of container c: pid \d+/);
  assert.ok(runs.length >= 3, 'the app ran at each start (the last may have been stopped at its gate)');
  assert.match(log, /exited with code 7 after [0-9.]+ s; restarting in 0\.1 s/);
  // Each start's marker, naming the pid, precedes that process's output: it waited at the gate until
  // the marker (and its record) were written.
  for (const run of runs) {
    const pid = run.slice('run '.length);
    const marker = log.search(new RegExp(`\\] start.*: pid ${pid}:`));
    assert.ok(marker !== -1 && marker < log.indexOf(run), `marker before output for pid ${pid}:\n${log}`);
  }
});

void test('container: OnFailure stops after success, Never after failure; phases of state', async (t) => {
  const { make } = await setup(t);
  const ok = make({ name: 'ok', argv: ['true'], restartPolicy: 'OnFailure' });
  const bad = make({ name: 'bad', argv: ['sh', '-c', 'exit 2'], restartPolicy: 'Never' });
  const flaky = make({ name: 'flaky', argv: ['sh', '-c', 'exit 2'], restartPolicy: 'OnFailure' });
  await Promise.all([ok.start(), bad.start(), flaky.start()]);
  await waitFor('ok and bad to finish', () => ok.status().finished && bad.status().finished);
  assert.deepEqual(
    [ok.status().state.state, ok.status().lastTermination?.reason, ok.status().restarts],
    ['terminated', 'Completed', 0],
  );
  assert.deepEqual(
    [bad.status().state.state, bad.status().lastTermination?.reason, bad.status().lastTermination?.exitCode],
    ['terminated', 'Error', 2],
  );
  await waitFor('flaky to restart', () => flaky.status().restarts >= 1);
  assert.equal(flaky.status().finished, false);
});

void test('container: the process record exists before the process runs, and is gone after stop', async (t) => {
  const { make, podDir } = await setup(t);
  const rec = recordPath(podDir, 'rec');
  const c = make({ name: 'rec', argv: ['sh', '-c', 'cat "$REC"; echo; exec sleep 30'], env: { PATH, REC: rec } });
  let pid = 0;
  c.on('start', (e) => (pid = e.pid));
  await c.start();
  await waitFor('the record in the log', async () => (await readFile(c.logFile, 'utf8')).includes('"runId"'));
  const line = (await readFile(c.logFile, 'utf8')).split('\n').find((l) => l.startsWith('{')) ?? '';
  const r = JSON.parse(line) as { pid: number; pod: string; container: string; netns: null };
  assert.deepEqual([r.pid, r.pod, r.container, r.netns], [pid, 'default/p', 'rec', null]);
  assert.equal(c.status().state.state, 'running');
  await c.stop();
  await assert.rejects(stat(rec), /ENOENT/);
  assert.equal(await isGone(pid), true);
});

void test('container: stop sends SIGTERM to the group, then SIGKILL after the grace period', async (t) => {
  const { make } = await setup(t);
  // Both the shell and its background child ignore SIGTERM (an ignored signal stays ignored across exec).
  const c = make({ name: 'stubborn', argv: ['sh', '-c', 'trap "" TERM; sleep 30 & echo "child=$!"; wait'] });
  await c.start();
  await waitFor('the child pid', async () => /child=\d+/.test(await readFile(c.logFile, 'utf8')));
  const child = Number(/child=(\d+)/.exec(await readFile(c.logFile, 'utf8'))?.[1]);
  const began = Date.now();
  await c.stop(300);
  const took = Date.now() - began;
  assert.ok(took >= 280, `SIGKILL only after the 300 ms grace, took ${took} ms`);
  assert.equal(await isGone(child), true, 'the background child went with the group');
  assert.equal(c.status().lastTermination?.signal, 'SIGKILL');
  assert.match(await readFile(c.logFile, 'utf8'), /did not stop within 0\.3 s: SIGKILL/);

  const polite = make({ name: 'polite', argv: ['sleep', '30'] });
  await polite.start();
  await polite.stop(5000);
  // A process that honours SIGTERM is not killed: its end was SIGTERM's, not SIGKILL's.
  assert.equal(polite.status().lastTermination?.signal, 'SIGTERM');
  assert.equal(polite.status().lastTermination?.exitCode, 143);
});

void test('container: children left behind when the main process exits are killed', async (t) => {
  const { make } = await setup(t);
  const c = make({ name: 'leaver', argv: ['sh', '-c', 'sleep 30 & echo "child=$!"'], restartPolicy: 'Never' });
  await c.start();
  await waitFor('exit', () => c.status().finished);
  const child = Number(/child=(\d+)/.exec(await readFile(c.logFile, 'utf8'))?.[1]);
  assert.ok(child > 0);
  await waitFor('the straggler to be gone', () => isGone(child));
});

void test('container: a command or workingDir that does not exist is a start error, retried with backoff', async (t) => {
  const { make } = await setup(t);
  const never = make({ name: 'nocmd', argv: ['no-such-command-outrigger'], restartPolicy: 'Never' });
  await never.start();
  const s = never.status();
  assert.equal(s.state.state, 'terminated');
  assert.equal(s.lastTermination?.reason, 'StartError');
  assert.match(s.lastTermination?.message ?? '', /command "no-such-command-outrigger" not found in PATH/);
  assert.equal(s.started, false);
  assert.match(await readFile(never.logFile, 'utf8'), /cannot start: command "no-such-command-outrigger" not found/);

  const retried = make({ name: 'nowd', argv: ['true'], workingDir: '/nonexistent/dir' });
  await retried.start();
  await waitFor('retries', () => retried.status().restarts >= 2);
  assert.equal(retried.status().state.state, 'waiting');
  assert.match(retried.status().lastTermination?.message ?? '', /workingDir \/nonexistent\/dir does not exist/);
});

void test('container: workingDir and env reach the process', async (t) => {
  const { make, stateDir } = await setup(t);
  const c = make({
    name: 'wd',
    argv: ['sh', '-c', 'echo "$(pwd) $GREETING $OUTRIGGER_CONTAINER_RUN"'],
    workingDir: stateDir,
    env: { PATH, GREETING: 'hello' },
    restartPolicy: 'Never',
  });
  await c.start();
  await waitFor('exit', () => c.status().finished);
  assert.match(await readFile(c.logFile, 'utf8'), new RegExp(`^${stateDir} hello [0-9a-f-]{36}$`, 'm'));
});

void test('container: ready when running without a probe; with a probe, as the probe says', async (t) => {
  const { make, stateDir } = await setup(t);
  const plain = make({ name: 'plain', argv: ['sleep', '30'] });
  const events: string[] = [];
  plain.on('ready', () => events.push('ready'));
  await plain.start();
  assert.equal(plain.ready, true);
  assert.deepEqual(events, ['ready']);

  const flag = join(stateDir, 'ready-flag');
  const probed = make({
    name: 'probed',
    argv: ['sleep', '30'],
    readinessProbe: {
      action: { kind: 'exec', command: ['test', '-f', flag] },
      timing: { initialDelayMs: 0, periodMs: 50, timeoutMs: 1000, successThreshold: 1, failureThreshold: 1 },
    },
  });
  const changes: string[] = [];
  probed.on('ready', () => changes.push('ready'));
  probed.on('unready', (r) => changes.push(`unready: ${r?.message ?? ''}`));
  await probed.start();
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(probed.ready, false, 'not ready before the probe passes');
  assert.match(probed.status().lastProbe?.message ?? '', /exit 1/);
  await writeFile(flag, '');
  await waitFor('ready', () => probed.ready);
  await unlink(flag);
  await waitFor('unready', () => !probed.ready);
  assert.deepEqual(changes, ['ready', `unready: exec test -f ${flag}: exit 1`]);
  await probed.stop();
  assert.equal(probed.ready, false);
});

void test('container: after the runtime is killed, its processes are found and killed from the records', async (t) => {
  const stateDir = await mkdtemp(join(tmpdir(), 'outr-sv-crash-'));
  t.after(() => rm(stateDir, { recursive: true, force: true }));
  const url = new URL('./container.js', import.meta.url).href;
  const script = `
    const { Container } = await import(${JSON.stringify(url)});
    const c = new Container({ name: 'orphan', argv: ['sh', '-c', 'sleep 300 & echo child=$!; wait'], env: { PATH: ${JSON.stringify(PATH)} }, restartPolicy: 'Always', terminationGraceMs: 1000 },
      { pod: { namespace: 'default', name: 'crashy' }, podDir: ${JSON.stringify(join(stateDir, 'pods', 'default', 'crashy'))} });
    c.on('start', (e) => console.log('PID ' + e.pid));
    await c.start();
    setInterval(() => {}, 1000);`;
  const runtime = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  runtime.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the container to start', () => /PID \d+/.test(out));
  const pid = Number(/PID (\d+)/.exec(out)?.[1]);
  const log = join(stateDir, 'pods', 'default', 'crashy', 'orphan.log');
  await waitFor('its child', async () => /child=\d+/.test(await readFile(log, 'utf8').catch(() => '')));
  const child = Number(/child=(\d+)/.exec(await readFile(log, 'utf8'))?.[1]);
  runtime.kill('SIGKILL');
  await new Promise((r) => runtime.once('exit', r));
  assert.equal(await isGone(pid), false, 'the container outlives its runtime (its own session)');

  const report = await killRecordedProcesses(stateDir);
  // No cgroups recorded: this container was started without a pod cgroup (no limits asked).
  assert.deepEqual(report, { killed: [`default/crashy/orphan (pgid ${pid})`], problems: [], cgroups: [] });
  await waitFor('the group to be gone', async () => (await isGone(pid)) && (await isGone(child)));
  assert.deepEqual(
    await killRecordedProcesses(stateDir),
    { killed: [], problems: [], cgroups: [] },
    'records are removed: a second down is a no-op',
  );
});

void test('gate: a process whose gate closes without the go line exits without running anything', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'outr-sv-gate-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = await open(join(dir, 'log'), 'a');
  const g = await spawnGated({ argv: ['sh', '-c', 'echo RAN'], env: { PATH }, cwd: '/', logFd: log.fd });
  await log.close();
  const exited = new Promise<number | null>((r) => g.child.once('exit', (code) => r(code)));
  (g.child.stdio[3] as Writable).destroy();
  assert.equal(await exited, GATE_CLOSED_EXIT);
  assert.equal(await readFile(join(dir, 'log'), 'utf8'), '');
});

void test('container: a new runtime adopts the process an earlier one started, and restarts it when it ends', async (t) => {
  const { make } = await setup(t);
  // The earlier runtime's container; Never, so that only the adopter restarts the process.
  const first = make({ argv: ['sleep', '300'], restartPolicy: 'Never' });
  await first.start();
  const st = first.status().state;
  assert.equal(st.state, 'running');
  const pid = st.state === 'running' ? st.pid : 0;

  const nothing = make({ name: 'other', argv: ['sleep', '300'] });
  assert.equal(await nothing.adopt(), false, 'no record: nothing to adopt');

  const adopter = make({ argv: ['sleep', '300'] });
  assert.equal(await adopter.adopt({ wasReady: true }), true);
  const now = adopter.status();
  assert.deepEqual(
    [now.state.state, now.state.state === 'running' ? now.state.pid : 0, now.ready, now.restarts],
    ['running', pid, true, 0],
  );

  process.kill(-pid, 'SIGKILL');
  await waitFor(
    'the adopter to notice the end and start the container again',
    () => adopter.status().restarts === 1 && adopter.status().state.state === 'running',
    5000,
  );
  const after = adopter.status();
  assert.notEqual(after.state.state === 'running' ? after.state.pid : pid, pid);
  assert.match(after.lastTermination?.message ?? '', /exit status is unknown/);
  assert.equal(after.lastTermination?.reason, 'Error');
});
