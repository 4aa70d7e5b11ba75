import path from 'node:path';
import { z } from 'zod';
import { productionProblems } from './production-rules.js';
import { rateLimitOverridesJson, resolveRateLimitPolicies, type RateLimitOverrides } from '../platform/rate-limit/policies.js';

/**
 * The only place that reads process.env (an ESLint rule enforces it). Everything else
 * receives the frozen Config built here.
 */

const booleanString = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes' || value === 'on');

const commaList = z
  .string()
  .transform((value) =>
    value
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0),
  );

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^-?\d+$/, 'must be an integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** `PRO=14,STARTER=7`: trial days per plan id (0 = no trial). */
const trialDaysList = z
  .string()
  .transform((value, context) => {
    const days: Record<string, number> = {};
    for (const item of value.split(',').map((part) => part.trim()).filter((part) => part.length > 0)) {
      const match = /^([A-Z][A-Z0-9_]{1,31})=(\d{1,3})$/.exec(item);
      const count = match ? Number(match[2]) : NaN;
      if (!match?.[1] || !Number.isInteger(count) || count > 730) {
        context.addIssue({ code: 'custom', message: `"${item}" must be PLAN=days with days 0-730 (e.g. PRO=14)` });
        return z.NEVER;
      }
      days[match[1]] = count;
    }
    return days;
  });

