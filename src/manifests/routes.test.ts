import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatProblem, loadManifestFiles, ManifestError, parseManifests } from '../runtime/manifests/index.js';
import { parseDuration, regexProblem } from './routes.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dir = join(root, 'src/runtime/manifests/testdata');

async function problemsOf(files: string[]): Promise<string[]> {
  try {
    await loadManifestFiles(files.map((f) => join(dir, f)));
  } catch (err) {
    assert.ok(err instanceof ManifestError, String(err));
    return err.problems.map((p) => formatProblem(p).replaceAll(`${dir}/`, ''));
  }
  assert.fail(`${files.join(', ')} loaded without problems`);
}

/** Problems of inline YAML after a Service `web` (ports 80 "http" and 9000 "admin"), without lines. */
function problemsOfText(text: string): string[] {
  const svc =
    'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{name: http, port: 80}, {name: admin, port: 9000}]\n---\n';
  try {
    parseManifests([{ file: 'r.yaml', text: svc + text }]);
  } catch (err) {
    assert.ok(err instanceof ManifestError, String(err));
    return err.problems.map((p) => formatProblem({ ...p, line: undefined }));
  }
  return [];
}

const route = (spec: string, annotations = '{}', kind = 'HTTPRoute') =>
  `apiVersion: gateway.networking.k8s.io/v1\nkind: ${kind}\nmetadata:\n  name: r\n  annotations: ${annotations}\nspec:\n${spec}`;
const PARENT = '  parentRefs: [{group: "", kind: Service, name: web, port: 80}]\n';

void test('valid routes load with Gateway API defaults and parsed retry policies', async () => {
  const set = await loadManifestFiles([join(dir, 'valid/routes.yaml')]);
  assert.deepEqual(
    set.objects.map((o) => `${o.kind} ${o.metadata.name}`),
    ['Service web', 'Service web-canary', 'Service greeter', 'HTTPRoute web-split', 'GRPCRoute greeter'],
  );
  const http = set.httpRoutes?.[0];
  assert.ok(http);
  const [canary, split] = http.spec.rules;
  assert.deepEqual(canary?.matches?.[0]?.headers, [{ type: 'Exact', name: 'x-canary', value: 'true' }]);
  assert.deepEqual(canary?.timeouts, { request: '10s', backendRequest: '500ms' });
  assert.equal(split?.matches, undefined, 'no matches: the default PathPrefix "/" is applied by consumers');
  assert.deepEqual(
    split?.backendRefs.map((b) => [b.group, b.kind, b.name, b.port, b.weight]),
    [
      ['', 'Service', 'web', 80, 90],
      ['', 'Service', 'web-canary', 80, 10],
    ],
  );
  assert.deepEqual(http.retry, {
    attempts: 2,
    statuses: [
      [500, 599],
      [429, 429],
    ],
    grpcCodes: [],
    connectFailure: true,
    reset: true,
    timeout: true,
  });
  const grpc = set.grpcRoutes?.[0];
  assert.ok(grpc);
  assert.deepEqual(grpc.spec.rules[0]?.matches?.[0]?.method, {
    type: 'Exact',
    service: 'helloworld.Greeter',
    method: 'SayHello',
  });
  assert.deepEqual(grpc.retry, {
    attempts: 1,
    statuses: [],
    grpcCodes: [14, 4],
    connectFailure: false,
    reset: false,
    timeout: true,
  });
  assert.equal(set.httpRoutes?.length, 1);
  assert.equal(set.grpcRoutes?.length, 1);
});

