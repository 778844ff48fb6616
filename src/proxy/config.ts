// The proxy's configuration: flags and OUTRIGGER_PROXY_* variables, validated once at start-up by one
// parser per setting (all of them run, so every problem is reported at once), then frozen. Flags win
// over the environment. The settings are strings with simple rules, so the parsers are written here
// rather than with a schema library: the proxy runs in every pod, and zod alone holds about 6 MB.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../core/errors.js';
import { parseAddr, type Port, type SocketAddr } from '../core/addr.js';
import { parsePortList, type PortList } from '../core/ports.js';
import { DEFAULT_TRUST_DOMAIN, parseSpiffeId, type SpiffeId } from '../api/identity.js';
import type { ChannelTls } from '../api/grpc/tls.js';
import { CONTROL_PLANE_NAMESPACE, CONTROL_PLANE_SERVICE_ACCOUNT } from '../manifests/contract.js';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';
import { SETTINGS, type SettingName } from './env.js';
import { parseAppProbes, type AppProbeTarget } from './admin/probes.js';

/** What a parser throws: what is wrong with the value. */
class Invalid extends Error {}
function invalid(message: string): never {
  throw new Invalid(message);
}

/** The value as a number, converted as Number() does (so " 5 " is 5). */
function num(v: string | undefined, notANumber = 'must be a number'): number {
  const n = Number(v);
  return v === undefined || !Number.isFinite(n) ? invalid(notANumber) : n;
}

function int(v: string | undefined, notANumber?: string): number {
  const n = num(v, notANumber);
  return Number.isInteger(n) ? n : invalid('must be an integer');
}

/** `n` when min <= n <= max; `message` (default: the bound it breaks) otherwise. */
function within(n: number, min: number, max: number, message?: string): number {
  if (n < min) invalid(message ?? `must be at least ${min}`);
  if (n > max) invalid(message ?? `must be at most ${max}`);
  return n;
}

const port = (v: string | undefined): Port =>
  within(int(v), 0, 65535, 'must be from 0 (any free port) to 65535') as Port;
const ms =
  (min: number) =>
  (v: string | undefined): number =>
    within(int(v, 'must be a number of milliseconds'), min, Infinity);
const count =
  (min: number, max = Infinity) =>
  (v: string | undefined): number =>
    within(int(v), min, max);
const ip = (v: string | undefined): string =>
  v !== undefined && /^[0-9.]+$|^[0-9A-Fa-f:]+$/.test(v) ? v : invalid('must be an IP address');
const bool = (v: string | undefined): boolean =>
  v === 'true' ? true : v === 'false' ? false : invalid('must be true or false');
const oneOf =
  <T extends string>(names: readonly T[]) =>
  (v: string | undefined): T =>
    names.includes(v as T) ? (v as T) : invalid(`must be one of ${names.join(', ')}`);

/** An optional string; unset or empty is undefined. */
const optionalText = (v: string | undefined): string | undefined => (v === undefined || v === '' ? undefined : v);

/** An optional HOST:PORT; unset or empty is undefined. */
const optionalAddr = (v: string | undefined): SocketAddr | undefined => {
  const text = optionalText(v);
  return text === undefined ? undefined : (parseAddr(text) ?? invalid(`must be HOST:PORT, got "${text}"`));
};

const optionalSpiffeId = (v: string | undefined): SpiffeId | undefined => {
  const text = optionalText(v);
  return text === undefined
    ? undefined
    : (parseSpiffeId(text)?.id ??
        invalid(`must be spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>, got "${text}"`));
};

const matching = (re: RegExp, message: string) => (v: string | undefined) => {
  const text = optionalText(v);
  return text === undefined || re.test(text) ? text : invalid(message);
};

const appProbes = (v: string | undefined): ReadonlyMap<string, AppProbeTarget> | undefined => {
  const text = optionalText(v);
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return invalid('must be JSON');
  }
  const r = parseAppProbes(json);
  return r.ok ? new Map(Object.entries(r.probes)) : invalid(r.problems.join('; '));
};

