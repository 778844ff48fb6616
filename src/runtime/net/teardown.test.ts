import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError, type Runner } from './exec.js';
import type { NetRecord } from './record.js';
import { TeardownError, teardownNetwork } from './teardown.js';

/** A host with nothing on it: no links, no namespaces, an empty FORWARD chain. Records each call. */
function emptyHost(calls: string[][]): Runner {
  return (file, args) => {
    calls.push([file, ...args]);
    const cmd = [file, ...args].join(' ');
    if (cmd.startsWith('ip -j')) return Promise.resolve({ stdout: '[]', stderr: '' });
    if (cmd === 'iptables -w -S FORWARD') return Promise.resolve({ stdout: '-P FORWARD ACCEPT\n', stderr: '' });
    return Promise.reject(new CommandError([file, ...args], 1, 'No chain/target/match by that name.'));
  };
}

void test('teardown of nothing is a no-op that deletes nothing', async () => {
  const calls: string[][] = [];
  const report = await teardownNetwork(
    {
      version: 1,
      bridge: 'tb0',
      podCidr: '10.250.9.0/24',
      gateway: '10.250.9.1',
      iptables: 'iptables',
      etcNetnsDir: '/nonexistent-etc-netns',
      forwardChain: 'OUTR-FWD-tb0',
      pods: [],
    },
    { runner: emptyHost(calls) },
  );
  assert.deepEqual(report, { removed: [], warnings: [] });
  assert.ok(!calls.some((c) => c.includes('del') || c.includes('-D') || c.includes('-X')), JSON.stringify(calls));
});

void test('a damaged record cannot make teardown delete a directory that is not ours', async (t) => {
  const etc = await mkdtemp(join(tmpdir(), 'outr-teardown-test-'));
  t.after(() => rm(etc, { recursive: true, force: true }));
  await mkdir(join(etc, 'outr-tb0-default.a'));
  await mkdir(join(etc, 'precious'));
  const rec: NetRecord = {
    version: 1,
    bridge: 'tb0',
    podCidr: '10.250.9.0/24',
    gateway: '10.250.9.1',
    iptables: 'iptables',
    etcNetnsDir: etc,
    forwardChain: 'OUTR-FWD-tb0',
    pods: [
      {
        pod: 'default/x',
        netns: 'outr-tb0-default.x',
        veth: 'vo0000000000',
        ip: '10.250.9.2',
        etcDir: join(etc, 'precious'),
      },
    ],
  };
  await assert.rejects(teardownNetwork(rec, { runner: emptyHost([]) }), (err: unknown) => {
    assert.ok(err instanceof TeardownError);
    assert.match(err.message, /precious: not removed: not an outrigger directory/);
    // Everything else still ran: the leftover directory with our prefix is gone.
    assert.deepEqual(err.report.removed, [`dir ${join(etc, 'outr-tb0-default.a')}`]);
    return true;
  });
  await stat(join(etc, 'precious'));
  await assert.rejects(stat(join(etc, 'outr-tb0-default.a')), /ENOENT/);
});
