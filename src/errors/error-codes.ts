/**
 * Every error code the service answers with, and its HTTP status. Adding a code means
 * adding it here; the error handler is the only place that turns codes into statuses.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  INVALID_JSON: 400,
  HOST_NOT_ALLOWED: 400,
  HTTPS_REQUIRED: 400,
  AMBIGUOUS_CREDENTIALS: 400,
  WEBHOOK_SIGNATURE_INVALID: 400,
  UNAUTHENTICATED: 401,
  INSUFFICIENT_CREDITS: 402,
  FORBIDDEN: 403,
  CORS_ORIGIN_NOT_ALLOWED: 403,
  CSRF_FAILED: 403,
  ACCOUNT_SUSPENDED: 403,
  OWNER_EXEMPT: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}
