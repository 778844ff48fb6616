// The control plane's side of the API: the .proto files (kept as source in src/api, read at run time
// with proto-loader) as grpc-js service definitions, and the handlers each service implements. Only the
// control plane loads this (grpc-js and protobufjs); the proxy's clients are grpc/channel.ts and
// proto/wire.ts.
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import type { GetDestination, Update } from './destination.js';
import type { InboundPolicy, WatchInbound } from './policy.js';

/** The directory holding the .proto files, from either src/api (tsx) or dist/src/api (compiled). */
const PROTO_DIR = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../src/api/' : './', import.meta.url),
);

const LOADER_OPTIONS: protoLoader.Options = {
  // Field names stay as written in the .proto (snake_case), enums as their names, 64-bit numbers as
  // strings, absent fields at their defaults: what the hand-written TypeScript message types assume
  // (and what proto/wire.ts gives the proxy).
  keepCase: true,
  enums: String,
  longs: String,
  defaults: true,
  oneofs: true,
};

const cache = new Map<string, grpc.GrpcObject>();

function loadFile(file: string): grpc.GrpcObject {
  let pkg = cache.get(file);
  if (pkg === undefined) {
    pkg = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO_DIR + file, LOADER_OPTIONS));
    cache.set(file, pkg);
  }
  return pkg;
}

/** The definition of `service` (a dotted name like `outrigger.destination.v1.Destination`) in `file`
 *  (relative to src/api), to pass to `server.addService`. */
function serviceDefinition(file: string, service: string): grpc.ServiceDefinition {
  let node: unknown = loadFile(file);
  for (const part of service.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node)) throw new Error(`${file}: no service ${service}`);
  return (node as grpc.ServiceClientConstructor).service;
}

export function destinationServiceDefinition(): grpc.ServiceDefinition {
  return serviceDefinition('destination.proto', 'outrigger.destination.v1.Destination');
}

export function policyServiceDefinition(): grpc.ServiceDefinition {
  return serviceDefinition('policy.proto', 'outrigger.policy.v1.Policy');
}

export function identityServiceDefinition(): grpc.ServiceDefinition {
  return serviceDefinition('identity.proto', 'outrigger.identity.v1.Identity');
}

/** What a destination server implements: one handler per RPC. */
export interface DestinationHandlers extends grpc.UntypedServiceImplementation {
  Get: grpc.handleServerStreamingCall<GetDestination, Update>;
}

export interface PolicyHandlers extends grpc.UntypedServiceImplementation {
  Watch: grpc.handleServerStreamingCall<WatchInbound, InboundPolicy>;
}
