// Command-line options of `npm run bench`: parsing and validation (every problem reported at once).
import { BenchError } from './tools.js';
import { ALL_SCENARIOS, PATHS, SCENARIOS, type Options, type PathName, type Scenario } from './types.js';

export const USAGE = `usage: node dist/bench/main.js [options]   (or: npm run bench -- [options])

  --duration SECONDS   measured load per run (default 10; fixed-rate: 60)
  --rounds N           alternating rounds; each path is measured once per round (default 2).
                       The report gives per path the median over rounds (errors are summed);
                       fixed-rate pools the rounds' requests into one latency histogram.
  --connections N      client connections (default 16; h2load adds 10 streams per connection)
  --scenario S[,S...]  http1 | h2 | balance | mtls | grpc | propagation | fixed-rate | mesh-size | all
                       (default all = http1,h2,balance,mtls,grpc,propagation; fixed-rate and mesh-size
                       run only when named: they take minutes, and mesh-size needs root)
                       balance: three HTTP/1.1 replicas, one slow; outrigger's balancer (fed by a
                       control plane) vs haproxy balance roundrobin, same load
                       mtls: client -> outbound proxy -> mutual TLS -> inbound proxy -> upstream,
                       an outrigger pair vs a haproxy pair: wrk keep-alive, then wrk with
                       "Connection: close" and a new TLS connection per request (handshake rate)
                       grpc: the mtls scenario's pairs over HTTP/2 to a @grpc/grpc-js server, and
                       direct: unary and server-streaming calls from @grpc/grpc-js clients, and
                       unary calls from h2load; the p99 each pair adds over direct
                       propagation: how long an endpoint change takes to reach N watching proxies
                       fixed-rate: an open-loop load at constant rates (latency from each request's
                       intended send time, coordinated omission corrected as wrk2 does) on direct
                       and the mtls scenario's two pairs: the latency each pair adds over direct
                       (p50, p90, p99, p99.9, max), each proxy's CPU per 1,000 RPS and memory
                       mesh-size: one proxy's and the control plane's memory while the mesh knows
                       N Services and the proxy talks to K of them (root: runs in a network
                       namespace of its own, with an iptables REDIRECT as proxy-init's)
  --paths LIST         comma-separated subset of direct,outrigger,haproxy (default all three;
                       balance and mtls use outrigger and haproxy only)
  --balance-client C   balance: h2load (default; HTTP/1.1 with --h1, every request's latency logged)
                       or wrk (same load; its percentiles are unreliable with one slow replica,
                       see README)
  --resumption on|off  mtls-handshake: off (default) makes every new TLS connection between the
                       proxies a full handshake on both pairs (outrigger --mesh-tls-session-resumption
                       false; haproxy no-ssl-reuse); on lets both resume TLS sessions (outrigger's
                       default; haproxy's server line without no-ssl-reuse)
  --slow-ms MS         balance: delay the slow replica adds to every response (default 200)
  --watchers N         propagation: simulated proxies watching the Service (default 200)
  --changes N          propagation: endpoint changes measured (default 10)
  --rates LIST         fixed-rate: comma-separated requests per second (default 1000,2000)
  --memory-sample-s S  fixed-rate, mesh-size: seconds between memory samples of each proxy during
                       a run (default 5; each sample walks the process's page tables, ~1 ms)
  --services LIST      mesh-size: Services the mesh knows, one cell each (default 10,100,1000,5000)
  --used LIST          mesh-size: Services the proxy talks to (default 1,10,100; cells where it is
                       more than the mesh has are skipped)
  --endpoints N        mesh-size: ready endpoints of every Service (default 2)
  --mesh-rate RPS      mesh-size: requests per second, spread over the used Services (default 200)
  --hold SECONDS       mesh-size: seconds of traffic per cell (default 15)
  --short              a quick try: 1 round, fixed-rate 10 s at the first rate only, mesh-size
                       10 and 5000 Services x 10 used for 5 s (options given explicitly win)
  --warmup SECONDS     unmeasured load per path before round 1 (default 1; 0 to skip)
  --json [FILE]        also write the figures as JSON: to FILE, or to stdout when FILE is
                       omitted or "-" (the table then goes to stderr)
  --help               this text

Needs wrk, h2load and haproxy (Debian: wrk nghttp2-client haproxy); installs nothing itself.
mesh-size also needs root, iproute2 and iptables.
OUTRIGGER_BENCH_NODE=PATH runs the outrigger proxies with that node binary (default: this one), e.g.
OUTRIGGER_BENCH_NODE="$(scripts/node24.sh node)" npm run bench, to compare Node 20 and Node 24.
`;