const optionalSecret = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value === '' ? undefined : value));

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: integer(0, 65535).default(3000),
  DATA_DIR: z.string().min(1).default('./data'),
  PUBLIC_URL: z.url().optional(),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  DEBUG: booleanString.default(false),

  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  DATABASE_POOL_MAX: integer(1, 200).default(10),
  DATABASE_CONNECT_TIMEOUT_MS: integer(100, 120_000).default(5_000),
  DATABASE_STATEMENT_TIMEOUT_MS: integer(100, 600_000).default(10_000),
  DATABASE_IDLE_TIMEOUT_MS: integer(1_000, 3_600_000).default(30_000),
  DATABASE_SSL: z.enum(['disable', 'require', 'verify-full']).default('disable'),
  DATABASE_SSL_CA_PATH: z.string().min(1).optional(),

  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  RATE_LIMIT_STORE: z.enum(['memory', 'redis']).optional(),
  RATE_LIMITS: rateLimitOverridesJson.optional(),
  LOGIN_LOCKOUT_THRESHOLD: integer(1, 100).default(5),
  LOGIN_LOCKOUT_BASE_SECONDS: integer(1, 3_600).default(30),
  LOGIN_LOCKOUT_MAX_SECONDS: integer(1, 86_400).default(900),

  JWT_SECRET: optionalSecret,
  JWT_KEY_ID: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 letters, digits, _ or -')
    .default('k1'),
  JWT_PREVIOUS_SECRETS: commaList.default([]),
  COOKIE_SECRET: optionalSecret,
  COOKIE_PREVIOUS_SECRETS: commaList.default([]),
  ADMIN_API_TOKEN: optionalSecret,
  ADMIN_SESSION_TTL_SECONDS: integer(60, 12 * 3_600).default(30 * 60),
  API_KEY_PEPPER: optionalSecret,
  AUDIT_PSEUDONYM_KEY: optionalSecret,
  JWT_ISSUER: z.string().min(1).max(200).default('bulwark'),
  JWT_AUDIENCE: z.string().min(1).max(200).default('bulwark'),

  API_SHARED_SECRET: optionalSecret,
  EXTERNAL_JWT_SECRET: optionalSecret,
  EXTERNAL_JWT_JWKS_URL: z.url().optional(),
  EXTERNAL_JWT_ISSUER: z.string().min(1).optional(),
  EXTERNAL_JWT_AUDIENCE: z.string().min(1).optional(),

  LICENSE_PRIVATE_KEY_PATH: z.string().min(1).optional(),
  LICENSE_VALIDITY_DAYS: integer(1, 3_650).default(30),

  SIGNUP_BONUS_CREDITS: integer(0, 1_000_000).default(10),
  CREDIT_RESERVATION_TTL_SECONDS: integer(1, 7 * 24 * 3_600).default(15 * 60),
  CREDIT_SWEEP_INTERVAL_SECONDS: integer(1, 24 * 3_600).default(5 * 60),
  CREDITS_LOW_THRESHOLD: integer(0, 1_000_000_000).default(0),
  RECONCILIATION_INTERVAL_SECONDS: integer(60, 30 * 24 * 3_600).default(24 * 3_600),
  USAGE_METADATA_KEYS: commaList.default(['model', 'region', 'source', 'tokens', 'pages', 'duration_ms']),
  OWNER_ACCOUNT_IDS: commaList.default([]),
  TEST_ACCOUNT_IDS: commaList.default([]),
  EXEMPT_ACCOUNT_PLAN: z.string().regex(/^[A-Z][A-Z0-9_]{1,31}$/, 'must be a plan id such as ENTERPRISE').default('ENTERPRISE'),

  SMTP_URL: z
    .string()
    .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
    .optional(),
  MAIL_FROM: z.string().min(3).max(254).default('Bulwark <no-reply@localhost>'),
  ALERT_WEBHOOK_URL: z.url().optional(),
  NOTIFICATION_DELIVERY_INTERVAL_SECONDS: integer(1, 3_600).default(5),
  NOTIFICATION_WEBHOOK_TIMEOUT_MS: integer(100, 60_000).default(10_000),
  NOTIFICATION_BATCH_SIZE: integer(1, 500).default(25),

  STRIPE_MODE: z.enum(['sandbox', 'test', 'live']).optional(),
  STRIPE_SECRET_KEY: optionalSecret,
  STRIPE_WEBHOOK_SECRET: commaList.default([]),
  STRIPE_SANDBOX_PORT: integer(0, 65535).default(12111),
  STRIPE_SANDBOX_START: booleanString.optional(),
  STRIPE_SANDBOX_WEBHOOK_URL: z.url().optional(),
  STRIPE_API_URL: z.url().optional(),
  STRIPE_TIMEOUT_MS: integer(100, 120_000).default(10_000),
  STRIPE_MAX_NETWORK_RETRIES: integer(0, 10).default(2),
  WEBHOOK_MAX_ATTEMPTS: integer(1, 100).default(5),
  PAST_DUE_GRACE_DAYS: integer(0, 90).default(7),
  BILLING_TRIAL_DAYS: trialDaysList.default({ PRO: 14 }),
  BILLING_SUCCESS_URL: z.url().optional(),
  BILLING_CANCEL_URL: z.url().optional(),

  CORS_ORIGINS: commaList.default([]),
  ALLOWED_HOSTS: commaList.optional(),
  TRUST_PROXY: z.string().optional(),
  HTTPS_REDIRECT: booleanString.optional(),
  BODY_LIMIT_BYTES: integer(1_024, 10 * 1024 * 1024).default(1024 * 1024),

  METRICS_TOKEN: optionalSecret,
  SENTRY_DSN: z.url().optional(),

  SHUTDOWN_TIMEOUT_MS: integer(100, 300_000).default(10_000),
  READY_MIN_FREE_DISK_MB: integer(0, 10_000_000).default(100),
  READY_CHECK_TIMEOUT_MS: integer(50, 60_000).default(2_000),
  JOBS_ENABLED: booleanString.default(true),
  PG_BIN_DIR: z
    .string()
    .regex(/^\/[^\0\n\r]*$/, 'must be an absolute directory path')
    .optional(),
});

export type RawEnvironment = z.infer<typeof environmentSchema>;

/** The process environment, for callers that hand it on (the command line); this module stays its only reader. */
export function environment(): Readonly<Record<string, string | undefined>> {
  return process.env;
}

/** Every variable the service reads; .env.example documents each one (a test checks). */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(environmentSchema.shape);

/** The absolute hard cap on any request body, whatever a route or setting asks for. */
export const ABSOLUTE_BODY_LIMIT_BYTES = 10 * 1024 * 1024;

export type NodeEnvironment = 'development' | 'test' | 'production';
export type StripeMode = 'sandbox' | 'test' | 'live';

export interface SigningSecret {
  readonly keyId: string;
  readonly secret: string;
}