void test('route problems name file, document, route and field, all in one pass', async () => {
  const b = 'errors/routes.yaml: document 2 (HTTPRoute default/bad): ';
  const g = 'errors/routes.yaml: document 3 (GRPCRoute default/mixed): ';
  const s = 'errors/routes.yaml: document 4 (HTTPRoute default/schema): ';
  assert.deepEqual(await problemsOf(['errors/routes.yaml']), [
    `${b}spec.hostnames: is not supported on a route attached to a Service (GAMMA): the Service is the host; remove it (line 16)`,
    `${b}spec.parentRefs[0].group: is required: "" for a Service (Gateway API's default is gateway.networking.k8s.io, the group of Gateways) (line 18)`,
    `${b}spec.parentRefs[0].kind: is required: "Service" (Gateway API's default is Gateway; outrigger attaches routes to Services only) (line 18)`,
    `${b}spec.rules[0].matches[0].path.value: is not a valid regular expression: unterminated group, got "/users/(\\\\d+" (line 23)`,
    `${b}spec.rules[0].matches[0].headers[1].name: duplicate header "x-env" (also [0]); header names are case-insensitive (line 26)`,
    `${b}spec.rules[0].matches[0].headers[1].value: must not use look-ahead or look-behind (RE2 syntax), got "(?<=a)b" (line 26)`,
    `${b}spec.rules[0].matches[1].path.value: must start with "/", got "api//v1" (line 27)`,
    `${b}spec.rules[0].filters[1].type: URLRewrite (filters[1]) and RequestRedirect (filters[0]) cannot be in one rule: a redirect answers the request, so there is nothing to rewrite (line 31)`,
    `${b}spec.rules[0].backendRefs: must be empty with a RequestRedirect filter (filters[0]): the proxy answers with the redirect and sends nothing to a backend (line 33)`,
    `${b}spec.rules[0].backendRefs[1].port: is required: the port of the Service that receives the requests (line 35)`,
    `${b}spec.rules[1].filters[0].requestHeaderModifier: is required for a filter of type RequestHeaderModifier (line 37)`,
    `${b}spec.rules[1].filters[0].responseHeaderModifier: must not be set on a filter of type RequestHeaderModifier (line 38)`,
    `${b}spec.rules[1].timeouts.backendRequest: must not exceed request (1s): each attempt fits in the whole request, got "2s" (line 41)`,
    `${b}spec.rules[1].backendRefs[0].namespace: must be the route's own namespace "default": a backend in another namespace needs a ReferenceGrant, which outrigger does not support yet, got "other" (line 40)`,
    `${b}metadata.annotations["retry.outrigger.io/attempts"]: must be a whole number of retries from 1 to 10, got "20" (line 14)`,
    `${b}metadata.annotations["retry.outrigger.io/on"]: "unavailable" is a gRPC status; use it on a GRPCRoute in "5xx,unavailable"; allowed on an HTTPRoute: 5xx, gateway-error, connect-failure, reset, or a status or range from 400 to 599 such as 503 or 500-504 (line 13)`,
    // Across documents: Services that do not exist or lack the port.
    `${b}spec.parentRefs[1].name: Service "default/nope" does not exist: a route attaches to a Service in its own namespace (line 19)`,
    `${b}spec.parentRefs[2].port: Service default/web has no port 8080 (its ports: 80 (http)) (line 20)`,
    `${b}spec.rules[0].backendRefs[0].port: Service default/web has no port 81 (its ports: 80 (http)) (line 34)`,
    `${g}spec.rules[0].matches[0].method: needs a service, a method or both (line 52)`,
    `${g}spec.rules[0].matches[1].method.service: must be a gRPC service name such as "helloworld.Greeter", got "hello world" (line 53)`,
    `${g}spec.rules[0].matches[1].method.method: must be a gRPC method name such as "SayHello", got "Say.Hello" (line 53)`,
    `${g}spec.rules[0].backendRefs: every weight is 0: the rule would answer every request with 500; give one backend a weight above 0 (line 54)`,
    `${g}spec.parentRefs[0]: Service default/web port 80 also has HTTPRoute default/bad: a Service port takes HTTPRoutes or GRPCRoutes, not both (line 49)`,
    `${s}spec.rules[0].backendRefs[0].weight: must be an integer from 0 to 1000000, got 2000000 (line 66)`,
    `${s}spec.rules[0].timeouts.request: must be a duration such as "500ms", "10s", "1m30s" or "1h" (units h, m, s, ms), got "10 seconds" (line 67)`,
  ]);
});

