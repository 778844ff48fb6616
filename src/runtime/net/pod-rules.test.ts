import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr } from './cidr.js';
import { renderPodRules } from './pod-rules.js';
import { DEFAULT_PROXY_INIT, renderProxyInitRules } from './proxy-init.js';

const web = {
  label: 'default/web:80',
  ip: '10.96.0.2',
  port: 80,
  endpoints: [
    { ip: '10.244.0.2', port: 8080 },
    { ip: '10.244.0.3', port: 8080 },
    { ip: '10.244.0.4', port: 8080 },
  ],
};

void test('an unmeshed pod: Service addresses translated with an even split, nothing redirected', () => {
  const text = renderPodRules({ pod: 'default/client', services: [web], serviceCidr: parseCidr('10.96.0.0/16') });
  const dnat = text.split('\n').filter((l) => l.includes('DNAT'));
  assert.equal(dnat.length, 3);
  // 1/3 of all, then 1/2 of the rest, then the rest: each endpoint gets a third.
  assert.match(dnat[0] ?? '', /--probability 0\.3333333333 -j DNAT --to-destination 10\.244\.0\.2:8080$/);
  assert.match(dnat[1] ?? '', /--probability 0\.5000000000 -j DNAT --to-destination 10\.244\.0\.3:8080$/);
  assert.match(
    dnat[2] ?? '',
    /-d 10\.96\.0\.2\/32 -p tcp -m tcp --dport 80 -m comment --comment "default\/web:80" -j DNAT --to-destination 10\.244\.0\.4:8080$/,
  );
  assert.doesNotMatch(text, /REDIRECT/);
  assert.match(text, /-A OUTR-SERVICES -d 10\.96\.0\.0\/16 -p tcp .* -j REJECT --reject-with tcp-reset/);
});

void test('a meshed pod: proxy-init first, then the Service rules; a Service without endpoints is refused', () => {
  const text = renderPodRules({
    pod: 'default/web-0',
    proxyInit: DEFAULT_PROXY_INIT,
    services: [{ ...web, endpoints: [] }],
  });
  const lines = text.split('\n');
  const outbound = lines.indexOf(
    '-A OUTPUT -p tcp -m comment --comment "outrigger: outbound to the proxy" -j OUTR-OUTBOUND',
  );
  const services = lines.indexOf(
    '-A OUTPUT -p tcp -m comment --comment "outrigger: service addresses" -j OUTR-SERVICES',
  );
  assert.ok(outbound > 0 && services > outbound, 'the proxy redirect comes before the Service translation');
  assert.match(
    text,
    /-A OUTR-SERVICES -d 10\.96\.0\.2\/32 -p tcp -m tcp --dport 80 .* -j REJECT --reject-with tcp-reset/,
  );
  assert.doesNotMatch(text, /DNAT/);
  // The proxy-init part is the same rules renderProxyInitRules gives on its own.
  for (const l of renderProxyInitRules(DEFAULT_PROXY_INIT)
    .split('\n')
    .filter((x) => x.startsWith('-A')))
    assert.ok(lines.includes(l), l);
});