export type DatabaseConfig =
  | { readonly kind: 'pglite'; readonly dataDir: string }
  | {
      readonly kind: 'postgres';
      readonly url: string;
      readonly poolMax: number;
      readonly connectTimeoutMs: number;
      readonly statementTimeoutMs: number;
      readonly idleTimeoutMs: number;
      readonly ssl: 'disable' | 'require' | 'verify-full';
      readonly sslCaPath: string | undefined;
    };

/** TRUST_PROXY as parsed: nothing trusted, a list of addresses/CIDRs, or an (unsafe) hop count / trust-all. */
export type TrustProxySetting =
  | { readonly kind: 'none' }
  | { readonly kind: 'addresses'; readonly addresses: readonly string[] }
  | { readonly kind: 'hops'; readonly hops: number }
  | { readonly kind: 'all' };

export interface Config {
  readonly env: NodeEnvironment;
  readonly isProduction: boolean;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly publicUrl: string | undefined;
  readonly log: { readonly level: RawEnvironment['LOG_LEVEL']; readonly debug: boolean };
  readonly database: DatabaseConfig;
  readonly redisUrl: string | undefined;
  readonly rateLimit: {
    readonly store: 'memory' | 'redis';
    readonly overrides: RateLimitOverrides;
    readonly lockout: { readonly threshold: number; readonly baseDelaySeconds: number; readonly maxDelaySeconds: number };
  };
  readonly secrets: {
    readonly jwt: SigningSecret | undefined;
    readonly previousJwt: readonly SigningSecret[];
    readonly cookie: string | undefined;
    readonly previousCookie: readonly string[];
    readonly adminApiToken: string | undefined;
    readonly apiKeyPepper: string | undefined;
    /** Keys the pseudonyms that replace personal data in audit entries when an account is erased (GDPR-2). */
    readonly auditPseudonymKey: string | undefined;
  };
  /** The operator dashboard's session (UI-1): the admin token exchanged for an HttpOnly cookie that lasts this long. */
  readonly adminSession: { readonly ttlSeconds: number };
  readonly jwt: { readonly issuer: string; readonly audience: string };
  /** Trusted back-end callers acting for a user of an external identity provider (KEY-4, AUTH-7). */
  readonly service: {
    readonly sharedSecret: string | undefined;
    readonly externalJwtSecret: string | undefined;
    readonly externalJwksUrl: string | undefined;
    readonly externalIssuer: string | undefined;
    readonly externalAudience: string | undefined;
  };
  readonly mail: { readonly smtpUrl: string | undefined; readonly from: string; readonly outboxDir: string };
  readonly alertWebhookUrl: string | undefined;
  /**
   * Email and outgoing webhook delivery (MAIL-1, OUT-1): how often the delivery job runs
   * (once per interval across instances), how long an endpoint may take to answer, and how
   * many deliveries one run claims at a time.
   */
  readonly notifications: { readonly deliveryIntervalSeconds: number; readonly webhookTimeoutMs: number; readonly batchSize: number };
  readonly usage: { readonly metadataKeys: readonly string[] };
  /**
   * Signed licences (LIC-1): the private key file (Ed25519 or RSA PEM) and how long a
   * licence is valid. Outside production a development key is generated when no path is
   * set: under DATA_DIR (development) or in memory as privateKeyPem (NODE_ENV=test).
   */
  readonly license: { readonly privateKeyPath: string | undefined; readonly privateKeyPem: string | undefined; readonly validityDays: number };
  /** Credits granted once at sign-up (CRD-7); 0 turns the bonus off. */
  readonly credits: {
    readonly signupBonusCredits: number;
    /** CRD-6: a reservation not confirmed within this time is released by the sweeper. */
    readonly reservationTtlSeconds: number;
    /** CRD-6: how often the sweeper runs (once per interval across every instance). */
    readonly sweepIntervalSeconds: number;
    /** OUT-1: a balance falling below this queues one credits.low notification; 0 (the default) turns it off. */
    readonly lowThresholdCredits: number;
  };
  /** PAY-8: how often the reconciliation job compares local billing state with Stripe (once per interval across instances). */
  readonly reconciliation: { readonly intervalSeconds: number };
  /** Owner and test accounts: never charged, on their configured plan (OWN-1, OWN-2). */
  readonly exemptions: { readonly ownerAccountIds: readonly string[]; readonly testAccountIds: readonly string[]; readonly plan: string };
  readonly stripe: {
    readonly mode: StripeMode;
    readonly secretKey: string | undefined;
    readonly webhookSecrets: readonly string[];
    readonly sandboxPort: number;
    /**
     * In sandbox mode, where the sandbox runs: inside this process, elsewhere (STRIPE_API_URL
     * points at it), or nowhere (the default under NODE_ENV=test, where tests start their own).
     */
    readonly sandbox: 'in-process' | 'external' | 'none';
    /** Where the in-process sandbox delivers events; undefined = this service's POST /api/webhooks/stripe. */
    readonly sandboxWebhookUrl: string | undefined;
    /** Where the Stripe client points: undefined = Stripe's API; in sandbox mode the sandbox's port by default. */
    readonly apiUrl: string | undefined;
    readonly timeoutMs: number;
    readonly maxNetworkRetries: number;
    /** WH-8: an event whose processing failed this many times is dead-lettered (and answered 200). */
    readonly webhookMaxAttempts: number;
  };
  /** The paid subscription lifecycle (PAY-2..6). */
  readonly billing: {
    /** PAY-6: days a past_due subscription keeps its plan, from when it became past_due. */
    readonly pastDueGraceDays: number;
    /** PAY-5: trial days per plan id offered at an account's first subscription checkout. */
    readonly trialDays: Readonly<Record<string, number>>;
    /** Where checkout returns; `{CHECKOUT_SESSION_ID}` is filled in by Stripe. Undefined: the portal. */
    readonly successUrl: string | undefined;
    readonly cancelUrl: string | undefined;
  };
  readonly http: {
    readonly corsOrigins: readonly string[];
    readonly allowedHosts: readonly string[];
    readonly trustProxy: TrustProxySetting;
    readonly httpsRedirect: boolean;
    readonly bodyLimitBytes: number;
  };
  readonly metricsToken: string | undefined;
  readonly sentryDsn: string | undefined;
  readonly shutdownTimeoutMs: number;
  readonly readiness: { readonly minFreeDiskBytes: number; readonly checkTimeoutMs: number };
  readonly jobsEnabled: boolean;
  /**
   * Where the operator command line finds pg_dump and pg_restore (OPS-8): PG_BIN_DIR, or
   * else the directories of PATH (the one variable read outside the schema: it is handed
   * to those programs as their only search path, never the rest of the environment).
   */
  readonly externalCommands: { readonly pgBinDir: string | undefined; readonly searchPath: string };
}

