// ratings: stars per product (HTTP/1.1). Two versions run side by side: v2, the canary, answers with
// half stars and is a little slower; an HTTPRoute sends it 10% of the traffic.
import { serve, sleep } from './common.js';

const version = process.env.VERSION ?? 'v1';
serve(8080, async (_req, url) => {
  const m = /^\/ratings\/([a-z0-9]+)$/.exec(url.pathname);
  if (!m) return [404, { error: 'not found' }];
  const seed = [...m[1]].reduce((n, c) => n + c.charCodeAt(0), 0);
  if (version === 'v2') {
    await sleep(15 + Math.random() * 10);
    return [200, { id: m[1], stars: 3 + (seed % 5) / 2, version }];
  }
  return [200, { id: m[1], stars: 3 + (seed % 3), version }];
});