/** One parser per setting (SETTINGS in env.ts has the flags, variables, help and defaults). */
const PARSERS = {
  outboundPort: port,
  outboundAddr: ip,
  inboundPort: port,
  inboundAddr: ip,
  adminPort: port,
  adminAddr: ip,
  inboundNetns: matching(/^\/[^\0]*$/, 'must be an absolute path'),
  outboundSources: (v: string | undefined): readonly string[] | undefined => {
    const text = optionalText(v);
    return text === undefined ? undefined : Object.freeze(text.split(',').map((a) => ip(a.trim())));
  },
  staticDestination: optionalAddr,
  destinationAddr: optionalAddr,
  // mTLS: all three or none (checked below).
  identityAddr: optionalAddr,
  identityTokenFile: optionalText,
  identity: optionalSpiffeId,
  trustAnchors: matching(/-----BEGIN CERTIFICATE-----/, 'must be PEM certificates ("-----BEGIN CERTIFICATE-----")'),
  trustAnchorsFile: optionalText,
  controlIdentity: optionalSpiffeId,
  meshTlsSessionResumption: bool,
  policyAddr: optionalAddr,
  pod: matching(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be namespace/name'),
  defaultInboundPolicy: oneOf<DefaultPolicyName>(DEFAULT_POLICY_NAMES),
  // The same format as the pod annotation config.outrigger.io/opaque-ports, parsed by the same code.
  opaquePorts: (v: string | undefined): PortList => {
    const r = parsePortList(v ?? '');
    return r.ok ? r.ports : invalid(r.message);
  },
  detectTimeoutMs: ms(1),
  detectMaxBytes: count(64, 1 << 20),
  maxHeaderBytes: count(1024, 1 << 20),
  headerTimeoutMs: ms(1),
  idleTimeoutMs: ms(1),
  connectTimeoutMs: ms(1),
  responseTimeoutMs: ms(0),
  upstreamIdleTimeoutMs: ms(1),
  breakerFailures: count(1),
  maxInFlightRequests: count(1),
  maxQueuedRequests: count(0),
  maxIdlePerUpstream: count(0),
  drainTimeoutMs: ms(0),
  podNamespace: (v: string | undefined): string => v ?? '',
  podName: (v: string | undefined): string => v ?? '',
  podWorkload: (v: string | undefined): string => v ?? '',
  tapTokenFile: optionalText,
  traceCollector: matching(/^https?:\/\/[^/]+/, 'must be an http:// or https:// URL'),
  traceSampleRatio: (v: string | undefined): number =>
    within(num(v, 'must be a number from 0 to 1'), 0, 1, 'must be from 0 to 1'),
  appProbes,
  accessLog: optionalText,
  logLevel: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const),
} satisfies Record<SettingName, (v: string | undefined) => unknown>;

export type ProxyConfig = { readonly [K in SettingName]: ReturnType<(typeof PARSERS)[K]> };

/** Why PEM text cannot be the trust anchors, or undefined when it can (every block a CA certificate). */
function trustAnchorsProblem(pem: string): string | undefined {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) return 'holds no PEM certificate ("-----BEGIN CERTIFICATE-----")';
  for (const [i, b] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(b);
    } catch {
      return `certificate ${i + 1} of ${blocks.length} does not parse`;
    }
    if (!cert.ca) return `certificate ${i + 1} of ${blocks.length} (subject "${cert.subject}") is not a CA certificate`;
  }
  return undefined;
}

/** Reads the trust anchors file; throws an Error naming the file and the problem. */
function readTrustAnchors(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const problem = trustAnchorsProblem(pem);
  if (problem !== undefined) throw new Error(`${file} ${problem}`);
  return pem;
}

/** The identity the control plane must present: --control-identity, else the control plane's identity
 *  in the proxy's own trust domain (that of --identity, else cluster.local). */
export function controlIdentity(cfg: ProxyConfig): SpiffeId {
  if (cfg.controlIdentity !== undefined) return cfg.controlIdentity;
  const td =
    (cfg.identity !== undefined ? parseSpiffeId(cfg.identity)?.trustDomain : undefined) ?? DEFAULT_TRUST_DOMAIN;
  return `spiffe://${td}/ns/${CONTROL_PLANE_NAMESPACE}/sa/${CONTROL_PLANE_SERVICE_ACCOUNT}` as SpiffeId;
}

/**
 * How the proxy reaches the control plane: TLS, the trust anchors of --trust-anchors, or of
 * --trust-anchors-file read again for each new connection (the last good ones kept if the file cannot
 * be read or is bad then), and the identity it must present. Undefined without anchors (loadProxyConfig
 * refuses a control plane address then).
 */
export function controlTls(cfg: ProxyConfig, onReadProblem?: (problem: string) => void): ChannelTls | undefined {
  const serverIdentity = controlIdentity(cfg);
  if (cfg.trustAnchors !== undefined) return { trustAnchors: cfg.trustAnchors, serverIdentity };
  const file = cfg.trustAnchorsFile;
  if (file === undefined) return undefined;
  let last = readTrustAnchors(file);
  return {
    serverIdentity,
    trustAnchors: () => {
      try {
        last = readTrustAnchors(file);
      } catch (err) {
        onReadProblem?.((err as Error).message);
      }
      return last;
    },
  };
}

