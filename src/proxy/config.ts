// The proxy's configuration: flags and OUTRIGGER_PROXY_* variables, validated once at start-up with a
// schema that reports every problem at once, then frozen. Flags win over the environment.
import { z } from 'zod';
import { ConfigError } from '../core/errors.js';
import { parseAddr, type Port, type SocketAddr } from '../core/addr.js';
import { parsePortList, type PortList } from '../core/ports.js';
import { parseSpiffeId, type SpiffeId } from '../api/identity.js';
import { DEFAULT_POLICY_NAMES, type DefaultPolicyName } from '../api/policy.js';
import { SETTINGS, type SettingName } from './env.js';
import { appProbesSchema, type AppProbeTarget } from './admin/probes.js';

const port = z.coerce
  .number({ error: 'must be a number' })
  .int('must be an integer')
  .min(0, 'must be from 0 (any free port) to 65535')
  .max(65535, 'must be from 0 (any free port) to 65535')
  .transform((n) => n as Port);
const ms = (min = 0) => z.coerce.number({ error: 'must be a number of milliseconds' }).int('must be an integer').min(min, `must be at least ${min}`);
const ip = z.string().refine((v) => /^[0-9.]+$|^[0-9A-Fa-f:]+$/.test(v) && v.length > 0, 'must be an IP address');

/** An optional HOST:PORT; unset or empty is undefined. */
const optionalAddr = z
  .string()
  .optional()
  .transform((v, ctx): SocketAddr | undefined => {
    if (v === undefined || v === '') return undefined;
    const a = parseAddr(v);
    if (!a) ctx.addIssue({ code: 'custom', message: `must be HOST:PORT, got "${v}"` });
    return a;
  });

/** An optional string; unset or empty is undefined. */
const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));

const optionalSpiffeId = optionalText.transform((v, ctx): SpiffeId | undefined => {
  if (v === undefined) return undefined;
  const id = parseSpiffeId(v)?.id;
  if (id === undefined) ctx.addIssue({ code: 'custom', message: `must be spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>, got "${v}"` });
  return id;
});