export class ConfigError extends Error {
  constructor(readonly reasons: readonly string[]) {
    super(`Invalid configuration:\n${reasons.map((reason) => `  - ${reason}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const DEVELOPMENT_ALLOWED_HOSTS = ['localhost', '127.0.0.1', '[::1]'];

function parseTrustProxy(value: string | undefined): TrustProxySetting {
  const trimmed = value?.trim() ?? '';
  if (trimmed === '' || trimmed === 'false') return { kind: 'none' };
  if (trimmed === 'true' || trimmed === '*') return { kind: 'all' };
  if (/^\d+$/.test(trimmed)) return { kind: 'hops', hops: Number(trimmed) };
  return {
    kind: 'addresses',
    addresses: trimmed
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0),
  };
}

function parseJwtPrevious(entries: readonly string[], reasons: string[]): SigningSecret[] {
  const result: SigningSecret[] = [];
  for (const [index, entry] of entries.entries()) {
    const separator = entry.indexOf(':');
    if (separator <= 0) {
      reasons.push(`JWT_PREVIOUS_SECRETS[${index}]: must be "<keyId>:<secret>"`);
      continue;
    }
    result.push({ keyId: entry.slice(0, separator), secret: entry.slice(separator + 1) });
  }
  return result;
}

function formatIssue(issue: z.core.$ZodIssue): string {
  const field = issue.path.join('.') || '(environment)';
  return `${field}: ${issue.message}`;
}

/**
 * Parses an environment into a Config without touching the disk. Throws ConfigError with
 * one line per problem: schema errors always, production lockdown rules when
 * NODE_ENV=production.
 */
export function loadConfig(environment: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "not set" for every variable, as in most .env tooling.
  const cleaned: Record<string, string> = {};
  for (const [key, value] of Object.entries(environment)) {
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const parsed = environmentSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map(formatIssue));
  }
  const raw = parsed.data;
  const reasons: string[] = [];
  const isProduction = raw.NODE_ENV === 'production';
  const dataDir = path.resolve(raw.DATA_DIR);

  const database: DatabaseConfig = raw.DATABASE_URL
    ? {
        kind: 'postgres',
        url: raw.DATABASE_URL,
        poolMax: raw.DATABASE_POOL_MAX,
        connectTimeoutMs: raw.DATABASE_CONNECT_TIMEOUT_MS,
        statementTimeoutMs: raw.DATABASE_STATEMENT_TIMEOUT_MS,
        idleTimeoutMs: raw.DATABASE_IDLE_TIMEOUT_MS,
        ssl: raw.DATABASE_SSL,
        sslCaPath: raw.DATABASE_SSL_CA_PATH,
      }
    : { kind: 'pglite', dataDir: path.join(dataDir, 'pglite') };

  const rateLimitStore = raw.RATE_LIMIT_STORE ?? (raw.REDIS_URL ? 'redis' : 'memory');
  if (rateLimitStore === 'redis' && !raw.REDIS_URL) reasons.push('RATE_LIMIT_STORE: redis needs REDIS_URL');
  if (raw.LOGIN_LOCKOUT_MAX_SECONDS < raw.LOGIN_LOCKOUT_BASE_SECONDS) {
    reasons.push('LOGIN_LOCKOUT_MAX_SECONDS: must be at least LOGIN_LOCKOUT_BASE_SECONDS');
  }
  try {
    resolveRateLimitPolicies(raw.RATE_LIMITS ?? {});
  } catch (error) {
    reasons.push(error instanceof Error ? error.message : String(error));
  }

  const config: Config = {
    env: raw.NODE_ENV,
    isProduction,
    host: raw.HOST,
    port: raw.PORT,
    dataDir,
    publicUrl: raw.PUBLIC_URL,
    log: { level: raw.LOG_LEVEL, debug: raw.DEBUG },
    database,
    redisUrl: raw.REDIS_URL,
    rateLimit: {
      store: rateLimitStore,
      overrides: raw.RATE_LIMITS ?? {},
      lockout: {
        threshold: raw.LOGIN_LOCKOUT_THRESHOLD,
        baseDelaySeconds: raw.LOGIN_LOCKOUT_BASE_SECONDS,
        maxDelaySeconds: raw.LOGIN_LOCKOUT_MAX_SECONDS,
      },
    },
    secrets: {
      jwt: raw.JWT_SECRET ? { keyId: raw.JWT_KEY_ID, secret: raw.JWT_SECRET } : undefined,
      previousJwt: parseJwtPrevious(raw.JWT_PREVIOUS_SECRETS, reasons),
      cookie: raw.COOKIE_SECRET,
      previousCookie: raw.COOKIE_PREVIOUS_SECRETS,
      adminApiToken: raw.ADMIN_API_TOKEN,
      apiKeyPepper: raw.API_KEY_PEPPER,
      auditPseudonymKey: raw.AUDIT_PSEUDONYM_KEY,
    },
    adminSession: { ttlSeconds: raw.ADMIN_SESSION_TTL_SECONDS },
    jwt: { issuer: raw.JWT_ISSUER, audience: raw.JWT_AUDIENCE },
    service: {
      sharedSecret: raw.API_SHARED_SECRET,
      externalJwtSecret: raw.EXTERNAL_JWT_SECRET,
      externalJwksUrl: raw.EXTERNAL_JWT_JWKS_URL,
      externalIssuer: raw.EXTERNAL_JWT_ISSUER,
      externalAudience: raw.EXTERNAL_JWT_AUDIENCE,
    },
    mail: { smtpUrl: raw.SMTP_URL, from: raw.MAIL_FROM, outboxDir: path.join(dataDir, 'outbox') },
    alertWebhookUrl: raw.ALERT_WEBHOOK_URL,
    notifications: {
      deliveryIntervalSeconds: raw.NOTIFICATION_DELIVERY_INTERVAL_SECONDS,
      webhookTimeoutMs: raw.NOTIFICATION_WEBHOOK_TIMEOUT_MS,
      batchSize: raw.NOTIFICATION_BATCH_SIZE,
    },
    usage: { metadataKeys: raw.USAGE_METADATA_KEYS },
    license: {
      privateKeyPath: raw.LICENSE_PRIVATE_KEY_PATH === undefined ? undefined : path.resolve(raw.LICENSE_PRIVATE_KEY_PATH),
      privateKeyPem: undefined,
      validityDays: raw.LICENSE_VALIDITY_DAYS,
    },
    credits: {
      signupBonusCredits: raw.SIGNUP_BONUS_CREDITS,
      reservationTtlSeconds: raw.CREDIT_RESERVATION_TTL_SECONDS,
      sweepIntervalSeconds: raw.CREDIT_SWEEP_INTERVAL_SECONDS,
      lowThresholdCredits: raw.CREDITS_LOW_THRESHOLD,
    },
    reconciliation: { intervalSeconds: raw.RECONCILIATION_INTERVAL_SECONDS },
    exemptions: { ownerAccountIds: raw.OWNER_ACCOUNT_IDS, testAccountIds: raw.TEST_ACCOUNT_IDS, plan: raw.EXEMPT_ACCOUNT_PLAN },
    stripe: {
      mode: raw.STRIPE_MODE ?? (isProduction ? 'live' : 'sandbox'),
      secretKey: raw.STRIPE_SECRET_KEY,
      webhookSecrets: raw.STRIPE_WEBHOOK_SECRET,
      sandboxPort: raw.STRIPE_SANDBOX_PORT,
      sandbox: raw.STRIPE_SANDBOX_START === undefined ? (raw.NODE_ENV === 'test' ? 'none' : 'in-process') : raw.STRIPE_SANDBOX_START ? 'in-process' : 'external',
      sandboxWebhookUrl: raw.STRIPE_SANDBOX_WEBHOOK_URL,
      apiUrl:
        raw.STRIPE_API_URL ??
        ((raw.STRIPE_MODE ?? (isProduction ? 'live' : 'sandbox')) === 'sandbox' ? `http://127.0.0.1:${raw.STRIPE_SANDBOX_PORT}` : undefined),
      timeoutMs: raw.STRIPE_TIMEOUT_MS,
      maxNetworkRetries: raw.STRIPE_MAX_NETWORK_RETRIES,
      webhookMaxAttempts: raw.WEBHOOK_MAX_ATTEMPTS,
    },
    billing: {
      pastDueGraceDays: raw.PAST_DUE_GRACE_DAYS,
      trialDays: raw.BILLING_TRIAL_DAYS,
      successUrl: raw.BILLING_SUCCESS_URL,
      cancelUrl: raw.BILLING_CANCEL_URL,
    },
    http: {
      corsOrigins: raw.CORS_ORIGINS,
      allowedHosts: raw.ALLOWED_HOSTS ?? (isProduction ? [] : DEVELOPMENT_ALLOWED_HOSTS),
      trustProxy: parseTrustProxy(raw.TRUST_PROXY),
      httpsRedirect: raw.HTTPS_REDIRECT ?? isProduction,
      bodyLimitBytes: raw.BODY_LIMIT_BYTES,
    },
    metricsToken: raw.METRICS_TOKEN,
    sentryDsn: raw.SENTRY_DSN,
    shutdownTimeoutMs: raw.SHUTDOWN_TIMEOUT_MS,
    readiness: {
      minFreeDiskBytes: raw.READY_MIN_FREE_DISK_MB * 1024 * 1024,
      checkTimeoutMs: raw.READY_CHECK_TIMEOUT_MS,
    },
    jobsEnabled: raw.JOBS_ENABLED,
    externalCommands: { pgBinDir: raw.PG_BIN_DIR, searchPath: environment.PATH ?? '/usr/local/bin:/usr/bin:/bin' },
  };

  if (isProduction) reasons.push(...productionProblems(config));
  if (reasons.length > 0) throw new ConfigError(reasons);
  return deepFreeze(config);
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value as Record<string, unknown>)) deepFreeze(child);
  }
  return value;
}
