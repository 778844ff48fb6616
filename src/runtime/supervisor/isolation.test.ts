import { test } from 'node:test';
import assert from 'node:assert/strict';
import { effectiveCapabilities } from '../../manifests/security.js';
import { cfsQuota, cgroupRootsOf, cpuShares, cpuWeight } from './cgroups.js';
import { enterArgv, isolatedArgv } from './isolation.js';

void test('capabilities: the runtime default has no NET_ADMIN, NET_RAW, SYS_ADMIN or SYS_PTRACE; add and drop apply', () => {
  const d = effectiveCapabilities({});
  for (const c of ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE']) assert.ok(!d.includes(c), c);
  assert.ok(d.includes('NET_BIND_SERVICE'));
  assert.deepEqual(effectiveCapabilities({ drop: ['ALL'], add: ['NET_RAW'] }), ['NET_RAW']);
  assert.ok(!effectiveCapabilities({ drop: ['CHOWN'] }).includes('CHOWN'));
});

void test('isolatedArgv: netns, then unshare, the init with its steps, then env and setpriv', () => {
  const argv = isolatedArgv(
    'ns1',
    {
      hide: ['/state'],
      keep: ['/state/tokens/a'],
      runDir: '/state/pods/a/run/c',
      binds: [{ source: '/state/v', target: '/data', readOnly: true }],
      writable: ['/tmp'],
      workingDir: '/w',
      privileges: { uid: 1000, gid: 1000, capabilities: ['NET_BIND_SERVICE'] },
    },
    ['app', '--flag'],
  );
  assert.deepEqual(argv.slice(0, 5), ['ip', 'netns', 'exec', 'ns1', 'unshare']);
  assert.ok(argv.includes('--kill-child') && argv.includes('--pid') && argv.includes('--mount'));
  const init = argv.indexOf('outrigger-init');
  const end = argv.indexOf('--', init);
  assert.deepEqual(argv.slice(init + 1, end), [
    ...['keep', '/state/tokens/a', 'bind', '/state/v', '/data', 'ro', 'run', '/state/pods/a/run/c'],
    ...['writable', '/tmp', 'readonly', 'hide', '/state', 'cd', '/w'],
  ]);
  assert.deepEqual(argv.slice(end + 1), [
    ...['env', '--default-signal=INT,QUIT', 'setpriv', '--reuid=1000', '--regid=1000', '--clear-groups'],
    ...['--bounding-set=-all,+net_bind_service', '--inh-caps=-all', '--nnp', '--', 'app', '--flag'],
  ]);
  const e = enterArgv(42, { uid: 0, gid: 0, capabilities: [] }, ['sh'], '/w');
  assert.deepEqual(e.slice(0, 6), ['nsenter', '--target=42', '--mount', '--pid', '--net', '--wd=/w']);
});

void test('cgroups: v1 roots per controller below this process, v2 when only the unified hierarchy has them', () => {
  const mountinfo = [
    '30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
    '32 25 0:28 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
  ].join('\n');
  const self = '4:memory:/a/b\n3:cpu,cpuacct:/\n2:pids:/a\n0::/';
  assert.deepEqual(cgroupRootsOf(mountinfo, self), {
    version: 1,
    base: {
      memory: '/sys/fs/cgroup/memory/a/b',
      cpu: '/sys/fs/cgroup/cpu,cpuacct',
      cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
      pids: '/sys/fs/cgroup/pids/a',
    },
  });
  const v2 = cgroupRootsOf('40 25 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw', '0::/user.slice/x.scope');
  assert.deepEqual(v2, { version: 2, base: '/sys/fs/cgroup/user.slice/x.scope' });
  const none = cgroupRootsOf(mountinfo.split('\n')[0] ?? '', self);
  assert.match((none as { problem: string }).problem, /cpu, cpuacct, pids/);
  assert.equal(cpuShares(100), 102);
  assert.equal(cpuShares(1), 2);
  assert.equal(cpuWeight(1024), 39);
  assert.equal(cfsQuota(500), 50_000);
});

void test('isolatedArgv: the holder makes the pod PID namespace and holds it; a member joins it by the holder pid', () => {
  const base = {
    hide: ['/state'],
    keep: [],
    runDir: '/state/pods/a/run/c',
    binds: [],
    writable: [],
    workingDir: '/',
    privileges: { uid: 65535, gid: 65535, capabilities: [] },
  };
  const hold = isolatedArgv('ns1', { ...base, pidNamespace: 'hold' }, ['sleep', '9']);
  assert.deepEqual(hold.slice(4, 6), ['unshare', '--pid']);
  const holdInit = hold.indexOf('outrigger-init');
  assert.equal(hold[hold.indexOf('--', holdInit) - 1], 'hold');
  const join = isolatedArgv('ns1', { ...base, pidNamespace: 'join' }, ['app'], { holderPid: 4242 });
  assert.deepEqual(join.slice(4, 12), [
    ...['nsenter', '--pid=/proc/4242/ns/pid', '--no-fork', '--', 'unshare'],
    ...['--mount', '--fork', '--kill-child'],
  ]);
  assert.ok(!join.includes('--pid') && !join.includes('hold'));
  assert.throws(() => isolatedArgv('ns1', { ...base, pidNamespace: 'join' }, ['app']), /join pid/);
  assert.throws(() => isolatedArgv('ns1', base, ['app'], { holderPid: 7 }), /join pid/);
});
