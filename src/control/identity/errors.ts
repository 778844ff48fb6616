// Typed errors of the identity service. Certify throws these; the gRPC rescue point in ./service.ts maps
// their codes to status codes. Messages are lower case with context and never contain a token or a key.
import { OutriggerError } from '../../core/errors.js';

export const IdentityCodes = {
  /** The token is missing, malformed, badly signed, expired, for another audience or issuer, or for a
   *  pod that does not exist now. */
  UNAUTHENTICATED: 'OUTR_ERR_IDENTITY_UNAUTHENTICATED',
  /** The token is good but the CSR asks for an identity the token does not grant. */
  PERMISSION_DENIED: 'OUTR_ERR_IDENTITY_PERMISSION_DENIED',
  /** The CSR is malformed, badly signed, or uses a key we do not certify. */
  INVALID_ARGUMENT: 'OUTR_ERR_IDENTITY_INVALID_ARGUMENT',
} as const;

export type IdentityCode = (typeof IdentityCodes)[keyof typeof IdentityCodes];

/** Why a token was refused; lets callers and tests tell the cases apart without matching messages. */
export type TokenProblem =
  | 'missing'
  | 'malformed'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience'
  | 'wrong-issuer'
  | 'missing-claims'
  | 'pod-not-found'
  | 'review-failed';

export class IdentityError extends OutriggerError {
  declare readonly code: IdentityCode;
  /** Set for UNAUTHENTICATED errors from a token review. */
  readonly tokenProblem?: TokenProblem;
  constructor(code: IdentityCode, message: string, options?: { cause?: unknown; tokenProblem?: TokenProblem }) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'IdentityError';
    if (options?.tokenProblem !== undefined) this.tokenProblem = options.tokenProblem;
  }
}

/** The identity service's own files; apart from IdentityCodes, which are answers to a proxy's request. */
export const IdentityFileCodes = {
  /** A CA or token-signing key file that cannot be read, parsed or used. */
  FILE: 'OUTR_ERR_IDENTITY_FILE',
} as const;

/** A CA or token-key file that cannot be used; names the file and says what is wrong with it. */
export class IdentityFileError extends OutriggerError {
  readonly file: string;
  constructor(what: string, file: string, problem: string, options?: { cause?: unknown }) {
    super(IdentityFileCodes.FILE, `${what} ${file}: ${problem}`, options);
    this.name = 'IdentityFileError';
    this.file = file;
  }
}
