// catalog: the shop's products, served over gRPC (HTTP/2). Stock levels come from the cache (TCP).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { CacheClient, log } from './common.js';

const PROTO = fileURLToPath(new URL('./catalog.proto', import.meta.url));
const demo = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { defaults: true })).demo;
const cache = new CacheClient(process.env.CACHE_HOST ?? 'cache', 6379);

const PRODUCTS = [
  ['p1', 'Outrigger canoe', 129900],
  ['p2', 'Carbon paddle', 18900],
  ['p3', 'Spray skirt', 7900],
  ['p4', 'Dry bag', 2900],
  ['p5', 'Life vest', 9900],
  ['p6', 'Ama repair kit', 4900],
].map(([id, name, priceCents]) => ({ id, name, priceCents }));

async function withStock(p) {
  let stock = 0;
  try {
    const reply = await cache.cmd(`INCR views:${p.id}`);
    stock = 100 - (Number(reply.slice(1)) % 100);
  } catch {
    stock = -1; // the cache is away: unknown stock, the catalog still answers
  }
  return { ...p, stock };
}

const server = new grpc.Server();
server.addService(demo.Catalog.service, {
  ListProducts: (call, cb) => {
    const limit = call.request.limit > 0 ? call.request.limit : PRODUCTS.length;
    Promise.all(PRODUCTS.slice(0, limit).map(withStock)).then(
      (products) => cb(null, { products }),
      (err) => cb(err),
    );
  },
  GetProduct: (call, cb) => {
    const p = PRODUCTS.find((x) => x.id === call.request.id);
    if (p === undefined) return cb({ code: grpc.status.NOT_FOUND, message: `no product ${call.request.id}` });
    withStock(p).then(
      (x) => cb(null, x),
      (err) => cb(err),
    );
  },
});
server.bindAsync(`0.0.0.0:${process.env.PORT ?? 9090}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  log(`catalog (gRPC) listening on :${port}`);
});
