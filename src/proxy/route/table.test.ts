import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, Match, Route, Rule } from '../../api/destination.js';
import { compileRoutes, headerValue, matchRoute, queryValue, splitTarget, type RouteRequest } from './table.js';

const svc = (name: string) => `${name}.default.svc.cluster.local:80`;
const backends: Backend[] = ['web', 'v2', 'canary'].map((n) => ({ service: svc(n), exists: true, endpoints: [] }));

function httpMatch(m: Partial<Match> & { path?: Match['path'] }): Match {
  return { path: { type: 'PREFIX', value: '/' }, method: '', headers: [], query_params: [], grpc_method: null, ...m };
}
function rule(name: string, matches: Match[], backend = 'web'): Rule {
  return {
    name,
    matches,
    filters: [],
    backends: [{ backend: svc(backend), weight: 1 }],
    request_timeout_ms: 0,
    backend_request_timeout_ms: 0,
    retry: null,
  };
}
const route = (name: string, rules: Rule[], kind: Route['kind'] = 'HTTP'): Route => ({
  kind,
  name: `default/${name}`,
  rules,
});
const req = (target: string, extra: Partial<RouteRequest> = {}): RouteRequest => ({
  method: 'GET',
  ...splitTarget(target),
  headers: [],
  ...extra,
});

void test('no routes: an empty table, and matchRoute says nothing (use the Service itself)', () => {
  const t = compileRoutes([], []);
  assert.equal(t.empty, true);
  assert.equal(matchRoute(t, req('/')), undefined);
  assert.equal(compileRoutes(undefined, undefined).empty, true);
});

void test('HTTP precedence: exact, then regex, then the longest prefix, then method, headers, query', () => {
  const t = compileRoutes(
    [
      route('b', [
        rule('root', [httpMatch({})]),
        rule('api', [httpMatch({ path: { type: 'PREFIX', value: '/api/' } })]),
        rule('api-v1', [httpMatch({ path: { type: 'PREFIX', value: '/api/v1' } })]),
        rule('api-post', [httpMatch({ path: { type: 'PREFIX', value: '/api' }, method: 'POST' })]),
        rule('api-hdr', [
          httpMatch({
            path: { type: 'PREFIX', value: '/api' },
            headers: [{ type: 'EXACT', name: 'X-Canary', value: '1' }],
          }),
        ]),
        rule('api-2hdr', [
          httpMatch({
            path: { type: 'PREFIX', value: '/api' },
            headers: [
              { type: 'EXACT', name: 'x-canary', value: '1' },
              { type: 'REGEX', name: 'x-user', value: 'a.*' },
            ],
          }),
        ]),
        rule('api-q', [
          httpMatch({
            path: { type: 'PREFIX', value: '/api' },
            query_params: [{ type: 'EXACT', name: 'debug', value: 'on' }],
          }),
        ]),
        rule('users', [httpMatch({ path: { type: 'REGEX', value: '/api/users/[0-9]+' } })]),
        rule('health', [httpMatch({ path: { type: 'EXACT', value: '/api/health' } })]),
      ]),
    ],
    backends,
  );
  const name = (r: RouteRequest) => matchRoute(t, r)?.rule.name;
  assert.equal(name(req('/')), 'root');
  assert.equal(name(req('/apix')), 'root', 'a prefix matches whole path elements only');
  assert.equal(name(req('/api')), 'api');
  assert.equal(name(req('/api/v1/x')), 'api-v1');
  assert.equal(name(req('/api/v10')), 'api', '/api/v1 is not a prefix of /api/v10');
  assert.equal(name(req('/api/x', { method: 'POST' })), 'api-post');
  assert.equal(
    name(req('/api/x', { method: 'POST', headers: ['X-CANARY', '1'] })),
    'api-post',
    'a method before headers',
  );
  assert.equal(name(req('/api/x', { headers: ['x-canary', '1'] })), 'api-hdr');
  assert.equal(
    name(req('/api/x', { headers: ['x-canary', '1', 'X-User', 'alice'] })),
    'api-2hdr',
    'more headers first',
  );
  assert.equal(
    name(req('/api/x', { headers: ['x-canary', '1', 'X-User', 'bob'] })),
    'api-hdr',
    'a regex matches the whole value',
  );
  assert.equal(name(req('/api/x?a=1&debug=on')), 'api-q');
  assert.equal(name(req('/api/x?debug=off')), 'api');
  assert.equal(name(req('/api/users/42')), 'users', 'a regex before any prefix');
  assert.equal(name(req('/api/users/42x')), 'api');
  assert.equal(name(req('/api/health')), 'health', 'exact first');
  assert.equal(name(req('/api/health?x=1')), 'health', 'the query is not part of the path');
  assert.equal(matchRoute(t, req('/api/health'))?.prefix, undefined);
  assert.equal(matchRoute(t, req('/api/v1'))?.prefix, '/api/v1');
  assert.equal(matchRoute(t, req('/x'))?.prefix, '', 'the prefix "/" is kept as ""');
});

