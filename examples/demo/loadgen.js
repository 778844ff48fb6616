// loadgen: shoppers. Sends RATE requests per second to the frontend (home pages and product pages,
// now and then a product that does not exist), and prints a summary every 10 seconds. Every 5 s it
// also tries the cache, which is for catalog and cart only: the cache's proxy closes the connection
// at once (the AuthorizationPolicy in demo.yaml), and the summary counts those refusals.
import net from 'node:net';
import { get, log, sleep } from './common.js';

const rate = Number(process.env.RATE ?? 10);
const users = ['ana', 'kai', 'lei', 'noa', 'tama'];
const counts = { sent: 0, ok: 0, notFound: 0, failed: 0 };

async function one(i) {
  const user = users[i % users.length];
  const path = i % 10 < 6 ? '/' : i % 30 === 9 ? '/product/p404' : `/product/p${1 + (i % 6)}`;
  counts.sent++;
  try {
    const r = await get('frontend', 80, path, { 'x-user': user });
    if (r.status === 200) counts.ok++;
    else if (r.status === 404) counts.notFound++;
    else counts.failed++;
  } catch {
    counts.failed++;
  }
}

const cache = { tried: 0, refused: 0, answered: 0 };
function tryCache() {
  cache.tried++;
  const s = net.connect(6379, 'cache');
  let got = '';
  s.setEncoding('utf8');
  s.setTimeout(3000, () => s.destroy());
  s.on('connect', () => s.write('PING\n'));
  s.on('data', (d) => {
    got += d;
    if (got.includes('\n')) s.end();
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    if (got.startsWith('+PONG')) cache.answered++;
    else cache.refused++;
  });
}
setInterval(tryCache, 5000);

setInterval(
  () =>
    log(
      `sent ${counts.sent}, ok ${counts.ok}, not found ${counts.notFound}, failed ${counts.failed}; ` +
        `cache tried ${cache.tried}: refused ${cache.refused} (as the policy says), answered ${cache.answered}`,
    ),
  10_000,
);
for (let i = 0; ; i++) {
  void one(i);
  await sleep(1000 / rate);
}