const schema = z.object({
  outboundPort: port,
  outboundAddr: ip,
  inboundPort: port,
  inboundAddr: ip,
  adminPort: port,
  adminAddr: ip,
  staticDestination: optionalAddr,
  destinationAddr: optionalAddr,
  // mTLS: all three or none (checked below).
  identityAddr: optionalAddr,
  identityTokenFile: optionalText,
  identity: optionalSpiffeId,
  policyAddr: optionalAddr,
  pod: optionalText.refine((v) => v === undefined || /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(v), 'must be namespace/name'),
  defaultInboundPolicy: z.enum(DEFAULT_POLICY_NAMES as [DefaultPolicyName, ...DefaultPolicyName[]]),
  // The same format as the pod annotation config.outrigger.io/opaque-ports, parsed by the same code.
  opaquePorts: z.string().transform((v, ctx): PortList => {
    const r = parsePortList(v);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
    return r.ok ? r.ports : [];
  }),
  detectTimeoutMs: ms(1),
  detectMaxBytes: z.coerce.number().int().min(64, 'must be at least 64').max(1 << 20, 'must be at most 1048576'),
  maxHeaderBytes: z.coerce.number().int().min(1024, 'must be at least 1024').max(1 << 20, 'must be at most 1048576'),
  headerTimeoutMs: ms(1),
  idleTimeoutMs: ms(1),
  connectTimeoutMs: ms(1),
  responseTimeoutMs: ms(0),
  upstreamIdleTimeoutMs: ms(1),
  breakerFailures: z.coerce.number().int().min(1, 'must be at least 1'),
  maxInFlightRequests: z.coerce.number().int().min(1, 'must be at least 1'),
  maxQueuedRequests: z.coerce.number().int().min(0, 'must be at least 0'),
  maxIdlePerUpstream: z.coerce.number().int().min(0, 'must be at least 0'),
  drainTimeoutMs: ms(0),
  podNamespace: z.string().default(''),
  podName: z.string().default(''),
  podWorkload: z.string().default(''),
  tapTokenFile: optionalText,
  traceCollector: optionalText.refine((v) => v === undefined || /^https?:\/\/[^/]+/.test(v), 'must be an http:// or https:// URL'),
  traceSampleRatio: z.coerce.number({ error: 'must be a number from 0 to 1' }).min(0, 'must be from 0 to 1').max(1, 'must be from 0 to 1'),
  appProbes: optionalText.transform((v, ctx): ReadonlyMap<string, AppProbeTarget> | undefined => {
    if (v === undefined) return undefined;
    let json: unknown;
    try {
      json = JSON.parse(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be JSON' });
      return undefined;
    }
    const r = appProbesSchema.safeParse(json);
    if (!r.success) ctx.addIssue({ code: 'custom', message: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    return r.success ? new Map(Object.entries(r.data)) : undefined;
  }),
  accessLog: optionalText,
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
});

export type ProxyConfig = Readonly<z.infer<typeof schema>>;

/** The identity settings, when mTLS is on (all three are set; loadProxyConfig checks). */
export function identitySettings(cfg: ProxyConfig): { addr: SocketAddr; tokenFile: string; identity: SpiffeId } | undefined {
  if (cfg.identityAddr === undefined || cfg.identityTokenFile === undefined || cfg.identity === undefined) return undefined;
  return { addr: cfg.identityAddr, tokenFile: cfg.identityTokenFile, identity: cfg.identity };
}

/**
 * Builds the config from flag values (camelCase keys, as commander gives them) over the environment
 * over the defaults. Throws ConfigError listing every problem, each with its flag and variable.
 */
export function loadProxyConfig(flags: Partial<Record<SettingName, string | undefined>>, env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const raw: Record<string, string | undefined> = {};
  for (const [name, spec] of Object.entries(SETTINGS) as [SettingName, (typeof SETTINGS)[SettingName]][]) {
    raw[name] = flags[name] ?? env[spec.env] ?? ('default' in spec ? spec.default : undefined);
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = String(issue.path[0]) as SettingName;
      const spec = SETTINGS[key];
      const given = raw[key];
      return spec
        ? `--${spec.flag} (${spec.env}): ${issue.message}${given !== undefined && !issue.message.includes('got') && !issue.message.includes(given) ? `, got "${given}"` : ''}`
        : issue.message;
    });
    throw new ConfigError('proxy configuration', problems);
  }
  const cfg = result.data;
  const problems: string[] = [];
  const ports = [cfg.outboundPort, cfg.inboundPort, cfg.adminPort].filter((p) => p !== 0);
  if (new Set(ports).size !== ports.length) problems.push(`--outbound-port, --inbound-port and --admin-port must differ, got ${ports.join(', ')}`);
  const dst = cfg.staticDestination;
  if (dst && ports.includes(dst.port) && /^(127\.|::1$|0\.0\.0\.0$|::$|localhost$)/.test(dst.host)) {
    problems.push(`--static-destination (${SETTINGS.staticDestination.env}): ${dst.host}:${dst.port} is the proxy's own listener (a loop)`);
  }
  const identity = (['identityAddr', 'identityTokenFile', 'identity'] as const).map((k) => [k, cfg[k] !== undefined] as const);
  const given = identity.filter(([, set]) => set);
  if (given.length > 0 && given.length < identity.length) {
    const flags = (list: typeof identity) => list.map(([k]) => `--${SETTINGS[k].flag} (${SETTINGS[k].env})`).join(', ');
    problems.push(`mTLS needs --identity-addr, --identity-token-file and --identity together (or none of them): ${flags(given)} given, ${flags(identity.filter(([, set]) => !set))} missing`);
  }
  if (cfg.policyAddr !== undefined && cfg.pod === undefined) problems.push(`--policy-addr (${SETTINGS.policyAddr.env}) needs --pod (${SETTINGS.pod.env}): the policy service answers per pod`);
  if (problems.length) throw new ConfigError('proxy configuration', problems);
  return Object.freeze(cfg);
}
