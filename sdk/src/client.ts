import { BulwarkError, BulwarkNetworkError, type BulwarkErrorCode, type FieldProblem } from './errors.js';
import type { LicensePublicKeyDocument } from './license.js';
import { OPERATIONS, type BodyFields, type BodyShape, type Operation, type OperationName } from './operations.js';
import type {
  CreditBalance,
  EntitlementAnswer,
  GateAnswer,
  GateInput,
  IssuedLicense,
  LeaseResult,
  LedgerEntry,
  Page,
  PageOptions,
  Reservation,
  ReserveInput,
  Subscription,
  UsageEvent,
  UsageReport,
  UsageReportResult,
} from './types.js';

type FetchFunction = (input: string, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal }) => Promise<Response>;

export interface RetryOptions {
  /** Further attempts after the first (default 3); 0 turns retries off. */
  readonly retries?: number;
  /** The first backoff step (default 100 ms); each further one doubles, up to maxDelayMs. */
  readonly baseDelayMs?: number;
  /** The longest wait between two attempts (default 2000 ms). */
  readonly maxDelayMs?: number;
}

export interface BulwarkClientOptions {
  /** Where the service answers, e.g. https://billing.example.com. */
  readonly baseUrl: string;
  /** An account key (`cust_<accountId>_...`), sent as X-API-Key. */
  readonly apiKey?: string;
  /** Or a bearer token: a user's access token, or the operator's admin token (licences of any account). */
  readonly bearerToken?: string;
  /** Retries on network errors and 5xx answers only, never on 4xx. */
  readonly retry?: RetryOptions;
  /** Each attempt is abandoned (and counts as a network error) after this long; default 10 s. */
  readonly timeoutMs?: number;
  /** The fetch to use; default globalThis.fetch. */
  readonly fetch?: FetchFunction;
  /** Extra headers on every request (a User-Agent, a tracing header). */
  readonly headers?: Readonly<Record<string, string>>;
}

interface RequestOptions<N extends OperationName> {
  readonly params?: Readonly<Record<string, string>>;
  readonly query?: Readonly<Record<string, string | number | undefined>>;
  readonly body?: Partial<Record<BodyFields<N>, unknown>>;
  /** Overrides the operation's retry rule for this call (only ever to forbid retries). */
  readonly retry?: boolean;
}

interface Answer<T> {
  readonly status: number;
  readonly data: T;
}

function newIdempotencyKey(): string {
  const webCrypto = (globalThis as unknown as { crypto?: { randomUUID?: () => string } }).crypto;
  if (!webCrypto?.randomUUID) throw new Error('@bulwark/client needs globalThis.crypto.randomUUID for idempotency keys');
  return `sdk_${webCrypto.randomUUID()}`;
}

function sleep(milliseconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, milliseconds));
}

/**
 * The table is the contract: a body field the operation does not list is a bug in this
 * client, caught here rather than as a 400 from the service.
 */
function assertShape(operation: string, value: unknown, shape: BodyShape | undefined): void {
  if (shape === undefined || typeof value !== 'object' || value === null) return;
  for (const item of Array.isArray(value) ? value : [value]) {
    for (const [field, fieldValue] of Object.entries(item as Record<string, unknown>)) {
      if (!shape.fields.includes(field)) throw new TypeError(`${operation}: the client sent ${field}, which OPERATIONS does not list`);
      assertShape(operation, fieldValue, shape.nested?.[field]);
    }
  }
}

/** Drops undefined fields, so that an optional left out is not sent as null. */
function defined<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>;
}

/**
 * A typed client for Bulwark (SDK-1), for customer instances and app back ends. It needs
 * only fetch and WebCrypto.
 *
 * Retries: network errors and 5xx answers are retried (exponential backoff with full
 * jitter), 4xx answers never. A mutation is retried only when the service would
 * recognise the repeat: the client gives every tracked check, reservation and usage
 * event one idempotency key per call (unless you pass your own) and sends the same key
 * on each retry, so a call whose answer was lost is counted once. Lease acquisition and
 * a gate call that tracks without reserving credits carry no key the service checks, so
 * they are never retried.
 */
