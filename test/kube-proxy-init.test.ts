// `outrigger proxy-init` as the injected init container runs it, for real: in a fresh network
// namespace (standing in for the pod's), with the arguments the injector writes, as root. The rules it
// installs are read back with iptables and must be the local runtime's proxy-init rules, and running it
// twice (an init container restarted) changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { injectObject } from '../src/kube/inject.js';
import { DEFAULT_PROXY_INIT, renderProxyInitRules } from '../src/runtime/net/proxy-init.js';
import { BIN, meshPreconditions, show, unavailable } from './root-helpers.js';

const run = (argv: string[]) => {
  const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
};

void test("proxy-init in a network namespace writes the local runtime's rules; twice is the same", (t) => {
  const why = meshPreconditions([
    ['ip', '-V'],
    ['iptables', '--version'],
  ]);
  if (why !== undefined) {
    unavailable(t, 'kube-proxy-init.test.ts', 'the proxy-init test', why, 'ip and iptables');
    return;
  }
  const ns = `outr-kt-${randomBytes(3).toString('hex')}`;
  assert.equal(run(['ip', 'netns', 'add', ns]).code, 0);
  t.after(() => void run(['ip', 'netns', 'del', ns]));
  const pod = {
    kind: 'Pod',
    metadata: {
      annotations: {
        'config.outrigger.io/skip-inbound-ports': '22',
        'config.outrigger.io/skip-outbound-ports': '5432-5433',
      },
    },
    spec: { containers: [{ name: 'a', image: 'a' }] },
  };
  const { ops } = injectObject(
    pod,
    {},
    {
      image: 'x',
      controlAddr: 'c:1',
      trustDomain: 'cluster.local',
      controlIdentity: 'spiffe://cluster.local/ns/outrigger/sa/outrigger-control-plane',
    },
    'offline',
  );
  const args = (
    (ops.find((o) => o.path === '/spec/initContainers')?.value as { args: string[] }[])[0] as { args: string[] }
  ).args;
  for (let i = 0; i < 2; i++) {
    const r = run(['ip', 'netns', 'exec', ns, process.execPath, BIN, ...args]);
    assert.equal(r.code, 0, show(r));
  }
  const listed = run(['ip', 'netns', 'exec', ns, 'iptables', '-w', '-t', 'nat', '-S']);
  assert.equal(listed.code, 0, show(listed));
  const rules = listed.stdout.split('\n').filter((l) => l.startsWith('-A'));
  const expected = renderProxyInitRules({
    ...DEFAULT_PROXY_INIT,
    skipInboundPorts: [{ from: 22, to: 22 }],
    skipOutboundPorts: [{ from: 5432, to: 5433 }],
  })
    .split('\n')
    .filter((l) => l.startsWith('-A'));
  // iptables -S prints the rules as it normalised them (e.g. `-m comment` and `-m tcp` placement);
  // compare what matters: each rule's chain, ports and target.
  const key = (l: string) =>
    [l.split(' ')[1], ...(l.match(/--dports \S+|--to-ports \d+|--uid-owner \d+|-o lo|-j \S+/g) ?? [])].join(' ');
  // iptables lists chain by chain; the order within each chain is what counts.
  const byChain = (ls: string[]) => {
    const m: Record<string, string[]> = {};
    for (const l of ls) (m[l.split(' ')[1] as string] ??= []).push(key(l));
    return m;
  };
  assert.deepEqual(byChain(rules), byChain(expected), listed.stdout);
  assert.equal(rules.length, expected.length, 'applied twice, the rules are there once');
});
