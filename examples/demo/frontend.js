// frontend: the shop's web front (HTTP/1.1). Each page calls the catalog (gRPC), the ratings (HTTP,
// through the canary route) and the cart (HTTP, through the retrying route).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { get, serve } from './common.js';

const PROTO = fileURLToPath(new URL('./catalog.proto', import.meta.url));
const demo = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { defaults: true })).demo;
const catalog = new demo.Catalog('catalog:9090', grpc.credentials.createInsecure());
const call = (method, req) =>
  new Promise((resolve, reject) =>
    catalog[method](req, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );

async function rating(id) {
  const r = await get('ratings', 80, `/ratings/${id}`);
  return r.status === 200 ? r.body : null; // a page without stars is still a page
}

serve(8080, async (req, url) => {
  const user = req.headers['x-user'] ?? 'guest';
  if (url.pathname === '/') {
    const { products } = await call('ListProducts', { limit: 4 });
    const [stars, cart] = await Promise.all([
      Promise.all(products.map((p) => rating(p.id))),
      get('cart', 80, `/cart/${user}`),
    ]);
    if (cart.status !== 200) return [502, { error: `cart answered ${cart.status}` }];
    return [200, { products: products.map((p, i) => ({ ...p, rating: stars[i] })), cart: cart.body }];
  }
  const m = /^\/product\/([a-z0-9]+)$/.exec(url.pathname);
  if (m) {
    try {
      const [product, stars] = await Promise.all([call('GetProduct', { id: m[1] }), rating(m[1])]);
      return [200, { ...product, rating: stars }];
    } catch (err) {
      if (err.code === grpc.status.NOT_FOUND) return [404, { error: err.details }];
      throw err;
    }
  }
  return [404, { error: 'not found' }];
});
