// The proxy's protobuf codec against protobufjs as @grpc/proto-loader runs it on the control plane, for
// every method's messages filled so that every field of every message is set: the same bytes decode to
// the same objects, and what the codec encodes the control plane reads as what was meant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import protoLoader from '@grpc/proto-loader';
import { API_DIR } from './generate.js';
import { API } from './registry.js';
import { TABLES } from './tables.js';
import { ProtoDecodeError } from './wire.js';

const def = protoLoader.loadSync(['destination.proto', 'identity.proto', 'policy.proto'], {
  includeDirs: [API_DIR],
  // As src/api/load.ts loads them for the control plane.
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
  oneofs: true,
});

function loaderMethod(path: string): protoLoader.MethodDefinition<object, object> {
  const [service = '', name = ''] = path.slice(1).split('/');
  const m = (def[service] as protoLoader.ServiceDefinition | undefined)?.[name];
  if (m === undefined) throw new Error(`proto-loader: no ${path}`);
  return m as protoLoader.MethodDefinition<object, object>;
}

const endpoint = (n: number) => ({
  addr: `10.244.0.${n}:8080`,
  weight: 3,
  identity: 'spiffe://cluster.local/ns/default/sa/web',
  protocol_hint: 'H2',
  meshed: true,
  pod: `default/web-${n}`,
  workload: 'web',
});

const route = {
  kind: 'GRPC',
  name: 'default/écho', // not ASCII
  rules: [
    {
      name: 'first',
      matches: [
        {
          path: { type: 'REGEX', value: '/a.*' },
          method: 'GET',
          headers: [{ type: 'REGEX', name: 'x-h', value: 'v' }],
          query_params: [{ type: 'EXACT', name: 'q', value: '1' }],
          grpc_method: { type: 'REGEX', service: 'pkg.Svc', method: 'Get' },
        },
      ],
      filters: [
        {
          type: 'URL_REWRITE',
          header_modifier: { set: [{ name: 'a', value: 'b' }], add: [{ name: 'c', value: 'd' }], remove: ['e', 'f'] },
          mirror: { backend: 'm.default.svc.cluster.local:80', numerator: 1, denominator: 10 },
          url_rewrite: { hostname: 'h.example', path: { type: 'REPLACE_PREFIX_MATCH', value: '/p' } },
          redirect: {
            scheme: 'https',
            hostname: 'r.example',
            path: { type: 'REPLACE_PREFIX_MATCH', value: '/q' },
            port: 8443,
            status_code: 301,
          },
        },
      ],
      backends: [{ backend: 'web.default.svc.cluster.local:80', weight: 4_000_000_000 }],
      request_timeout_ms: 5000,
      backend_request_timeout_ms: 1000,
      retry: {
        attempts: 2,
        statuses: [{ from: 500, to: 599 }],
        grpc_codes: [14, 4, 300],
        connect_failure: true,
        reset: true,
        timeout: true,
      },
    },
  ],
};

const authorization = {
  name: 'default/web-ops',
  all: [
    {
      identities: ['spiffe://cluster.local/ns/ops/sa/*', '*'],
      networks: [{ cidr: '10.244.0.0/16', except: ['10.244.9.0/24'] }],
    },
  ],
};

/** One request and one response per method, every field of every message set somewhere. */
const SAMPLES: Record<string, { request: object; response: object }> = {
  '/outrigger.destination.v1.Destination/Get': {
    request: { path: 'web.default.svc.cluster.local:80' },
    response: {
      known: true,
      service: 'web.default.svc.cluster.local:80',
      endpoints: [endpoint(11), endpoint(12)],
      routes: [route],
      backends: [{ service: 'web.default.svc.cluster.local:80', exists: true, endpoints: [endpoint(13)] }],
    },
  },
  '/outrigger.policy.v1.Policy/Watch': {
    request: { namespace: 'default', pod: 'web-1' },
    response: {
      known: true,
      default_policy: 'all-authenticated',
      default_authorizations: [authorization],
      ports: [
        {
          port: 8080,
          server: 'default/web-http',
          protocol: 'HTTP/1',
          authorizations: [authorization],
          routes: [{ route, authorizations: [authorization] }],
          rate_limit: {
            name: 'default/web',
            total_rps: 100,
            identity_rps: 10,
            overrides: [{ rps: 50, identities: ['spiffe://cluster.local/ns/ops/sa/admin'] }],
          },
        },
      ],
    },
  },
  '/outrigger.identity.v1.Identity/Certify': {
    request: { token: 'eyJhbGciOi.x.y', csr_pem: '-----BEGIN CERTIFICATE REQUEST-----\n...' },
    response: {
      leaf_pem: 'leaf',
      chain_pem: 'chain',
      trust_anchor_pem: 'anchor',
      not_after_unix_seconds: '1798761600',
      identity: 'spiffe://cluster.local/ns/default/sa/web',
    },
  },
};

