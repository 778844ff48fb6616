// gRPC test fixtures: a plaintext grpc-js server on loopback, and the Echo service of
// test/fixtures/echo.proto (its client constructor, and a server that echoes unless told otherwise).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** Starts a grpc-js server on 127.0.0.1 (port 0 unless given) with the services `add` registers; with a
 *  test context, it is shut down after the test, else the caller shuts it down. */
export async function startGrpcServer(
  add: (server: grpc.Server) => void,
  opts: { readonly t?: { after(fn: () => void): void }; readonly port?: number } = {},
): Promise<{ readonly server: grpc.Server; readonly port: number }> {
  const server = new grpc.Server();
  add(server);
  const addr = `127.0.0.1:${opts.port ?? 0}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  opts.t?.after(() => server.forceShutdown());
  return { server, port };
}

// Compiled to dist/test/, the .proto stays in test/fixtures/.
const PROTO = fileURLToPath(new URL('../../test/fixtures/echo.proto', import.meta.url));
type EchoPackage = { outrigger: { test: { Echo: grpc.ServiceClientConstructor } } };
const echoDefinition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
export const Echo = (grpc.loadPackageDefinition(echoDefinition) as unknown as EchoPackage).outrigger.test.Echo;

export interface EchoMsg {
  text: string;
  seq: number;
}

export interface EchoClient extends grpc.Client {
  Unary(
    req: EchoMsg,
    md: grpc.Metadata,
    opts: grpc.CallOptions,
    cb: (err: grpc.ServiceError | null, res?: EchoMsg) => void,
  ): grpc.ClientUnaryCall;
  Bidi(): grpc.ClientDuplexStream<EchoMsg, EchoMsg>;
}

export interface EchoHandlers {
  Unary?: grpc.handleUnaryCall<EchoMsg, EchoMsg>;
  Bidi?: grpc.handleBidiStreamingCall<EchoMsg, EchoMsg>;
}

/** An Echo server, shut down after the test: Unary answers the request as it is, Bidi answers each
 *  message with `echo <text>`, unless `handlers` say otherwise. Returns its port. */
export async function startGrpcEcho(t: { after(fn: () => void): void }, handlers: EchoHandlers = {}): Promise<number> {
  const unary: grpc.handleUnaryCall<EchoMsg, EchoMsg> = (call, cb) =>
    cb(null, { text: call.request.text, seq: call.request.seq });
  const bidi: grpc.handleBidiStreamingCall<EchoMsg, EchoMsg> = (call) => {
    call.on('data', (m: EchoMsg) => call.write({ text: `echo ${m.text}`, seq: m.seq }));
    call.on('end', () => call.end());
  };
  const service = { Unary: handlers.Unary ?? unary, Bidi: handlers.Bidi ?? bidi };
  const { port } = await startGrpcServer((s) => s.addService(Echo.service, service), { t });
  return port;
}
