// The proxy's view of its own inbound policy: one watch (server-streaming Watch) of its pod in the
// control plane's policy service, each answer compiled and replacing the last. Static stability like
// discovery: while the control plane is away the last answer stays in force and the watch reconnects
// with jittered backoff. Until the first answer, the configured default applies to every port. The
// policy service answers only a proxy that presents its pod's certificate: the watch opens once the
// channel has one, and opens again on the new connection after each renewal.
import { GrpcChannel, type Call } from '../../../api/grpc/channel.js';
import type { ChannelTls } from '../../../api/grpc/tls.js';
import {
  defaultAuthorizations,
  watchInboundPolicy,
  type DefaultPolicyName,
  type InboundPolicy,
} from '../../../api/policy.js';
import { formatAddr, type SocketAddr } from '../../../core/addr.js';
import { JitteredBackoff, type JitteredBackoffOptions } from '../../../core/backoff.js';
import type { Logger } from '../../../core/log.js';
import { compilePolicy, type CompiledPolicy, type PolicySource } from '../authz/authz.js';

export interface PolicyWatchOptions {
  readonly addr: SocketAddr;
  /** The connection to the control plane when shared (left open by close()); default: its own, with
   *  `tls`. */
  readonly channel?: GrpcChannel;
  readonly tls?: ChannelTls;
  readonly namespace: string;
  readonly pod: string;
  /** Applies to every port until the first answer (the runtime passes the pod's effective default). */
  readonly defaultPolicy: DefaultPolicyName;
  readonly log: Logger;
  readonly backoff?: JitteredBackoffOptions;
}

export interface PolicyStats {
  updates: number;
  reconnects: number;
}

export class PolicyWatch implements PolicySource {
  readonly stats: PolicyStats = { updates: 0, reconnects: 0 };
  private policy: CompiledPolicy;
  private readonly channel: GrpcChannel;
  private readonly backoff: JitteredBackoff;
  private call: Call | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private outage = false;
  /** The answer in force, as received (the admin server's /policy). */
  raw: InboundPolicy;
  /** Whether an answer has come (from a control plane that knows the pod). */
  answered = false;
  private readonly firstAnswer: Promise<void>;
  private onFirst!: () => void;
  private readonly stopCertificateWatch: () => void;

  constructor(private readonly o: PolicyWatchOptions) {
    // Before the first answer the cluster's networks are not known: cluster-authenticated checks the
    // identity only.
    this.raw = {
      known: false,
      default_policy: o.defaultPolicy,
      default_authorizations: defaultAuthorizations(o.defaultPolicy, []),
      ports: [],
    };
    this.policy = compilePolicy(this.raw, undefined, []);
    this.channel = o.channel ?? new GrpcChannel(formatAddr(o.addr), { tls: o.tls });
    this.backoff = new JitteredBackoff(o.backoff);
    this.firstAnswer = new Promise((r) => (this.onFirst = r));
    this.stopCertificateWatch = this.channel.onClientCertificate(() => this.reconnect());
    if (this.channel.clientCertificate() !== undefined) this.connect();
  }

  /** A new client certificate: the watch moves to the connection that presents it (the policy in
   *  force stays until the new stream's first answer, which is a whole one). */
  private reconnect(): void {
    if (this.closed) return;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    const old = this.call;
    this.call = undefined;
    old?.cancel();
    this.connect();
  }

  current(): CompiledPolicy {
    return this.policy;
  }

  /** Resolves at the first answer, or after `ms` (whichever is first). */
  whenAnswered(ms: number): Promise<void> {
    return Promise.race([this.firstAnswer, new Promise<void>((r) => setTimeout(r, ms).unref())]);
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (this.closed) return;
    const call: Call = watchInboundPolicy(
      this.channel,
      { namespace: this.o.namespace, pod: this.o.pod },
      {
        message: (p) => {
          if (this.call === call) this.apply(p);
        },
        end: (s) => {
          if (this.call !== call) return;
          this.call = undefined;
          if (this.closed) return;
          if (!this.outage) {
            this.outage = true;
            this.o.log.warn(
              { code: s.code, details: s.details },
              'policy: watch ended; keeping the last policy while reconnecting (logged once per outage)',
            );
          }
          this.stats.reconnects++;
          this.retryTimer = setTimeout(() => this.connect(), this.backoff.next());
          this.retryTimer.unref();
        },
      },
    );
    this.call = call;
  }

  private apply(p: InboundPolicy): void {
    this.stats.updates++;
    this.backoff.reset();
    if (this.outage) {
      this.outage = false;
      this.o.log.info('policy: watch restored');
    }
    // A control plane that does not know the pod yet (it is starting) says nothing about its ports.
    if (!p.known && this.answered) return;
    const problems: string[] = [];
    this.policy = compilePolicy(p, this.policy, problems);
    this.raw = p;
    if (problems.length > 0)
      this.o.log.warn({ problems }, 'policy: inbound routes with problems (their matches never match)');
    if (p.known) {
      this.answered = true;
      this.onFirst();
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopCertificateWatch();
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.call?.cancel();
    this.call = undefined;
    if (this.o.channel === undefined) this.channel.close();
    this.onFirst();
  }
}
