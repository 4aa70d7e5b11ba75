import { ERROR_STATUS, type ErrorCode } from './error-codes.js';

export interface FieldProblem {
  /** Where the problem is: `email`, `events[3].quantity`, or `(body)` for the whole body. */
  readonly field: string;
  readonly message: string;
}

/**
 * An expected failure with a stable code. The HTTP status comes from the code, in one
 * table (error-codes.ts); the message is shown to the caller, so it must never carry
 * internals, other accounts' data or balances.
 */
export class AppError extends Error {
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: readonly FieldProblem[],
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'AppError';
    this.statusCode = ERROR_STATUS[code];
  }
}

export function validationError(details: readonly FieldProblem[]): AppError {
  const first = details[0];
  const message = first ? `${first.field}: ${first.message}` : 'Invalid request';
  return new AppError('VALIDATION_FAILED', message, details);
}
