// The base of every typed error: a stable code (like undici's UND_ERR_*) that the one rescue point per
// listener maps to an HTTP status, a gRPC status or a TCP reset. Messages are lower case with context.

/** Codes that belong to no one part. */
export const CoreCodes = {
  /** A configuration (flags, environment, a config file) that cannot be used; every problem is listed. */
  CONFIG: 'OUTR_ERR_CONFIG',
  /** A broken invariant: a bug in Outrigger, never the user's input. */
  INTERNAL: 'OUTR_ERR_INTERNAL',
} as const;

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
    super(CoreCodes.CONFIG, `invalid ${what}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

/** A broken invariant (`bug: ...`): not the user's doing; the message says what was expected. */
export function internalError(message: string): OutriggerError {
  return new OutriggerError(CoreCodes.INTERNAL, `bug: ${message}`);
}