/** Records `message.field` for every field set to something other than its zero value. */
function covered(type: string, value: Record<string, unknown>, seen: Set<string>): void {
  for (const [, name, fieldType, repeated] of TABLES.messages[type] ?? []) {
    const v = value[name];
    const values = repeated ? ((v as unknown[] | undefined) ?? []) : v === undefined || v === null ? [] : [v];
    if (values.some((x) => x !== '' && x !== 0 && x !== false && x !== '0' && x !== null)) seen.add(`${type}.${name}`);
    if (TABLES.messages[fieldType] !== undefined)
      for (const x of values) covered(fieldType, x as Record<string, unknown>, seen);
  }
}

void test('the samples set every field of every message (a field added to a .proto must be added here)', () => {
  const seen = new Set<string>();
  for (const [path, s] of Object.entries(SAMPLES)) {
    const spec = TABLES.methods[path];
    assert.ok(spec, path);
    covered(spec.request, s.request as Record<string, unknown>, seen);
    covered(spec.response, s.response as Record<string, unknown>, seen);
  }
  const all = Object.entries(TABLES.messages).flatMap(([type, fields]) => fields.map(([, name]) => `${type}.${name}`));
  assert.deepEqual(
    all.filter((f) => !seen.has(f)),
    [],
  );
  assert.deepEqual(Object.keys(SAMPLES).sort(), Object.keys(TABLES.methods).sort(), 'a sample for every method');
});

void test('decodes what the control plane encodes into what the control plane would decode', () => {
  for (const [path, s] of Object.entries(SAMPLES)) {
    const pl = loaderMethod(path);
    const ours = API.method<object, object>(path);
    const response = pl.responseSerialize(s.response);
    assert.deepEqual(ours.decode(response), pl.responseDeserialize(response), `${path} response`);
    const request = pl.requestSerialize(s.request);
    assert.deepEqual(
      API.codec(TABLES.methods[path]?.request ?? '').decode(request),
      pl.requestDeserialize(request),
      `${path} request`,
    );
  }
});

void test('encodes what the control plane decodes as it would decode its own encoding', () => {
  // Not byte for byte: protobufjs also writes a zero value that was set explicitly (an enum's first
  // value), which proto3 leaves out; both read the same.
  for (const [path, s] of Object.entries(SAMPLES)) {
    const pl = loaderMethod(path);
    const spec = TABLES.methods[path];
    assert.ok(spec);
    assert.deepEqual(
      pl.requestDeserialize(API.method(path).encode(s.request)),
      pl.requestDeserialize(pl.requestSerialize(s.request)),
      `${path} request`,
    );
    const response = API.codec(spec.response).encode(s.response);
    assert.deepEqual(
      pl.responseDeserialize(response),
      pl.responseDeserialize(pl.responseSerialize(s.response)),
      `${path} response`,
    );
  }
});

void test('absent fields: zero values, null messages, empty lists, "0" for 64-bit numbers, as proto-loader', () => {
  const empty = Buffer.alloc(0);
  for (const path of Object.keys(SAMPLES)) {
    const pl = loaderMethod(path);
    assert.deepEqual(API.method<object, object>(path).decode(empty), pl.responseDeserialize(empty), path);
  }
  assert.deepEqual(API.codec('outrigger.identity.v1.CertifyResponse').decode(empty), {
    leaf_pem: '',
    chain_pem: '',
    trust_anchor_pem: '',
    not_after_unix_seconds: '0',
    identity: '',
  });
  // Zero values are not written (proto3), so an empty message encodes to nothing.
  assert.equal(
    API.codec('outrigger.destination.v1.Update').encode({
      known: false,
      service: '',
      endpoints: [],
      routes: [],
      backends: [],
    }).length,
    0,
  );
});

void test('64-bit numbers at their limits, and sent as numbers or strings', () => {
  const c = API.codec<{ not_after_unix_seconds: string | number }>('outrigger.identity.v1.CertifyResponse');
  const pl = loaderMethod('/outrigger.identity.v1.Identity/Certify');
  for (const v of ['-1', '9223372036854775807', '-9223372036854775808', 1798761600, '1798761600']) {
    const bytes = c.encode({ not_after_unix_seconds: v });
    assert.deepEqual(bytes, pl.responseSerialize({ not_after_unix_seconds: v }), String(v));
    assert.equal(c.decode(bytes).not_after_unix_seconds, String(v));
  }
  assert.throws(() => c.encode({ not_after_unix_seconds: '9223372036854775808' }), /not a valid int64/);
  assert.throws(() => c.encode({ not_after_unix_seconds: 1.5 }), /not a valid int64/);
});

