/**
 * Every HTTP operation the client uses, in one table that the client itself sends from
 * and that a test checks against the server's OpenAPI document (GET /docs/openapi.json):
 * each method and path must exist, every body field and query parameter the client
 * sends must be one the route's schema accepts (nested objects too), every field the
 * schema requires must be one the client sends, and the response fields the client
 * reads must be in the route's response schema. Renaming a route or a field on the
 * server therefore fails the test instead of the client at run time.
 *
 * `retry` says whether an attempt whose outcome is unknown (network error, 5xx) may be
 * sent again: `safe` for reads and for writes the server makes idempotent (state
 * transitions, or an idempotency key the client adds once per call and keeps across its
 * retries); `never` for writes the server cannot recognise as repeated.
 */

export type HttpMethod = 'GET' | 'POST' | 'DELETE';

export interface BodyShape {
  /** Fields the client may send. */
  readonly fields: readonly string[];
  /** Fields the client always sends (the schema's required list must be among them). */
  readonly required: readonly string[];
  /** Fields that are objects, or arrays of objects, with their own shape. */
  readonly nested?: Readonly<Record<string, BodyShape>>;
}

export interface Operation {
  readonly method: HttpMethod;
  /** OpenAPI form: `/api/leases/{id}`. */
  readonly path: string;
  readonly body?: BodyShape;
  readonly query?: readonly string[];
  /** The statuses a success answers with, and the top-level fields the client reads from it. */
  readonly success: readonly number[];
  readonly response?: readonly string[];
  readonly retry: 'safe' | 'never';
}

const RESERVE: BodyShape = { fields: ['jobId', 'jobType', 'units', 'amount', 'idempotencyKey'], required: ['jobId', 'jobType', 'idempotencyKey'] };
const ENTITLEMENT_FIELDS = ['allowed', 'feature', 'kind', 'limit', 'used', 'remaining', 'resetsAt'];

export const OPERATIONS = {
  check: {
    method: 'POST',
    path: '/api/entitlements/check',
    body: { fields: ['feature', 'track', 'idempotencyKey'], required: ['feature'] },
    success: [200],
    response: ENTITLEMENT_FIELDS,
    // With `track`, the client always adds an idempotency key.
    retry: 'safe',
  },
  acquireLease: {
    method: 'POST',
    path: '/api/leases',
    body: { fields: ['feature', 'ttlSeconds'], required: ['feature'] },
    success: [200, 201],
    // A repeated acquire would hold a second slot until it expires.
    retry: 'never',
  },
  releaseLease: { method: 'DELETE', path: '/api/leases/{id}', success: [204], retry: 'safe' },
  reportUsage: {
    method: 'POST',
    path: '/api/usage',
    body: {
      fields: ['events'],
      required: ['events'],
      nested: {
        events: {
          fields: ['idempotencyKey', 'jobId', 'jobType', 'quantity', 'description', 'metadata'],
          required: ['idempotencyKey', 'jobType'],
        },
      },
    },
    success: [202],
    response: ['accepted', 'duplicates'],
    retry: 'safe',
  },
  listUsage: { method: 'GET', path: '/api/usage', query: ['limit', 'cursor'], success: [200], response: ['items', 'nextCursor'], retry: 'safe' },
  subscription: { method: 'GET', path: '/api/billing/subscription', success: [200], response: ['subscription'], retry: 'safe' },
  credits: { method: 'GET', path: '/api/credits', success: [200], response: ['balance', 'held', 'grants'], retry: 'safe' },
  creditLedger: { method: 'GET', path: '/api/credits/ledger', query: ['limit', 'cursor'], success: [200], response: ['items', 'nextCursor'], retry: 'safe' },
  reserveCredits: { method: 'POST', path: '/api/credits/reservations', body: RESERVE, success: [200, 201], response: ['reservation'], retry: 'safe' },
  confirmReservation: { method: 'POST', path: '/api/credits/reservations/{id}/confirm', success: [200], response: ['reservation'], retry: 'safe' },
  releaseReservation: { method: 'POST', path: '/api/credits/reservations/{id}/release', success: [200], response: ['reservation'], retry: 'safe' },
  gate: {
    method: 'POST',
    path: '/api/gate',
    body: { fields: ['feature', 'track', 'credits'], required: ['feature'], nested: { credits: RESERVE } },
    success: [200],
    response: ['allowed', 'reason', 'entitlement', 'reservation'],
    // Safe only with credits (their idempotency key covers the tracking) or without track: decided per call.
    retry: 'safe',
  },
  license: { method: 'GET', path: '/api/licenses/{accountId}', success: [200], response: ['license', 'token'], retry: 'safe' },
  licensePublicKey: { method: 'GET', path: '/api/licenses/public-key', success: [200], response: ['algorithm', 'keyId', 'pem', 'jwk'], retry: 'safe' },
} as const satisfies Record<string, Operation>;

export type OperationName = keyof typeof OPERATIONS;

/** The body fields of an operation, as a type: the client cannot send a field the table does not list. */
export type BodyFields<N extends OperationName> = (typeof OPERATIONS)[N] extends { readonly body: { readonly fields: readonly (infer F extends string)[] } }
  ? F
  : never;

/**
 * Every error code the service answers with (its error table), plus the client's own
 * NETWORK_ERROR and INVALID_RESPONSE. A test checks the list against the server's.
 */
export const SERVER_ERROR_CODES = [
  'VALIDATION_FAILED',
  'INVALID_JSON',
  'HOST_NOT_ALLOWED',
  'HTTPS_REQUIRED',
  'AMBIGUOUS_CREDENTIALS',
  'UNAUTHENTICATED',
  'INSUFFICIENT_CREDITS',
  'FORBIDDEN',
  'CORS_ORIGIN_NOT_ALLOWED',
  'CSRF_FAILED',
  'ACCOUNT_SUSPENDED',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'IDEMPOTENCY_KEY_REUSED',
  'RATE_LIMITED',
  'INTERNAL_ERROR',
  'SERVICE_UNAVAILABLE',
  'WEBHOOK_SIGNATURE_INVALID',
  'OWNER_EXEMPT',
] as const;

export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];
export type ClientErrorCode = 'NETWORK_ERROR' | 'INVALID_RESPONSE';
