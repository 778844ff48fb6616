// Reading the Prometheus text exposition format (version 0.0.4) that the proxies' admin /metrics
// serves: one sample per line, `name{label="value",...} value [timestamp]`; comments and blank lines
// are skipped. Only what the observe code needs: no exemplars, no OpenMetrics extensions.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Every sample in `text`, optionally only those whose name passes `keep`. A malformed line is
 *  skipped (a scrape is never refused for one bad line). */
export function parsePrometheusText(text: string, keep?: (name: string) => boolean): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = parseLine(line, keep);
    if (s !== undefined) out.push(s);
  }
  return out;
}

function parseLine(line: string, keep: ((name: string) => boolean) | undefined): Sample | undefined {
  let i = 0;
  while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i] as string)) i++;
  const name = line.slice(0, i);
  if (name === '' || (keep !== undefined && !keep(name))) return undefined;
  const labels: Record<string, string> = {};
  if (line[i] === '{') {
    i++;
    for (;;) {
      while (line[i] === ' ' || line[i] === ',') i++;
      if (line[i] === '}') {
        i++;
        break;
      }
      const eq = line.indexOf('=', i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const key = line.slice(i, eq).trim();
      let j = eq + 2;
      let value = '';
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) {
          j++;
          const c = line[j] as string;
          value += c === 'n' ? '\n' : c;
        } else {
          value += line[j] as string;
        }
      }
      if (j >= line.length) return undefined;
      labels[key] = value;
      i = j + 1;
    }
  }
  const rest = line.slice(i).trim().split(/\s+/);
  const v = rest[0];
  if (v === undefined || v === '') return undefined;
  const value = v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v);
  if (Number.isNaN(value) && v !== 'NaN') return undefined;
  return { name, labels, value };
}
