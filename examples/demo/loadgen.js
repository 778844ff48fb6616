// loadgen: shoppers. Sends RATE requests per second to the frontend (home pages and product pages,
// now and then a product that does not exist), and prints a summary every 10 seconds.
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

setInterval(() => log(`sent ${counts.sent}, ok ${counts.ok}, not found ${counts.notFound}, failed ${counts.failed}`), 10_000);
for (let i = 0; ; i++) {
  void one(i);
  await sleep(1000 / rate);
}