// Hand-made bytes: tag = field << 3 | wire type.
const varint = (n: number): number[] => {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
};
const len = (field: number, bytes: number[]): number[] => [
  ...varint((field << 3) | 2),
  ...varint(bytes.length),
  ...bytes,
];
const str = (field: number, s: string): number[] => len(field, [...Buffer.from(s)]);

void test('a newer control plane: unknown fields of every wire type are skipped, an unknown enum value stays a number', () => {
  const endpoint = API.codec<Record<string, unknown>>('outrigger.destination.v1.Endpoint');
  const known = [...str(1, '10.0.0.1:80'), ...varint((4 << 3) | 0), 2];
  const unknown = [
    ...[...varint((20 << 3) | 0), ...varint(300)], // varint
    ...[...varint((21 << 3) | 1), 1, 2, 3, 4, 5, 6, 7, 8], // fixed64
    ...str(22, 'later'), // length-delimited
    ...[...varint((23 << 3) | 5), 1, 2, 3, 4], // fixed32
    ...[...varint((24 << 3) | 3), ...varint((1 << 3) | 0), 7, ...varint((24 << 3) | 4)], // a group
  ];
  assert.deepEqual(
    endpoint.decode(Buffer.from([...unknown, ...known, ...unknown])),
    endpoint.decode(Buffer.from(known)),
  );
  assert.equal(endpoint.decode(Buffer.from(known)).protocol_hint, 'H2');

  const update = [...len(3, [...varint((4 << 3) | 0), 9])];
  const pl = loaderMethod('/outrigger.destination.v1.Destination/Get');
  const ours = API.method<object, { endpoints: { protocol_hint: unknown }[] }>(
    '/outrigger.destination.v1.Destination/Get',
  ).decode(Buffer.from(update));
  assert.equal(ours.endpoints[0]?.protocol_hint, 9);
  assert.deepEqual(ours, pl.responseDeserialize(Buffer.from(update)));
});

void test('repeated numbers: packed and unpacked both read, packed written', () => {
  const retry = API.codec<{ grpc_codes: number[] }>('outrigger.destination.v1.Retry');
  const unpacked = [...varint((3 << 3) | 0), 14, ...varint((3 << 3) | 0), 4];
  const packed = len(3, [14, 4]);
  assert.deepEqual(retry.decode(Buffer.from(unpacked)).grpc_codes, [14, 4]);
  assert.deepEqual(retry.decode(Buffer.from(packed)).grpc_codes, [14, 4]);
  assert.deepEqual([...retry.encode({ grpc_codes: [14, 4] })], packed);
});

void test('bytes that are not the message: a ProtoDecodeError, never a wrong object', () => {
  const update = API.codec('outrigger.destination.v1.Update');
  const cases: [string, number[]][] = [
    ['truncated string', [...varint((2 << 3) | 2), 5, 0x61]],
    ['truncated varint', [...varint((1 << 3) | 0), 0x80]],
    ['varint of 11 bytes', [...varint((1 << 3) | 0), ...Array<number>(10).fill(0xff), 1]],
    ['a string sent as a number', [...varint((2 << 3) | 0), 1]],
    ['field number 0', [0, 1]],
    ['wire type 7', [...varint((30 << 3) | 7)]],
    ['a nested message cut short', len(3, [...varint((1 << 3) | 2), 9])],
  ];
  for (const [name, bytes] of cases) assert.throws(() => update.decode(Buffer.from(bytes)), ProtoDecodeError, name);
});

void test('encoding refuses values of the wrong type rather than sending something else', () => {
  const endpoint = API.codec<Record<string, unknown>>('outrigger.destination.v1.Endpoint');
  assert.throws(() => endpoint.encode({ addr: 5 }), /Endpoint\.addr: expected a string/);
  assert.throws(() => endpoint.encode({ weight: -1 }), /not a valid uint32/);
  assert.throws(() => endpoint.encode({ protocol_hint: 'H3' }), /not a valid enum/);
  assert.throws(() => endpoint.encode({ meshed: 'yes' }), /not a valid bool/);
  assert.throws(() => API.codec('outrigger.destination.v1.Update').encode({ endpoints: {} }), /expected an array/);
  assert.throws(() => API.codec('no.such.Message'), /no message no\.such\.Message/);
});
