// Loads the control plane API's .proto files (kept as source in src/api, read at run time with
// proto-loader) into grpc-js service definitions and client constructors.
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

/** The directory holding the .proto files, from either src/api (tsx) or dist/src/api (compiled). */
const PROTO_DIR = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../src/api/' : './', import.meta.url));

const LOADER_OPTIONS: protoLoader.Options = {
  // Field names stay as written in the .proto (snake_case), enums as their names, 64-bit numbers as
  // strings, absent fields at their defaults: what the hand-written TypeScript message types assume.
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

/** The client constructor of `service` (a dotted name like `outrigger.destination.v1.Destination`)
 *  in `file` (relative to src/api); its `.service` is the definition a server adds. */
export function loadService(file: string, service: string): grpc.ServiceClientConstructor {
  let node: unknown = loadFile(file);
  for (const part of service.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node)) throw new Error(`${file}: no service ${service}`);
  return node as grpc.ServiceClientConstructor;
}
