// The gRPC service of the grpc scenario, shared by its upstream (bench/grpc-upstream.ts) and its load
// generator (bench/grpc-load.ts): bench.Echo with a unary and a server-streaming method on raw bytes.
// No protobuf: the proxies forward bytes, and (de)serializing messages would only load the client.
import type { ServiceDefinition } from '@grpc/grpc-js';

const same = (b: Buffer): Buffer => b;
const bytes = { requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same };

export const UNARY_PATH = '/bench.Echo/Unary';
export const STREAM_PATH = '/bench.Echo/Stream';

export const ECHO_SERVICE: ServiceDefinition = {
  unary: { path: UNARY_PATH, requestStream: false, responseStream: false, originalName: 'Unary', ...bytes },
  stream: { path: STREAM_PATH, requestStream: false, responseStream: true, originalName: 'Stream', ...bytes },
};

/** Bytes of every message, both ways (a small RPC, as most are). */
export const PAYLOAD_BYTES = 100;
/** Messages of one server-streaming call. */
export const STREAM_MESSAGES = 10;

/** A Stream request: the number of messages wanted (4 bytes, big-endian), then the payload each carries. */
export function streamRequest(messages: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(messages, 0);
  return Buffer.concat([head, payload]);
}

/** A unary request as it goes on the wire inside HTTP/2 DATA: the gRPC message frame (uncompressed flag,
 *  4-byte length, the message). h2load posts this file as each request's body. */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}