void test("parents: only Services of the route's namespace, by port or port name", () => {
  const at = 'r.yaml: document 2 (HTTPRoute default/r): ';
  assert.deepEqual(
    problemsOfText(
      route(
        '  parentRefs:\n' +
          '    - {group: gateway.networking.k8s.io, kind: Gateway, name: web}\n' +
          '    - {group: "", kind: Service, name: web, namespace: other}\n' +
          '    - {group: "", kind: Service, name: web, sectionName: grpc}\n' +
          '    - {group: "", kind: Service, name: web, sectionName: admin, port: 80}\n' +
          '    - {group: "", kind: Service, name: web, sectionName: admin}\n' +
          '    - {group: "", kind: Service, name: web, sectionName: admin}\n',
      ),
    ),
    [
      `${at}spec.parentRefs[0].group: must be "" (the core group, of Services), got "gateway.networking.k8s.io"`,
      `${at}spec.parentRefs[0].kind: must be "Service" (outbound routes, GAMMA) or, with group policy.outrigger.io, "Server" (inbound routes); outrigger has no Gateways, got "Gateway"`,
      `${at}spec.parentRefs[1].namespace: must be the route's own namespace "default": routes for a Service in another namespace (consumer routes) are not supported yet, got "other"`,
      `${at}spec.parentRefs[5]: duplicate parentRef (also parentRefs[4])`,
      `${at}spec.parentRefs[2].sectionName: Service default/web has no port named "grpc" (its ports: 80 (http), 9000 (admin))`,
      `${at}spec.parentRefs[3].port: is 80 but sectionName "admin" is port 9000`,
    ],
  );
});

void test('filters: header modifiers, mirrors, path modifiers', () => {
  const at = 'r.yaml: document 2 (HTTPRoute default/r): spec.rules[0].';
  const rules = (filters: string, matches = '') =>
    route(`${PARENT}  rules:\n    - ${matches}filters:\n${filters}      backendRefs: [{name: web, port: 80}]\n`);
  assert.deepEqual(
    problemsOfText(
      rules(
        '        - type: RequestHeaderModifier\n' +
          '          requestHeaderModifier: {set: [{name: X-A, value: "1"}, {name: Transfer-Encoding, value: chunked}], add: [{name: x-a, value: "2"}]}\n' +
          '        - type: RequestHeaderModifier\n' +
          '          requestHeaderModifier: {}\n' +
          '        - type: RequestMirror\n' +
          '          requestMirror: {backendRef: {name: shadow, port: 80}, percent: 10, fraction: {numerator: 200}}\n',
      ),
    ),
    [
      `${at}filters[0].requestHeaderModifier.set[1].name: header "Transfer-Encoding" cannot be changed by a filter: the proxy owns the message framing and the connection`,
      `${at}filters[0].requestHeaderModifier.add[0].name: header "x-a" is also in set[0]; header names are case-insensitive`,
      `${at}filters[1].type: RequestHeaderModifier may appear once per rule (also filters[0])`,
      `${at}filters[1].requestHeaderModifier: does nothing: give set, add or remove`,
      `${at}filters[2].requestMirror: give percent or fraction, not both`,
      `${at}filters[2].requestMirror.fraction.numerator: must not exceed the denominator (100), got 200`,
      `${at}filters[2].requestMirror.backendRef.name: Service "default/shadow" does not exist`,
    ],
  );
  assert.deepEqual(
    problemsOfText(
      rules(
        '        - type: URLRewrite\n          urlRewrite: {path: {type: ReplacePrefixMatch, replaceFullPath: /x}}\n',
        'matches: [{path: {type: Exact, value: /a}}]\n      ',
      ),
    ),
    [
      `${at}filters[0].urlRewrite.path.replacePrefixMatch: is required for type ReplacePrefixMatch`,
      `${at}filters[0].urlRewrite.path.replaceFullPath: must not be set for type ReplacePrefixMatch`,
      `${at}filters[0].urlRewrite.path.type: ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path`,
    ],
  );
  // No matches is the default PathPrefix "/", which ReplacePrefixMatch accepts.
  assert.deepEqual(
    problemsOfText(
      rules(
        '        - type: URLRewrite\n          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}\n',
      ),
    ),
    [],
  );
});