/** The identity settings, when mTLS is on (all three are set; loadProxyConfig checks). */
export function identitySettings(
  cfg: ProxyConfig,
): { addr: SocketAddr; tokenFile: string; identity: SpiffeId } | undefined {
  if (cfg.identityAddr === undefined || cfg.identityTokenFile === undefined || cfg.identity === undefined)
    return undefined;
  return { addr: cfg.identityAddr, tokenFile: cfg.identityTokenFile, identity: cfg.identity };
}

/**
 * Builds the config from flag values (camelCase keys, as commander gives them) over the environment
 * over the defaults. Throws ConfigError listing every problem, each with its flag and variable.
 */
export function loadProxyConfig(
  flags: Partial<Record<SettingName, string | undefined>>,
  env: NodeJS.ProcessEnv = process.env,
): ProxyConfig {
  const raw: Record<string, string | undefined> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    raw[name] = flags[name] ?? env[spec.env] ?? ('default' in spec ? spec.default : undefined);
  }
  const parsed: Partial<Record<SettingName, unknown>> = {};
  const invalidSettings: string[] = [];
  for (const key of Object.keys(PARSERS) as SettingName[]) {
    try {
      parsed[key] = PARSERS[key](raw[key]);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      const spec = SETTINGS[key];
      const given = raw[key];
      invalidSettings.push(
        `--${spec.flag} (${spec.env}): ${err.message}${given !== undefined && !err.message.includes('got') && !err.message.includes(given) ? `, got "${given}"` : ''}`,
      );
    }
  }
  if (invalidSettings.length > 0) throw new ConfigError('proxy configuration', invalidSettings);
  const cfg = parsed as ProxyConfig;
  const problems: string[] = [];
  const ports = [cfg.outboundPort, cfg.inboundPort, cfg.adminPort].filter((p) => p !== 0);
  if (new Set(ports).size !== ports.length)
    problems.push(`--outbound-port, --inbound-port and --admin-port must differ, got ${ports.join(', ')}`);
  const dst = cfg.staticDestination;
  if (dst && ports.includes(dst.port) && /^(127\.|::1$|0\.0\.0\.0$|::$|localhost$)/.test(dst.host)) {
    problems.push(
      `--static-destination (${SETTINGS.staticDestination.env}): ${dst.host}:${dst.port} is the proxy's own listener (a loop)`,
    );
  }
  const identity = (['identityAddr', 'identityTokenFile', 'identity'] as const).map(
    (k) => [k, cfg[k] !== undefined] as const,
  );
  const given = identity.filter(([, set]) => set);
  if (given.length > 0 && given.length < identity.length) {
    const flags = (list: typeof identity) => list.map(([k]) => `--${SETTINGS[k].flag} (${SETTINGS[k].env})`).join(', ');
    problems.push(
      `mTLS needs --identity-addr, --identity-token-file and --identity together (or none of them): ${flags(given)} given, ${flags(identity.filter(([, set]) => !set))} missing`,
    );
  }
  if (cfg.policyAddr !== undefined && cfg.pod === undefined)
    problems.push(
      `--policy-addr (${SETTINGS.policyAddr.env}) needs --pod (${SETTINGS.pod.env}): the policy service answers per pod`,
    );
  if (cfg.policyAddr !== undefined && given.length === 0)
    problems.push(
      `--policy-addr (${SETTINGS.policyAddr.env}) needs mTLS (--identity-addr, --identity-token-file, --identity): the policy service answers only a proxy that presents its pod's certificate`,
    );
  // The control plane serves only TLS: whoever talks to it must know what to trust.
  const flag = (k: SettingName) => `--${SETTINGS[k].flag} (${SETTINGS[k].env})`;
  const control = (['destinationAddr', 'policyAddr', 'identityAddr'] as const).filter((k) => cfg[k] !== undefined);
  if (cfg.trustAnchors !== undefined && cfg.trustAnchorsFile !== undefined)
    problems.push(`${flag('trustAnchors')} and ${flag('trustAnchorsFile')}: give one of them, not both`);
  else if (control.length > 0 && cfg.trustAnchors === undefined && cfg.trustAnchorsFile === undefined)
    problems.push(
      `${control.map(flag).join(', ')} need the mesh's trust anchors, ${flag('trustAnchors')} or ${flag('trustAnchorsFile')}: the control plane serves only TLS, and its certificate is checked against them`,
    );
  if (cfg.trustAnchors !== undefined) {
    const problem = trustAnchorsProblem(cfg.trustAnchors);
    if (problem !== undefined) problems.push(`${flag('trustAnchors')}: ${problem}`);
  }
  if (cfg.trustAnchorsFile !== undefined) {
    try {
      readTrustAnchors(cfg.trustAnchorsFile);
    } catch (err) {
      problems.push(`${flag('trustAnchorsFile')}: ${(err as Error).message}`);
    }
  }
  if (problems.length) throw new ConfigError('proxy configuration', problems);
  return Object.freeze(cfg);
}