const DEFAULTS: Options = {
  duration: 10,
  rounds: 2,
  connections: 16,
  warmup: 1,
  balanceClient: 'h2load',
  resumption: false,
  slowMs: 200,
  watchers: 200,
  changes: 10,
  rates: [1000, 2000],
  fixedDuration: 60,
  memorySampleS: 5,
  meshServices: [10, 100, 1000, 5000],
  meshUsed: [1, 10, 100],
  meshEndpoints: 2,
  meshRate: 200,
  meshHoldS: 15,
  scenarios: [...ALL_SCENARIOS],
  paths: [...PATHS],
  json: undefined,
};

/** What --short changes, unless the option itself is given. */
const SHORT: Partial<Options> = {
  rounds: 1,
  fixedDuration: 10,
  meshServices: [10, 5000],
  meshUsed: [10],
  meshHoldS: 5,
};

/** Parsed options, or 'help'. Throws a BenchError listing every bad option. */
export function parseOptions(argv: readonly string[]): Options | 'help' {
  const opts: Options = { ...DEFAULTS, scenarios: [...DEFAULTS.scenarios], paths: [...DEFAULTS.paths] };
  const problems: string[] = [];
  /** The options given on the command line (by their Options key), which --short leaves alone. */
  const given = new Set<keyof Options>();
  let short = false;
  const args = argv.flatMap((a) =>
    a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a],
  );

  const integer = (name: string, raw: string | undefined, min: number): number => {
    const value = Number(raw);
    if (raw === undefined || !/^\d+$/.test(raw) || value < min) {
      problems.push(`${name} wants an integer >= ${min}, got ${raw === undefined ? 'nothing' : `"${raw}"`}`);
      return min;
    }
    return value;
  };

  /** A comma-separated list of integers >= min. */
  const integers = (name: string, raw: string | undefined, min: number): number[] => {
    const list = (raw ?? '').split(',').filter(Boolean);
    if (list.length === 0 || !list.every((v) => /^\d+$/.test(v) && Number(v) >= min)) {
      problems.push(`${name} wants a comma-separated list of integers >= ${min}, got "${raw ?? ''}"`);
      return [min];
    }
    return list.map(Number);
  };

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    switch (arg) {
      case '--help':
      case '-h':
        return 'help';
      case '--duration':
        opts.duration = opts.fixedDuration = integer(arg, args[++i], 1);
        given.add('fixedDuration');
        break;
      case '--rounds':
        opts.rounds = integer(arg, args[++i], 1);
        given.add('rounds');
        break;
      case '--rates':
        opts.rates = integers(arg, args[++i], 1);
        given.add('rates');
        break;
      case '--memory-sample-s':
        opts.memorySampleS = integer(arg, args[++i], 1);
        break;
      case '--services':
        opts.meshServices = integers(arg, args[++i], 1);
        given.add('meshServices');
        break;
      case '--used':
        opts.meshUsed = integers(arg, args[++i], 1);
        given.add('meshUsed');
        break;
      case '--endpoints':
        opts.meshEndpoints = integer(arg, args[++i], 1);
        break;
      case '--mesh-rate':
        opts.meshRate = integer(arg, args[++i], 1);
        break;
      case '--hold':
        opts.meshHoldS = integer(arg, args[++i], 1);
        given.add('meshHoldS');
        break;
      case '--short':
        short = true;
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
      case '--resumption': {
        const raw = args[++i];
        if (raw === 'on' || raw === 'off') opts.resumption = raw === 'on';
        else problems.push(`--resumption wants on or off, got "${raw ?? ''}"`);
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
        const raw = args[++i] ?? '';
        const list = raw.split(',').filter(Boolean);
        const bad = list.filter((s) => s !== 'all' && !SCENARIOS.includes(s as Scenario));
        if (list.length === 0 || bad.length > 0)
          problems.push(`--scenario wants ${SCENARIOS.join(', ')} or all (or a comma-separated list), got "${raw}"`);
        // In the order given, each once; `all` stands for the quick ones.
        else opts.scenarios = [...new Set(list.flatMap((s) => (s === 'all' ? [...ALL_SCENARIOS] : [s as Scenario])))];
        break;
      }
      case '--paths': {
        const list = (args[++i] ?? '').split(',').filter(Boolean);
        const bad = list.filter((p) => !PATHS.includes(p as PathName));
        if (list.length === 0 || bad.length > 0)
          problems.push(`--paths wants a subset of ${PATHS.join(',')}, got "${list.join(',')}"`);
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
  if (short) {
    for (const [key, value] of Object.entries(SHORT) as [keyof Options, Options[keyof Options]][]) {
      if (!given.has(key)) (opts as unknown as Record<string, unknown>)[key] = value;
    }
    if (!given.has('rates')) opts.rates = opts.rates.slice(0, 1);
  }
  if (problems.length > 0) throw new BenchError(`${problems.join('\n')}\n\n${USAGE}`);
  return opts;
}
