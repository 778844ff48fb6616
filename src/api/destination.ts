// The destination API (destination.proto) for TypeScript: the messages as the loader gives them
// (snake_case field names, enums as their names, absent fields at their defaults), the service
// definition a server adds, and a client.
import grpc from '@grpc/grpc-js';
import { formatAddr, type SocketAddr } from '../core/addr.js';
import { loadService } from './load.js';

export const DESTINATION_SERVICE = 'outrigger.destination.v1.Destination';

export type ProtocolHint = 'UNKNOWN' | 'HTTP1' | 'H2' | 'OPAQUE';

export interface GetDestination {
  path: string;
}

export interface Endpoint {
  addr: string;
  weight: number;
  identity: string;
  protocol_hint: ProtocolHint;
  meshed: boolean;
  pod: string;
}

export interface Update {
  known: boolean;
  service: string;
  endpoints: Endpoint[];
}

export interface DestinationClient extends grpc.Client {
  Get(request: GetDestination, options?: grpc.CallOptions): grpc.ClientReadableStream<Update>;
}

/** What a server implements: one handler per RPC. */
export interface DestinationHandlers extends grpc.UntypedServiceImplementation {
  Get: grpc.handleServerStreamingCall<GetDestination, Update>;
}

function ctor(): grpc.ServiceClientConstructor {
  return loadService('destination.proto', DESTINATION_SERVICE);
}

/** The service definition to pass to `server.addService`. */
export function destinationServiceDefinition(): grpc.ServiceDefinition {
  return ctor().service;
}

/** Channel settings for a long-lived watcher: reconnect within seconds (not grpc's default of up to
 *  two minutes) so a restarted control plane is found quickly, and ping so that a peer that vanished
 *  without closing its connection is noticed. */
export const WATCH_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 250,
  'grpc.max_reconnect_backoff_ms': 5000,
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
};

/** A plaintext client of the destination service at `addr` (mTLS comes with identity). */
export function destinationClient(addr: SocketAddr | string, options: grpc.ChannelOptions = WATCH_CHANNEL_OPTIONS): DestinationClient {
  const Client = ctor();
  const target = typeof addr === 'string' ? addr : formatAddr(addr);
  return new Client(target, grpc.credentials.createInsecure(), options) as unknown as DestinationClient;
}
