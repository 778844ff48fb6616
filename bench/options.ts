// Command-line options of `npm run bench`: parsing and validation (every problem reported at once).
import { BenchError } from './tools.js';
import { PATHS, SCENARIOS, type Options, type PathName, type Scenario } from './types.js';

export const USAGE = `usage: node dist/bench/main.js [options]   (or: npm run bench -- [options])

  --duration SECONDS   measured load per run (default 10)
  --rounds N           alternating rounds; each path is measured once per round (default 2).
                       The report gives per path the median over rounds (errors are summed).
  --connections N      client connections (default 16; h2load adds 10 streams per connection)
  --scenario S         http1 | h2 | balance | mtls | propagation | all (default all)
                       balance: three HTTP/1.1 replicas, one slow; outrigger's balancer (fed by a
                       control plane) vs haproxy balance roundrobin, same load
                       mtls: client -> outbound proxy -> mutual TLS -> inbound proxy -> upstream,
                       an outrigger pair vs a haproxy pair: wrk keep-alive, then wrk with
                       "Connection: close" and a new TLS connection per request (handshake rate)
                       propagation: how long an endpoint change takes to reach N watching proxies
  --paths LIST         comma-separated subset of direct,outrigger,haproxy (default all three;
                       balance and mtls use outrigger and haproxy only)
  --balance-client C   balance: h2load (default; HTTP/1.1 with --h1, every request's latency logged)
                       or wrk (same load; its percentiles are unreliable with one slow replica,
                       see README)
  --slow-ms MS         balance: delay the slow replica adds to every response (default 200)
  --watchers N         propagation: simulated proxies watching the Service (default 200)
  --changes N          propagation: endpoint changes measured (default 10)
  --warmup SECONDS     unmeasured load per path before round 1 (default 1; 0 to skip)
  --json [FILE]        also write the figures as JSON: to FILE, or to stdout when FILE is
                       omitted or "-" (the table then goes to stderr)
  --help               this text

Needs wrk, h2load and haproxy (Debian: wrk nghttp2-client haproxy); installs nothing itself.
OUTRIGGER_BENCH_NODE=PATH runs the outrigger proxies with that node binary (default: this one), e.g.
OUTRIGGER_BENCH_NODE="$(scripts/node24.sh node)" npm run bench, to compare Node 20 and Node 24.
`;

const DEFAULTS: Options = {
  duration: 10,
  rounds: 2,
  connections: 16,
  warmup: 1,
  balanceClient: 'h2load',
  slowMs: 200,
  watchers: 200,
  changes: 10,
  scenarios: [...SCENARIOS],
  paths: [...PATHS],
  json: undefined,
};

/** Parsed options, or 'help'. Throws a BenchError listing every bad option. */
export function parseOptions(argv: readonly string[]): Options | 'help' {
  const opts: Options = { ...DEFAULTS, scenarios: [...DEFAULTS.scenarios], paths: [...DEFAULTS.paths] };
  const problems: string[] = [];
  const args = argv.flatMap((a) => (a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a]));

  const integer = (name: string, raw: string | undefined, min: number): number => {
    const value = Number(raw);
    if (raw === undefined || !/^\d+$/.test(raw) || value < min) {
      problems.push(`${name} wants an integer >= ${min}, got ${raw === undefined ? 'nothing' : `"${raw}"`}`);
      return min;
    }
    return value;
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    switch (arg) {
      case '--help':
      case '-h':
        return 'help';
      case '--duration':
        opts.duration = integer(arg, args[++i], 1);
        break;
      case '--rounds':
        opts.rounds = integer(arg, args[++i], 1);
        break;
      case '--connections':
        opts.connections = integer(arg, args[++i], 1);
        break;
      case '--warmup':
        opts.warmup = integer(arg, args[++i], 0);
        break;
      case '--balance-client': {
        const raw = args[++i];
        if (raw === 'h2load' || raw === 'wrk') opts.balanceClient = raw;
        else problems.push(`--balance-client wants h2load or wrk, got "${raw ?? ''}"`);
        break;
      }
      case '--slow-ms':
        opts.slowMs = integer(arg, args[++i], 0);
        break;
      case '--watchers':
        opts.watchers = integer(arg, args[++i], 1);
        break;
      case '--changes':
        opts.changes = integer(arg, args[++i], 1);
        break;
      case '--scenario': {
        const raw = args[++i];
        if (raw === 'all') opts.scenarios = [...SCENARIOS];
        else if (SCENARIOS.includes(raw as Scenario)) opts.scenarios = [raw as Scenario];
        else problems.push(`--scenario wants ${SCENARIOS.join(', ')} or all, got "${raw ?? ''}"`);
        break;
      }
      case '--paths': {
        const list = (args[++i] ?? '').split(',').filter(Boolean);
        const bad = list.filter((p) => !PATHS.includes(p as PathName));
        if (list.length === 0 || bad.length > 0) problems.push(`--paths wants a subset of ${PATHS.join(',')}, got "${list.join(',')}"`);
        else opts.paths = PATHS.filter((p) => list.includes(p)); // keep a stable order
        break;
      }
      case '--json': {
        // The value is optional: a following option (or nothing) means stdout.
        const next = args[i + 1];
        if (next === undefined || next.startsWith('--')) opts.json = '-';
        else opts.json = args[++i];
        break;
      }
      default:
        problems.push(`unknown argument "${arg ?? ''}"`);
    }
  }
  if (problems.length > 0) throw new BenchError(`${problems.join('\n')}\n\n${USAGE}`);
  return opts;
}