void test('retry annotations: values, combinations, and where they belong', () => {
  const at = 'r.yaml: document 2 (HTTPRoute default/r): metadata.annotations';
  const rules = `${PARENT}  rules: [{backendRefs: [{name: web, port: 80}]}]\n`;
  assert.deepEqual(problemsOfText(route(rules, '{retry.outrigger.io/attempts: "2"}')), [
    `${at}["retry.outrigger.io/attempts"]: has no effect without retry.outrigger.io/on, which says what is retried`,
  ]);
  assert.deepEqual(problemsOfText(route(rules, '{retry.outrigger.io/on: "5xx,,600,5xx,bogus"}')), [
    `${at}["retry.outrigger.io/on"]: empty entry in "5xx,,600,5xx,bogus"; allowed on an HTTPRoute: 5xx, gateway-error, connect-failure, reset, or a status or range from 400 to 599 such as 503 or 500-504`,
    `${at}["retry.outrigger.io/on"]: status range "600" must lie within 400-599 and not end before it starts in "5xx,,600,5xx,bogus"; allowed on an HTTPRoute: 5xx, gateway-error, connect-failure, reset, or a status or range from 400 to 599 such as 503 or 500-504`,
    `${at}["retry.outrigger.io/on"]: "5xx" is listed twice in "5xx,,600,5xx,bogus"; allowed on an HTTPRoute: 5xx, gateway-error, connect-failure, reset, or a status or range from 400 to 599 such as 503 or 500-504`,
    `${at}["retry.outrigger.io/on"]: unknown retry condition "bogus" in "5xx,,600,5xx,bogus"; allowed on an HTTPRoute: 5xx, gateway-error, connect-failure, reset, or a status or range from 400 to 599 such as 503 or 500-504`,
  ]);
  const g = problemsOfText(
    route(rules.replace(', port: 80}]', ', port: 80}]'), '{retry.outrigger.io/on: "gateway-error"}', 'GRPCRoute'),
  );
  assert.equal(g.length, 1);
  assert.match(
    g[0] ?? '',
    /"gateway-error" is for HTTP responses; a GRPCRoute retries on gRPC statuses .*allowed on a GRPCRoute: connect-failure, reset, or gRPC status names: cancelled, unknown/,
  );
  assert.deepEqual(
    problemsOfText(
      route(
        rules,
        '{retry.outrigger.io/on: "gateway-error, 429, 500-504", retry.outrigger.io/attempts: "3", retry.outrigger.io/oops: x}',
      ),
    ),
    [`${at}["retry.outrigger.io/oops"]: unknown outrigger annotation; did you mean "retry.outrigger.io/on"?`],
  );
  // On a Service (or a pod) they do nothing, and the message says where they go.
  const svc =
    'apiVersion: v1\nkind: Service\nmetadata: {name: api, annotations: {retry.outrigger.io/on: 5xx}}\nspec: {ports: [{port: 80}]}\n';
  assert.deepEqual(problemsOfText(svc), [
    'r.yaml: document 2 (Service default/api): metadata.annotations["retry.outrigger.io/on"]: has no effect here; put it on an HTTPRoute or GRPCRoute',
  ]);
});

void test('timeouts: durations, nesting, and the longest timer', () => {
  const at = 'r.yaml: document 2 (HTTPRoute default/r): spec.rules[0].timeouts.';
  const t = (timeouts: string) =>
    problemsOfText(route(`${PARENT}  rules: [{backendRefs: [{name: web, port: 80}], timeouts: ${timeouts}}]\n`));
  assert.deepEqual(t('{request: 0s, backendRequest: 5s}'), [], 'no overall timeout: any attempt timeout');
  assert.deepEqual(t('{request: 1m30s, backendRequest: 90s}'), []);
  assert.deepEqual(t('{request: 10s, backendRequest: 0s}'), [
    `${at}backendRequest: must not exceed request (10s): each attempt fits in the whole request, got "0s"`,
  ]);
  assert.deepEqual(
    problemsOfText(route(`${PARENT}  rules: [{backendRefs: [{name: web, port: 80}], retry: {attempts: 2}}]\n`)),
    [
      'r.yaml: document 2 (HTTPRoute default/r): spec.rules[0].retry: is experimental in Gateway API (GEP-1731) and not supported; use the retry.outrigger.io/on and retry.outrigger.io/attempts annotations on the route',
    ],
  );
  assert.deepEqual(t('{request: 99999h}'), [
    `${at}request: must be at most 596h (the longest timer Node.js can set), got "99999h"`,
  ]);
});

void test('durations and regexes', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1h2m3s4ms'), 3_723_004);
  assert.equal(parseDuration('0s'), 0);
  assert.equal(parseDuration('1.5s'), undefined);
  assert.equal(parseDuration('10'), undefined);
  assert.equal(regexProblem('/api/v[0-9]+/.*'), undefined);
  assert.equal(regexProblem('[(?=]x\\(?=y'), undefined, 'in a class or escaped, not a look-ahead');
  assert.match(regexProblem('(a)\\1') ?? '', /back-references/);
  assert.match(regexProblem('a(?!b)') ?? '', /look-ahead/);
  assert.match(regexProblem('a{2,1}') ?? '', /not a valid regular expression: numbers out of order/);
});
