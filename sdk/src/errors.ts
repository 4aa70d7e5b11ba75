import type { ClientErrorCode, ServerErrorCode } from './operations.js';

/** A code of the service's error table, one of the client's own, or (from a newer service) another UPPER_SNAKE code. */
export type BulwarkErrorCode = ServerErrorCode | ClientErrorCode | (string & {});

export interface FieldProblem {
  readonly field: string;
  readonly message: string;
}

/**
 * Every failure the client reports: the HTTP status (0 when no answer arrived), the
 * service's stable error code, its message and request id (quote it to the operator),
 * and for validation failures the fields at fault. Expected denials (not entitled, over
 * a limit) are not errors: they come back as answers with `allowed: false`.
 */
export class BulwarkError extends Error {
  readonly status: number;
  readonly code: BulwarkErrorCode;
  readonly requestId: string | undefined;
  readonly details: readonly FieldProblem[] | undefined;
  /** From a Retry-After header (429, 503), in seconds. */
  readonly retryAfterSeconds: number | undefined;

  constructor(init: {
    status: number;
    code: BulwarkErrorCode;
    message: string;
    requestId?: string | undefined;
    details?: readonly FieldProblem[] | undefined;
    retryAfterSeconds?: number | undefined;
    cause?: unknown;
  }) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'BulwarkError';
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.details = init.details;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }
}

/** No answer from the service (connection refused or reset, timeout, DNS): status 0, code NETWORK_ERROR. */
export class BulwarkNetworkError extends BulwarkError {
  constructor(message: string, cause: unknown) {
    super({ status: 0, code: 'NETWORK_ERROR', message, cause });
    this.name = 'BulwarkNetworkError';
  }
}
