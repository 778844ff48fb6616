// `npm run fuzz`: the long fuzz run of the HTTP/1 parser and protocol detection (test/fuzz/http1.ts),
// 100,000 inputs by default: prints inputs/s, what each side accepted and refused, and every difference.
//   npm run fuzz -- [--runs N] [--seed S]
import { parseArgs } from 'node:util';
import { fuzz } from './http1.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '100000' }, seed: { type: 'string' } },
});
const runs = Number(values.runs);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(seed)) {
  process.stderr.write('usage: npm run fuzz -- [--runs N] [--seed S]\n');
  process.exit(2);
}
process.stdout.write(`fuzzing ${runs} request heads and ${runs} chunked bodies, seed ${seed}\n`);
const r = await fuzz(runs, seed);
const list = (title: string, items: string[]) => {
  process.stdout.write(`${title}: ${items.length}\n`);
  for (const x of items.slice(0, 20)) process.stdout.write(`  ${x}\n`);
};
process.stdout.write(
  `${r.inputs} heads in ${r.seconds.toFixed(1)} s (${Math.round(r.inputs / r.seconds)} inputs/s, with llhttp over loopback)\n` +
    `both accept: ${r.acceptedBoth}, both refuse: ${r.refusedBoth}, max parse ${r.maxParseMs.toFixed(2)} ms\n` +
    `chunked bodies: ${r.chunked.inputs}, scanned whole, split and byte by byte alike; both read the same payload: ${r.chunked.acceptedBoth}, both refuse: ${r.chunked.refusedBoth}\n` +
    `ours stricter than llhttp, by rule:\n`,
);
for (const [rule, n] of [...r.stricter].sort((a, b) => b[1] - a[1])) process.stdout.write(`  ${n}\t${rule}\n`);
list('ours stricter, no rule says why', r.unexplained);
process.stdout.write('ours accepts what llhttp refuses, by rule:\n');
for (const [rule, n] of r.lenient) process.stdout.write(`  ${n}\t${rule}\n`);
list('ours accepts, llhttp refuses, no rule says why', r.lenientUnexplained);
list('both accept, different results', r.disagreements);
list('accepted by the parser, not detected as HTTP/1', r.undetected);
process.stdout.write('chunked: ours refuses what llhttp reads, by rule:\n');
for (const [rule, n] of r.chunked.stricter) process.stdout.write(`  ${n}\t${rule}\n`);
list('chunked: ours refuses, llhttp reads a body, no rule says why', r.chunked.unexplained);
list('chunked: ours ends the message, llhttp refuses', r.chunked.lenient);
list('chunked: both read a body, different payloads', r.chunked.disagreements);
const bad =
  r.disagreements.length +
  r.unexplained.length +
  r.lenientUnexplained.length +
  r.undetected.length +
  r.chunked.unexplained.length +
  r.chunked.lenient.length +
  r.chunked.disagreements.length;
process.exit(bad === 0 ? 0 : 1);
