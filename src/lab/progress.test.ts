// The lab's progress lines: redrawn in place on a terminal, a line at start and at done in a log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bar, formatElapsed, Progress } from './progress.js';

function stream(tty: boolean, columns = 80): { out: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const out = {
    isTTY: tty,
    columns,
    write(s: string) {
      text += s;
      return true;
    },
  };
  return { out: out as unknown as NodeJS.WriteStream, text: () => text };
}

function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

void test('not on a terminal: one line at start and one at done, no carriage return or escape code', () => {
  const { out, text } = stream(false);
  const c = clock();
  const p = new Progress(out, c.now);
  const ph = p.phase('overhead (sidecar)', 3);
  for (let i = 0; i < 3; i++) {
    c.advance(1500);
    ph.tick();
  }
  ph.done('3 steps, 12,000 requests');
  ph.done('again');
  assert.equal(
    text(),
    'overhead (sidecar): started (3 to do)\noverhead (sidecar): done 3/3 in 4.5 s: 3 steps, 12,000 requests\n',
  );
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(text(), /[\r\x1b]/);
});

void test('on a terminal: the line is redrawn in place with a bar, the count and the elapsed time, and left standing when done', () => {
  const { out, text } = stream(true, 80);
  const c = clock();
  const p = new Progress(out, c.now);
  const ph = p.phase('blast radius', 4);
  c.advance(200);
  ph.tick(2);
  c.advance(10); // within the redraw interval: not drawn again
  ph.tick(1);
  c.advance(2000);
  ph.tick(5); // past the total: stops at the total
  ph.done('1 pod failed');
  const draws = text().split('\r\x1b[2K').slice(1);
  assert.equal(draws.length, 4, JSON.stringify(draws)); // start, 2/4, 4/4, done
  assert.match(draws[0] ?? '', /^blast radius \[\.+\] 0\/4 0\.0 s$/);
  assert.match(draws[1] ?? '', /^blast radius \[#+\.+\] 2\/4 0\.2 s$/);
  assert.match(draws[2] ?? '', /^blast radius \[#+\] 4\/4 2\.2 s$/);
  assert.equal(draws[3], `blast radius [${'#'.repeat(30)}] 4/4 2.2 s  1 pod failed\n`);
  assert.ok(text().endsWith('\n'));
});

void test('on a narrow terminal the line fits: the bar shrinks, then goes', () => {
  for (const cols of [50, 30, 12]) {
    const { out, text } = stream(true, cols);
    const ph = new Progress(out, clock().now).phase('noisy neighbour', 10);
    ph.tick(5);
    ph.done();
    for (const d of text().split('\r\x1b[2K').slice(1)) assert.ok(d.replace(/\n$/, '').length < cols, `${cols}: ${d}`);
  }
});

void test('a phase started while another runs ends the first as stopped; control characters in a name are spaces', () => {
  const { out, text } = stream(false);
  const p = new Progress(out, clock().now);
  const a = p.phase('upgrade\x1b[2J', 2);
  a.tick();
  p.phase('key exposure', 1).done();
  a.done('late');
  assert.equal(
    text(),
    [
      'upgrade [2J: started (2 to do)',
      'upgrade [2J: stopped 1/2 in 0.0 s',
      'key exposure: started (1 to do)',
      'key exposure: done 0/1 in 0.0 s',
      '',
    ].join('\n'),
  );
});

void test('bar and elapsed time', () => {
  assert.equal(bar(0, 4, 8), '........');
  assert.equal(bar(1, 4, 8), '##......');
  assert.equal(bar(4, 4, 8), '########');
  assert.equal(bar(0, 0, 4), '....');
  assert.equal(formatElapsed(4210), '4.2 s');
  assert.equal(formatElapsed(65_000), '1 m 05 s');
  assert.equal(formatElapsed(3_725_000), '1 h 02 m');
});
