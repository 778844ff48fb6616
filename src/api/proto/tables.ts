// Generated from src/api/*.proto by `npm run gen:api` (src/api/proto/generate.ts): do not edit.
// src/api/proto/generate.test.ts fails while this file and the .proto files disagree.
import type { ProtoTables } from './wire.js';

export const TABLES: ProtoTables = {
  messages: {
    'outrigger.destination.v1.GetDestination': [
      [1, 'path', 'string'],
    ],
    'outrigger.destination.v1.Update': [
      [1, 'known', 'bool'],
      [2, 'service', 'string'],
      [3, 'endpoints', 'outrigger.destination.v1.Endpoint', 'repeated'],
      [4, 'routes', 'outrigger.destination.v1.Route', 'repeated'],
      [5, 'backends', 'outrigger.destination.v1.Backend', 'repeated'],
    ],
    'outrigger.destination.v1.Route': [
      [1, 'kind', 'outrigger.destination.v1.Route.Kind'],
      [2, 'name', 'string'],
      [3, 'rules', 'outrigger.destination.v1.Rule', 'repeated'],
    ],
    'outrigger.destination.v1.Rule': [
      [1, 'name', 'string'],
      [2, 'matches', 'outrigger.destination.v1.Match', 'repeated'],
      [3, 'filters', 'outrigger.destination.v1.Filter', 'repeated'],
      [4, 'backends', 'outrigger.destination.v1.WeightedBackend', 'repeated'],
      [5, 'request_timeout_ms', 'uint32'],
      [6, 'backend_request_timeout_ms', 'uint32'],
      [7, 'retry', 'outrigger.destination.v1.Retry'],
    ],
    'outrigger.destination.v1.Match': [
      [1, 'path', 'outrigger.destination.v1.PathMatch'],
      [2, 'method', 'string'],
      [3, 'headers', 'outrigger.destination.v1.ValueMatch', 'repeated'],
      [4, 'query_params', 'outrigger.destination.v1.ValueMatch', 'repeated'],
      [5, 'grpc_method', 'outrigger.destination.v1.GrpcMethodMatch'],
    ],
    'outrigger.destination.v1.PathMatch': [
      [1, 'type', 'outrigger.destination.v1.PathMatch.Type'],
      [2, 'value', 'string'],
    ],
    'outrigger.destination.v1.ValueMatch': [
      [1, 'type', 'outrigger.destination.v1.ValueMatch.Type'],
      [2, 'name', 'string'],
      [3, 'value', 'string'],
    ],
    'outrigger.destination.v1.GrpcMethodMatch': [
      [1, 'type', 'outrigger.destination.v1.ValueMatch.Type'],
      [2, 'service', 'string'],
      [3, 'method', 'string'],
    ],
    'outrigger.destination.v1.Filter': [
      [1, 'type', 'outrigger.destination.v1.Filter.Type'],
      [2, 'header_modifier', 'outrigger.destination.v1.HeaderModifier'],
      [3, 'mirror', 'outrigger.destination.v1.Mirror'],
      [4, 'url_rewrite', 'outrigger.destination.v1.UrlRewrite'],
      [5, 'redirect', 'outrigger.destination.v1.Redirect'],
    ],
    'outrigger.destination.v1.Header': [
      [1, 'name', 'string'],
      [2, 'value', 'string'],
    ],
    'outrigger.destination.v1.HeaderModifier': [
      [1, 'set', 'outrigger.destination.v1.Header', 'repeated'],
      [2, 'add', 'outrigger.destination.v1.Header', 'repeated'],
      [3, 'remove', 'string', 'repeated'],
    ],
    'outrigger.destination.v1.Mirror': [
      [1, 'backend', 'string'],
      [2, 'numerator', 'uint32'],
      [3, 'denominator', 'uint32'],
    ],
    'outrigger.destination.v1.PathModifier': [
      [1, 'type', 'outrigger.destination.v1.PathModifier.Type'],
      [2, 'value', 'string'],
    ],
    'outrigger.destination.v1.UrlRewrite': [
      [1, 'hostname', 'string'],
      [2, 'path', 'outrigger.destination.v1.PathModifier'],
    ],
    'outrigger.destination.v1.Redirect': [
      [1, 'scheme', 'string'],
      [2, 'hostname', 'string'],
      [3, 'path', 'outrigger.destination.v1.PathModifier'],
      [4, 'port', 'uint32'],
      [5, 'status_code', 'uint32'],
    ],
    'outrigger.destination.v1.Retry': [
      [1, 'attempts', 'uint32'],
      [2, 'statuses', 'outrigger.destination.v1.StatusRange', 'repeated'],
      [3, 'grpc_codes', 'uint32', 'repeated'],
      [4, 'connect_failure', 'bool'],
      [5, 'reset', 'bool'],
      [6, 'timeout', 'bool'],
    ],
    'outrigger.destination.v1.StatusRange': [
      [1, 'from', 'uint32'],
      [2, 'to', 'uint32'],
    ],
    'outrigger.destination.v1.WeightedBackend': [
      [1, 'backend', 'string'],
      [2, 'weight', 'uint32'],
    ],
    'outrigger.destination.v1.Backend': [
      [1, 'service', 'string'],
      [2, 'exists', 'bool'],
      [3, 'endpoints', 'outrigger.destination.v1.Endpoint', 'repeated'],
    ],
    'outrigger.destination.v1.Endpoint': [
      [1, 'addr', 'string'],
      [2, 'weight', 'uint32'],
      [3, 'identity', 'string'],
      [4, 'protocol_hint', 'outrigger.destination.v1.Endpoint.ProtocolHint'],
      [5, 'meshed', 'bool'],
      [6, 'pod', 'string'],
      [7, 'workload', 'string'],
    ],
    'outrigger.identity.v1.CertifyRequest': [
      [1, 'token', 'string'],
      [2, 'csr_pem', 'string'],
    ],
    'outrigger.identity.v1.CertifyResponse': [
      [1, 'leaf_pem', 'string'],
      [2, 'chain_pem', 'string'],
      [3, 'trust_anchor_pem', 'string'],
      [4, 'not_after_unix_seconds', 'int64'],
      [5, 'identity', 'string'],
    ],
    'outrigger.policy.v1.WatchInbound': [
      [1, 'namespace', 'string'],
      [2, 'pod', 'string'],
    ],
    'outrigger.policy.v1.InboundPolicy': [
      [1, 'known', 'bool'],
      [2, 'default_policy', 'string'],
      [3, 'default_authorizations', 'outrigger.policy.v1.Authorization', 'repeated'],
      [4, 'ports', 'outrigger.policy.v1.PortPolicy', 'repeated'],
    ],
    'outrigger.policy.v1.PortPolicy': [
      [1, 'port', 'uint32'],
      [2, 'server', 'string'],
      [3, 'protocol', 'string'],
      [4, 'authorizations', 'outrigger.policy.v1.Authorization', 'repeated'],
      [5, 'routes', 'outrigger.policy.v1.InboundRoute', 'repeated'],
      [6, 'rate_limit', 'outrigger.policy.v1.RateLimit'],
    ],
    'outrigger.policy.v1.InboundRoute': [
      [1, 'route', 'outrigger.destination.v1.Route'],
      [2, 'authorizations', 'outrigger.policy.v1.Authorization', 'repeated'],
    ],
    'outrigger.policy.v1.Authorization': [
      [1, 'name', 'string'],
      [2, 'all', 'outrigger.policy.v1.Requirement', 'repeated'],
    ],
    'outrigger.policy.v1.Requirement': [
      [1, 'identities', 'string', 'repeated'],
      [2, 'networks', 'outrigger.policy.v1.Network', 'repeated'],
    ],
    'outrigger.policy.v1.Network': [
      [1, 'cidr', 'string'],
      [2, 'except', 'string', 'repeated'],
    ],
    'outrigger.policy.v1.RateLimit': [
      [1, 'name', 'string'],
      [2, 'total_rps', 'uint32'],
      [3, 'identity_rps', 'uint32'],
      [4, 'overrides', 'outrigger.policy.v1.RateOverride', 'repeated'],
    ],
    'outrigger.policy.v1.RateOverride': [
      [1, 'rps', 'uint32'],
      [2, 'identities', 'string', 'repeated'],
    ],
  },
  enums: {
    'outrigger.destination.v1.Route.Kind': { 0: 'HTTP', 1: 'GRPC' },
    'outrigger.destination.v1.PathMatch.Type': { 0: 'EXACT', 1: 'PREFIX', 2: 'REGEX' },
    'outrigger.destination.v1.ValueMatch.Type': { 0: 'EXACT', 1: 'REGEX' },
    'outrigger.destination.v1.Filter.Type': { 0: 'REQUEST_HEADER_MODIFIER', 1: 'RESPONSE_HEADER_MODIFIER', 2: 'REQUEST_MIRROR', 3: 'URL_REWRITE', 4: 'REQUEST_REDIRECT' },
    'outrigger.destination.v1.PathModifier.Type': { 0: 'REPLACE_FULL_PATH', 1: 'REPLACE_PREFIX_MATCH' },
    'outrigger.destination.v1.Endpoint.ProtocolHint': { 0: 'UNKNOWN', 1: 'HTTP1', 2: 'H2', 3: 'OPAQUE' },
  },
  methods: {
    '/outrigger.destination.v1.Destination/Get': { request: 'outrigger.destination.v1.GetDestination', response: 'outrigger.destination.v1.Update', requestStream: false, responseStream: true },
    '/outrigger.identity.v1.Identity/Certify': { request: 'outrigger.identity.v1.CertifyRequest', response: 'outrigger.identity.v1.CertifyResponse', requestStream: false, responseStream: false },
    '/outrigger.policy.v1.Policy/Watch': { request: 'outrigger.policy.v1.WatchInbound', response: 'outrigger.policy.v1.InboundPolicy', requestStream: false, responseStream: true },
  },
};
