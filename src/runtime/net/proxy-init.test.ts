import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_PROXY_INIT, multiportChunks, renderProxyInitRules } from './proxy-init.js';

void test('default rules: inbound to 4143 except 4190,4191; outbound to 4140 except uid 2102 and lo', () => {
  assert.equal(
    renderProxyInitRules(DEFAULT_PROXY_INIT, 'default/web-0'),
    [
      '# outrigger proxy-init for default/web-0',
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':INPUT ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':POSTROUTING ACCEPT [0:0]',
      ':OUTR-INBOUND - [0:0]',
      ':OUTR-OUTBOUND - [0:0]',
      '-A PREROUTING -p tcp -m comment --comment "outrigger: inbound to the proxy" -j OUTR-INBOUND',
      '-A OUTR-INBOUND -p tcp -m multiport --dports 4190,4191 -j RETURN',
      '-A OUTR-INBOUND -p tcp -j REDIRECT --to-ports 4143',
      '-A OUTPUT -p tcp -m comment --comment "outrigger: outbound to the proxy" -j OUTR-OUTBOUND',
      '-A OUTR-OUTBOUND -m owner --uid-owner 2102 -j RETURN',
      '-A OUTR-OUTBOUND -o lo -j RETURN',
      '-A OUTR-OUTBOUND -p tcp -j REDIRECT --to-ports 4140',
      'COMMIT',
      '',
    ].join('\n'),
  );
});

void test('skip ports become RETURN rules, ranges with a colon', () => {
  const text = renderProxyInitRules({
    ...DEFAULT_PROXY_INIT,
    skipInboundPorts: [{ from: 22, to: 22 }],
    skipOutboundPorts: [
      { from: 25, to: 25 },
      { from: 3306, to: 3310 },
    ],
  });
  assert.match(text, /^-A OUTR-INBOUND -p tcp -m multiport --dports 4190,4191,22 -j RETURN$/m);
  assert.match(text, /^-A OUTR-OUTBOUND -p tcp -m multiport --dports 25,3306:3310 -j RETURN$/m);
});

void test('multiport lists are split at 15 slots, a range taking two', () => {
  const singles = Array.from({ length: 16 }, (_, i) => ({ from: 1000 + i, to: 1000 + i }));
  assert.deepEqual(
    multiportChunks(singles).map((c) => c.split(',').length),
    [15, 1],
  );
  const ranges = Array.from({ length: 8 }, (_, i) => ({ from: 2000 + 10 * i, to: 2005 + 10 * i }));
  assert.deepEqual(
    multiportChunks(ranges).map((c) => c.split(',').length),
    [7, 1],
  );
  assert.deepEqual(multiportChunks([]), []);
});

void test('bad ports and uids are refused', () => {
  assert.throws(
    () => renderProxyInitRules({ ...DEFAULT_PROXY_INIT, outboundPort: 0 }),
    /outboundPort must be an integer from 1 to 65535, got 0/,
  );
  assert.throws(() => renderProxyInitRules({ ...DEFAULT_PROXY_INIT, proxyUid: -1 }), /proxyUid/);
});

void test('applyProxyInit: the same rules, through iptables-restore in the current namespace or in a named one', async () => {
  const { applyProxyInit } = await import('./proxy-init.js');
  const calls: { file: string; args: readonly string[]; input?: string }[] = [];
  const run = (file: string, args: readonly string[], opts?: { input?: string }) => {
    calls.push({ file, args, ...(opts?.input !== undefined ? { input: opts.input } : {}) });
    return Promise.resolve({ stdout: '', stderr: '' });
  };
  const cfg = {
    ...DEFAULT_PROXY_INIT,
    skipInboundPorts: [{ from: 22, to: 22 }],
    skipOutboundPorts: [{ from: 5432, to: 5433 }],
  };
  const text = await applyProxyInit(run, cfg, { iptables: 'iptables-nft', label: 'shop/web-0' });
  assert.deepEqual(calls[0], {
    file: 'iptables-nft-restore',
    args: ['-w'],
    input: renderProxyInitRules(cfg, 'shop/web-0'),
  });
  assert.equal(text, calls[0]?.input);
  await applyProxyInit(run, cfg, { iptables: 'iptables', netns: 'outr-pod-1' });
  assert.deepEqual(calls[1]?.file, 'ip');
  assert.deepEqual(calls[1]?.args, ['netns', 'exec', 'outr-pod-1', 'iptables-restore', '-w']);
});
