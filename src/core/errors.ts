// The base of every typed error: a stable code (like undici's UND_ERR_*) that the one rescue point per
// listener maps to an HTTP status, a gRPC status or a TCP reset. Messages are lower case with context.

export class OutriggerError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'OutriggerError';
  }
}

/** A configuration that cannot be used; lists every problem at once. */
export class ConfigError extends OutriggerError {
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[]) {
    super('OUTR_ERR_CONFIG', `invalid ${what}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}
