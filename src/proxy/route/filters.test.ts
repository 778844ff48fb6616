import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Filter } from '../../api/destination.js';
import {
  compileFilters,
  hostOf,
  modifyHeaders,
  modifyPath,
  redirectLocation,
  rewriteRequest,
  shouldMirror,
  type CompiledFilters,
} from './filters.js';
import type { BackendChoice } from './split.js';

const shadow: BackendChoice = { service: 'shadow.default.svc.cluster.local:80', exists: true, endpoints: [] };
const compile = (filters: Filter[]): CompiledFilters =>
  compileFilters(filters, (s) => (s === shadow.service ? shadow : assert.fail(s)));

void test('request header modifier: set replaces every field of the name, add appends, remove drops, in place', () => {
  const f = compile([
    {
      type: 'REQUEST_HEADER_MODIFIER',
      header_modifier: {
        set: [{ name: 'X-Env', value: 'canary' }],
        add: [{ name: 'Accept', value: 'text/plain' }],
        remove: ['X-Debug'],
      },
    },
  ]);
  const fields = [
    'Host',
    'web',
    'x-env',
    'prod',
    'Accept',
    'application/json',
    'x-debug',
    '1',
    'X-ENV',
    'other',
    'X-Debug',
    '2',
    'Via',
    'a',
  ];
  assert.ok(f.request);
  modifyHeaders(fields, f.request);
  assert.deepEqual(fields, [
    'Host',
    'web',
    'Accept',
    'application/json',
    'Via',
    'a',
    'X-Env',
    'canary',
    'Accept',
    'text/plain',
  ]);
  // Set on a header that is absent adds it; an empty list stays valid.
  const empty: string[] = [];
  modifyHeaders(empty, f.request);
  assert.deepEqual(empty, ['X-Env', 'canary', 'Accept', 'text/plain']);
  assert.equal(f.response, undefined);
});

void test('response header modifier compiles separately', () => {
  const f = compile([{ type: 'RESPONSE_HEADER_MODIFIER', header_modifier: { set: [], add: [], remove: ['server'] } }]);
  const fields = ['Server', 'x', 'Date', 'y'];
  assert.ok(f.response);
  modifyHeaders(fields, f.response);
  assert.deepEqual(fields, ['Date', 'y']);
});

void test("path modifiers follow Gateway API's table", () => {
  const prefix = (value: string) => ({ type: 'REPLACE_PREFIX_MATCH' as const, value });
  const cases: [string, string, string, string][] = [
    // matched prefix, request path, replacement, result
    ['/foo', '/foo/bar', '/xyz', '/xyz/bar'],
    ['/foo', '/foo/bar', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo', '/foo/', '/xyz', '/xyz/'],
    ['/foo', '/foo', '/xyz/', '/xyz/'],
    ['/foo', '/foo/bar', '/', '/bar'],
    ['/foo', '/foo', '/', '/'],
    ['', '/foo/bar', '/xyz', '/xyz/foo/bar'],
  ];
  for (const [p, path, value, want] of cases)
    assert.equal(modifyPath(path, p, prefix(value)), want, `${p} ${path} ${value}`);
  assert.equal(modifyPath('/anything', undefined, { type: 'REPLACE_FULL_PATH', value: '/fixed' }), '/fixed');
});

void test('URL rewrite keeps the query and replaces the authority when asked', () => {
  const f = compile([
    {
      type: 'URL_REWRITE',
      url_rewrite: { hostname: 'api.internal', path: { type: 'REPLACE_PREFIX_MATCH', value: '/v2' } },
    },
  ]);
  assert.ok(f.rewrite);
  assert.deepEqual(rewriteRequest({ path: '/v1/users', query: 'a=1', authority: 'web:80' }, '/v1', f.rewrite), {
    target: '/v2/users?a=1',
    authority: 'api.internal',
  });
  const keepHost = compile([{ type: 'URL_REWRITE', url_rewrite: { hostname: '', path: null } }]).rewrite;
  assert.ok(keepHost);
  assert.deepEqual(rewriteRequest({ path: '/x', query: '', authority: 'web:80' }, undefined, keepHost), {
    target: '/x',
    authority: 'web:80',
  });
});

void test('redirects: scheme, host, port rules, path and query', () => {
  const r = (redirect: NonNullable<Filter['redirect']>) => {
    const c = compile([{ type: 'REQUEST_REDIRECT', redirect }]).redirect;
    assert.ok(c);
    return c;
  };
  const request = { scheme: 'http' as const, authority: 'web.default:8080', path: '/old/page', query: 'q=1' };
  assert.deepEqual(
    redirectLocation(
      request,
      undefined,
      r({ scheme: 'https', hostname: '', path: null, port: 0, status_code: 301 }),
      8080,
    ),
    {
      status: 301,
      location: 'https://web.default/old/page?q=1',
    },
  );
  assert.deepEqual(
    redirectLocation(
      request,
      '/old',
      r({
        scheme: '',
        hostname: 'new.example',
        path: { type: 'REPLACE_PREFIX_MATCH', value: '/new' },
        port: 0,
        status_code: 0,
      }),
      8080,
    ),
    {
      status: 302,
      location: 'http://new.example:8080/new/page?q=1',
    },
  );
  assert.equal(
    redirectLocation(
      { ...request, query: '' },
      undefined,
      r({ scheme: 'http', hostname: '', path: null, port: 80, status_code: 302 }),
      8080,
    ).location,
    'http://web.default/old/page',
  );
  assert.equal(
    redirectLocation(
      { ...request, authority: '[fd00::1]:80' },
      undefined,
      r({ scheme: 'https', hostname: '', path: null, port: 8443, status_code: 302 }),
      80,
    ).location,
    'https://[fd00::1]:8443/old/page?q=1',
  );
  assert.equal(hostOf('a.b:80'), 'a.b');
  assert.equal(hostOf('a.b'), 'a.b');
});

void test('mirrors: the share by the injected random number; all and none need no number', () => {
  const f = compile([
    { type: 'REQUEST_MIRROR', mirror: { backend: shadow.service, numerator: 25, denominator: 100 } },
    { type: 'REQUEST_MIRROR', mirror: { backend: shadow.service, numerator: 100, denominator: 100 } },
  ]);
  const [quarter, all] = f.mirrors;
  assert.ok(quarter && all);
  assert.equal(quarter.backend, shadow);
  assert.equal(
    shouldMirror(quarter, () => 0.2499),
    true,
  );
  assert.equal(
    shouldMirror(quarter, () => 0.25),
    false,
  );
  assert.equal(
    shouldMirror(all, () => assert.fail('no random number needed')),
    true,
  );
  assert.equal(
    shouldMirror({ ...quarter, numerator: 0 }, () => assert.fail('no random number needed')),
    false,
  );
});
