// The grpc scenario's upstream, in its own process: a @grpc/grpc-js server of bench.Echo (h2c) on a free
// loopback port, and an HTTP/1 stats port whose GET /served says how many calls ended OK (the h2load
// load reads gRPC's status from nowhere, so the driver checks the count against its requests). Prints
// {"grpc": PORT, "stats": PORT} on its first stdout line.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import grpc from '@grpc/grpc-js';
import { ECHO_SERVICE } from './grpc-service.js';

let served = 0;
const server = new grpc.Server();
server.addService(ECHO_SERVICE, {
  unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) => {
    served++;
    done(null, call.request);
  },
  stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    const n = call.request.length >= 4 ? call.request.readUInt32BE(0) : 0;
    const payload = call.request.subarray(4);
    for (let i = 0; i < n; i++) call.write(payload);
    served++;
    call.end();
  },
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, grpcPort) => {
  if (err) {
    process.stderr.write(`grpc upstream: ${err.message}\n`);
    process.exit(1);
  }
  const stats = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url === '/served' ? served : null));
  });
  stats.listen(0, '127.0.0.1', () => {
    const statsPort = (stats.address() as AddressInfo).port;
    process.stdout.write(`${JSON.stringify({ grpc: grpcPort, stats: statsPort })}\n`);
  });
});
process.on('SIGTERM', () => process.exit(0));
