// cart: each shopper's cart count, kept in the cache (HTTP/1.1 in front, TCP behind). FAIL_RATE makes
// a replica answer that share of requests with 503: the demo's flaky replica, whose failures the
// route's retries hide from the frontend. LATENCY_MS slows a replica down.
import { CacheClient, serve, sleep } from './common.js';

const failRate = Number(process.env.FAIL_RATE ?? 0);
const latencyMs = Number(process.env.LATENCY_MS ?? 0);
const cache = new CacheClient(process.env.CACHE_HOST ?? 'cache', 6379);

serve(8080, async (_req, url) => {
  const m = /^\/cart\/([a-z0-9-]+)$/.exec(url.pathname);
  if (!m) return [404, { error: 'not found' }];
  if (latencyMs > 0) await sleep(latencyMs);
  if (Math.random() < failRate) return [503, { error: `${process.env.POD_NAME ?? 'cart'} is having a bad day` }];
  const reply = await cache.cmd(`INCR cart:${m[1]}`);
  return [200, { user: m[1], items: Number(reply.slice(1)) % 7, pod: process.env.POD_NAME }];
});