export class BulwarkClient {
  private readonly baseUrl: string;
  private readonly fetchFunction: FetchFunction;
  private readonly retries: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: BulwarkClientOptions) {
    if (options.apiKey !== undefined && options.bearerToken !== undefined) {
      throw new TypeError('Give either apiKey or bearerToken, not both (the service refuses two credentials)');
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    const fetchFunction = options.fetch ?? (globalThis as unknown as { fetch?: FetchFunction }).fetch;
    if (!fetchFunction) throw new TypeError('No fetch available: pass options.fetch');
    this.fetchFunction = fetchFunction;
    this.retries = Math.max(0, Math.floor(options.retry?.retries ?? 3));
    this.baseDelayMs = Math.max(0, options.retry?.baseDelayMs ?? 100);
    this.maxDelayMs = Math.max(this.baseDelayMs, options.retry?.maxDelayMs ?? 2_000);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.headers = {
      accept: 'application/json',
      ...options.headers,
      ...(options.apiKey !== undefined ? { 'x-api-key': options.apiKey } : {}),
      ...(options.bearerToken !== undefined ? { authorization: `Bearer ${options.bearerToken}` } : {}),
    };
  }

  /** Is the account entitled to `feature`? With `track`, records that many units only if they fit, atomically. */
  async check(feature: string, options: { track?: number; idempotencyKey?: string } = {}): Promise<EntitlementAnswer> {
    const body =
      options.track === undefined
        ? { feature }
        : { feature, track: options.track, idempotencyKey: options.idempotencyKey ?? newIdempotencyKey() };
    return (await this.request<EntitlementAnswer, 'check'>('check', { body })).data;
  }

  /** check() recording `quantity` units (default 1): `allowed` false means nothing was recorded. */
  track(feature: string, quantity = 1, options: { idempotencyKey?: string } = {}): Promise<EntitlementAnswer> {
    return this.check(feature, { track: quantity, ...options });
  }

  /** A concurrency slot (a build, a session) for ttlSeconds; `allowed: false` when all are taken. Never retried. */
  async acquireLease(feature: string, options: { ttlSeconds?: number } = {}): Promise<LeaseResult> {
    const answer = await this.request<{ lease: { id: string; expiresAt: string } } | EntitlementAnswer, 'acquireLease'>('acquireLease', {
      body: defined({ feature, ttlSeconds: options.ttlSeconds }),
    });
    if (answer.status === 201 && 'lease' in answer.data) return { allowed: true, lease: answer.data.lease };
    return { ...(answer.data as EntitlementAnswer), allowed: false };
  }

  /** Frees a lease; releasing it again is fine. */
  async releaseLease(leaseId: string): Promise<void> {
    await this.request<null, 'releaseLease'>('releaseLease', { params: { id: leaseId } });
  }

  /** Reports 1-1000 usage events; events without an idempotency key get one (kept across retries). */
  async reportUsage(events: readonly UsageEvent[]): Promise<UsageReportResult> {
    const keyed = events.map((event) => defined({ ...event, idempotencyKey: event.idempotencyKey ?? newIdempotencyKey() }));
    return (await this.request<UsageReportResult, 'reportUsage'>('reportUsage', { body: { events: keyed } })).data;
  }

  /** The account's usage reports, newest first. */
  async listUsage(options: PageOptions = {}): Promise<Page<UsageReport>> {
    return (await this.request<Page<UsageReport>, 'listUsage'>('listUsage', { query: { limit: options.limit, cursor: options.cursor } })).data;
  }

  /** The account's current subscription, or null (the plan itself: GET /api/account or the entitlement checks). */
  async subscription(): Promise<Subscription | null> {
    return (await this.request<{ subscription: Subscription | null }, 'subscription'>('subscription', {})).data.subscription;
  }

  /** Spendable balance, held credits and usable grants. */
  async credits(): Promise<CreditBalance> {
    return (await this.request<CreditBalance, 'credits'>('credits', {})).data;
  }

  /** Every credit movement, newest first. */
  async creditLedger(options: PageOptions = {}): Promise<Page<LedgerEntry>> {
    return (await this.request<Page<LedgerEntry>, 'creditLedger'>('creditLedger', { query: { limit: options.limit, cursor: options.cursor } })).data;
  }

  /** Holds credits for a job (INSUFFICIENT_CREDITS when short); a retry returns the first reservation. */
  async reserveCredits(input: ReserveInput): Promise<Reservation> {
    const body = defined({ ...input, idempotencyKey: input.idempotencyKey ?? newIdempotencyKey() });
    return (await this.request<{ reservation: Reservation }, 'reserveCredits'>('reserveCredits', { body })).data.reservation;
  }

  /** Turns a hold into spend; confirming again answers the same. */
  async confirmReservation(reservationId: string): Promise<Reservation> {
    return (await this.request<{ reservation: Reservation }, 'confirmReservation'>('confirmReservation', { params: { id: reservationId } })).data.reservation;
  }

  /** Returns a hold to the balance; releasing again answers the same. */
  async releaseReservation(reservationId: string): Promise<Reservation> {
    return (await this.request<{ reservation: Reservation }, 'releaseReservation'>('releaseReservation', { params: { id: reservationId } })).data.reservation;
  }

  /**
   * One call before a paid action: rate limit, entitlement (tracked when asked) and a
   * credit hold, all or nothing. With credits, the reservation's idempotency key (added
   * when absent) makes retries safe; a tracking gate without credits is never retried.
   */
  async gate(input: GateInput): Promise<GateAnswer> {
    const credits = input.credits ? defined({ ...input.credits, idempotencyKey: input.credits.idempotencyKey ?? newIdempotencyKey() }) : undefined;
    return (
      await this.request<GateAnswer, 'gate'>('gate', {
        body: defined({ feature: input.feature, track: input.track, credits }),
        retry: input.track === undefined || credits !== undefined,
      })
    ).data;
  }

  /** A freshly signed licence for the account (its own key, or the operator). Verify it with verifyLicense. */
  async license(accountId: string): Promise<IssuedLicense> {
    return (await this.request<IssuedLicense, 'license'>('license', { params: { accountId } })).data;
  }

  /**
   * The service's licence verification key. Fetch it once and ship it with your instance:
   * verifying against a key fetched at the same time as the licence proves little.
   */
  async licensePublicKey(): Promise<LicensePublicKeyDocument> {
    return (await this.request<LicensePublicKeyDocument, 'licensePublicKey'>('licensePublicKey', {})).data;
  }

  private url(name: OperationName, params: Readonly<Record<string, string>> = {}, query: RequestOptions<OperationName>['query'] = {}): string {
    const path = OPERATIONS[name].path.replace(/\{([A-Za-z]+)\}/g, (_match, key: string) => {
      const value = params[key];
      if (value === undefined || value === '') throw new TypeError(`${name}: ${key} is required`);
      return encodeURIComponent(value);
    });
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) if (value !== undefined) search.set(key, String(value));
    const text = search.toString();
    return `${this.baseUrl}${path}${text ? `?${text}` : ''}`;
  }

  /** Backoff before attempt `attempt + 1`: full jitter over an exponentially growing window. */
  private delayMs(attempt: number): number {
    const window = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** (attempt - 1));
    return Math.random() * window;
  }

  private async request<T, N extends OperationName>(name: N, options: RequestOptions<N>): Promise<Answer<T>> {
    const operation: Operation = OPERATIONS[name];
    assertShape(name, options.body, operation.body);
    const url = this.url(name, options.params, options.query);
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers = body === undefined ? this.headers : { ...this.headers, 'content-type': 'application/json' };
    const retryable = operation.retry === 'safe' && options.retry !== false;
    const attempts = retryable ? this.retries + 1 : 1;
    for (let attempt = 1; ; attempt += 1) {
      let response: Response;
      try {
        response = await this.fetchFunction(url, {
          method: operation.method,
          headers,
          ...(body !== undefined ? { body } : {}),
          signal: AbortSignal.timeout(this.timeoutMs),
        });
      } catch (error) {
        if (attempt < attempts) {
          await sleep(this.delayMs(attempt));
          continue;
        }
        throw new BulwarkNetworkError(`${operation.method} ${operation.path}: no answer from ${this.baseUrl} (${error instanceof Error ? error.message : String(error)})`, error);
      }
      if (response.status >= 500 && attempt < attempts) {
        await response.body?.cancel().catch(() => undefined);
        await sleep(this.delayMs(attempt));
        continue;
      }
      if (!(operation.success as readonly number[]).includes(response.status)) throw await errorFrom(response);
      if (response.status === 204) return { status: response.status, data: null as T };
      try {
        return { status: response.status, data: (await response.json()) as T };
      } catch (error) {
        throw new BulwarkError({ status: response.status, code: 'INVALID_RESPONSE', message: `${operation.method} ${operation.path}: the answer is not JSON`, cause: error });
      }
    }
  }
}

/** The error envelope `{"error":{code, message, requestId, details?}}` as a BulwarkError. */
async function errorFrom(response: Response): Promise<BulwarkError> {
  const retryAfter = Number(response.headers.get('retry-after'));
  const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined;
  let envelope: { error?: { code?: unknown; message?: unknown; requestId?: unknown; details?: unknown } } | undefined;
  try {
    envelope = (await response.json()) as typeof envelope;
  } catch {
    envelope = undefined;
  }
  const error = envelope?.error;
  // A code this version does not know yet is passed on as it is.
  const code: BulwarkErrorCode = typeof error?.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(error.code) ? error.code : 'INVALID_RESPONSE';
  return new BulwarkError({
    status: response.status,
    code,
    message: typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`,
    requestId: typeof error?.requestId === 'string' ? error.requestId : (response.headers.get('x-request-id') ?? undefined),
    details: Array.isArray(error?.details) ? (error.details as FieldProblem[]) : undefined,
    retryAfterSeconds,
  });
}