void test('ties: route order (namespace, name) then rule order, then match order', () => {
  const t = compileRoutes(
    [
      route('a', [
        rule('a0', [httpMatch({ path: { type: 'PREFIX', value: '/x' } })]),
        rule('a1', [httpMatch({ path: { type: 'PREFIX', value: '/x' } })]),
      ]),
      route('b', [rule('b0', [httpMatch({ path: { type: 'PREFIX', value: '/x' } })])]),
    ],
    backends,
  );
  assert.equal(matchRoute(t, req('/x'))?.rule.name, 'a0');
  assert.equal(matchRoute(t, req('/x'))?.rule.route, 'default/a');
  assert.deepEqual(
    t.ordered.map((c) => c.rule.name),
    ['a0', 'a1', 'b0'],
  );
});

void test('routes but no match: undefined with a non-empty table (answer 404)', () => {
  const t = compileRoutes(
    [route('a', [rule('only', [httpMatch({ path: { type: 'EXACT', value: '/only' } })])])],
    backends,
  );
  assert.equal(t.empty, false);
  assert.equal(matchRoute(t, req('/other')), undefined);
  assert.equal(
    matchRoute(t, req('/only', { method: 'DELETE' }))?.rule.name,
    'only',
    'no method in the match: any method',
  );
});

void test('a regex that does not compile never matches and is reported once', () => {
  const t = compileRoutes(
    [route('a', [rule('bad', [httpMatch({ path: { type: 'REGEX', value: '(' } })]), rule('good', [httpMatch({})])])],
    backends,
  );
  assert.equal(matchRoute(t, req('/('))?.rule.name, 'good');
  assert.equal(t.problems.length, 1);
  assert.match(t.problems[0] ?? '', /^route default\/a rule bad: regex "\(" does not compile/);
});

void test('a backend missing from the answer is a problem and a backend that does not exist', () => {
  const t = compileRoutes([route('a', [rule('r', [httpMatch({})], 'ghost')])], backends);
  assert.match(t.problems[0] ?? '', /backend ghost\.default\.svc\.cluster\.local:80 is not in the answer/);
  assert.equal(matchRoute(t, req('/'))?.rule.split.backends[0]?.exists, false);
});

void test('gRPC precedence: exact service and method, exact service, regex, any; then headers', () => {
  const g = (
    service: string,
    method: string,
    type: 'EXACT' | 'REGEX' = 'EXACT',
    headers: Match['headers'] = [],
  ): Match => ({
    method: '',
    headers,
    query_params: [],
    grpc_method: { type, service, method },
  });
  const t = compileRoutes(
    [
      route(
        'g',
        [
          rule('any', [{ method: '', headers: [], query_params: [], grpc_method: null }]),
          rule('svc', [g('helloworld.Greeter', '')]),
          rule('svc-method', [g('helloworld.Greeter', 'SayHello')]),
          rule('regex-method', [g('', 'Say.*', 'REGEX')]),
          rule('regex-svc', [g('hello.*', '', 'REGEX')]),
          rule('svc-tenant', [
            g('helloworld.Greeter', '', 'EXACT', [{ type: 'EXACT', name: 'x-tenant', value: 'blue' }]),
          ]),
        ],
        'GRPC',
      ),
    ],
    backends,
  );
  const name = (path: string, headers: string[] = []) =>
    matchRoute(t, { method: 'POST', path, query: '', headers })?.rule.name;
  assert.equal(t.kind, 'GRPC');
  assert.equal(name('/helloworld.Greeter/SayHello'), 'svc-method');
  assert.equal(name('/helloworld.Greeter/SayBye'), 'svc');
  assert.equal(name('/helloworld.Greeter/SayBye', ['x-tenant', 'blue']), 'svc-tenant');
  assert.equal(name('/hello.Other/Ping'), 'regex-svc');
  assert.equal(name('/other.Svc/SayHi'), 'regex-method');
  assert.equal(name('/other.Svc/Ping'), 'any');
  assert.equal(name('/helloworld.GreeterX/SayHello'), 'regex-svc', 'exact service compares the whole name');
  assert.equal(name('not-a-grpc-path'), 'any');
});

void test('header and query helpers', () => {
  assert.equal(headerValue(['Accept', 'a', 'x', '1', 'ACCEPT', 'b'], 'accept'), 'a,b');
  assert.equal(headerValue(['x', '1'], 'y'), undefined);
  assert.equal(queryValue('a=1&b=x%20y&c&b=2', 'b'), 'x y', 'the first value, decoded');
  assert.equal(queryValue('a=1&c', 'c'), '');
  assert.equal(queryValue('A=1', 'a'), undefined, 'names are case-sensitive');
  assert.equal(queryValue('a=%zz', 'a'), '%zz', 'a malformed escape stays raw');
  assert.equal(queryValue('q=a+b', 'q'), 'a b');
  assert.deepEqual(splitTarget('/a/b?x=1?y'), { path: '/a/b', query: 'x=1?y' });
});
