import { z } from 'zod';

/**
 * The rate-limit policies of RL-1: one row per route class, with what it is keyed by.
 * Every number is a default; RATE_LIMITS (JSON) overrides any of them per policy.
 *
 * A limit of `limit` per `windowSeconds` is enforced with GCRA (see gcra.ts): up to
 * `limit` requests at once, then one more every `windowSeconds / limit` seconds, so
 * over any long period no key gets more than `limit` per window on average.
 */

/** What happens when the shared store (Redis) cannot be reached. Nothing fails open. */
export type StoreFailureMode =
  /** Fall back to this instance's in-memory store: still limited, but per instance. */
  | 'local'
  /** Refuse the request (503 with Retry-After) until the shared store answers again. */
  | 'closed';

/** What a policy's key identifies; the key passed at run time starts with `<kind>:`. */
export type RateLimitKeyKind = 'ip' | 'user' | 'account' | 'email';

export interface RateLimitRule {
  /** Requests allowed per window (and at once, as a burst). */
  readonly limit: number;
  readonly windowSeconds: number;
}

export interface RateLimitPolicy extends RateLimitRule {
  readonly keyKind: RateLimitKeyKind;
  readonly onStoreFailure: StoreFailureMode;
  readonly description: string;
}

const MINUTE = 60;
const HOUR = 3600;

const policy = (
  limit: number,
  windowSeconds: number,
  keyKind: RateLimitKeyKind,
  description: string,
  onStoreFailure: StoreFailureMode = 'local',
): RateLimitPolicy => ({ limit, windowSeconds, keyKind, description, onStoreFailure });

/**
 * RL-1 defaults, exactly. Every policy falls back to the local store when Redis is down
 * (documented in docs: the limit then holds per instance); RATE_LIMITS can make any
 * policy fail closed instead.
 */
export const DEFAULT_RATE_LIMIT_POLICIES = {
  'login.ip': policy(5, MINUTE, 'ip', 'POST /auth/login per client IP'),
  'login.account': policy(10, HOUR, 'email', 'POST /auth/login per account (normalised email, known or not)'),
  'password_reset.ip': policy(3, HOUR, 'ip', 'POST /auth/password-reset per client IP'),
  'token_refresh.ip': policy(10, MINUTE, 'ip', 'POST /auth/refresh per client IP'),
  'general.ip': policy(100, 15 * MINUTE, 'ip', 'unauthenticated requests and failed authentications per client IP'),
  'billing.user': policy(10, MINUTE, 'user', 'billing routes per user'),
  'entitlements.user': policy(100, MINUTE, 'user', 'tier/entitlement routes per user'),
  'checkout.user': policy(5, MINUTE, 'user', 'checkout session creation per user'),
  'cancel.user': policy(5, HOUR, 'user', 'POST /api/billing/cancel per user'),
  'account_delete.user': policy(1, HOUR, 'user', 'POST /api/account/delete per user'),
  'account_export.user': policy(10, HOUR, 'user', 'GET /api/account/export per user'),
  'usage_report.account': policy(60, HOUR, 'account', 'usage reports (single or batch) per account'),
  'jobs.story.user': policy(5, MINUTE, 'user', 'credit-spending story job routes per user'),
  'jobs.book.user': policy(3, MINUTE, 'user', 'credit-spending book job routes per user'),
  'balance_read.user': policy(30, MINUTE, 'user', 'balance and usage reads per user'),
  'webhooks.ip': policy(100, MINUTE, 'ip', 'incoming webhooks per sender IP'),
  'admin.ip': policy(10, HOUR, 'ip', 'operator admin routes per client IP'),
  // Not in RL-1: the operator dashboard (UI-1). Its page loads make several requests each,
  // which admin.ip's 10 an hour would stop at the first page; signing in (presenting the
  // admin token) still counts under admin.ip, the requests of the session it opens here.
  'admin_session.ip': policy(1_200, HOUR, 'ip', 'operator dashboard requests on an admin session cookie per client IP'),
} as const satisfies Record<string, RateLimitPolicy>;

export type RateLimitPolicyName = keyof typeof DEFAULT_RATE_LIMIT_POLICIES;

export const RATE_LIMIT_POLICY_NAMES = Object.keys(DEFAULT_RATE_LIMIT_POLICIES) as [RateLimitPolicyName, ...RateLimitPolicyName[]];

export type RateLimitPolicies = Readonly<Record<RateLimitPolicyName, RateLimitPolicy>>;

/**
 * RL-5: account keys and services on the machine routes (entitlements, leases, usage,
 * credits, gate) are limited per account by their plan's requests_per_minute. The
 * plans module owns the catalogue; these are RL-5's defaults for it to start from.
 * null means unlimited.
 */
export const MACHINE_POLICY_NAME = 'machine.account';
export const MACHINE_WINDOW_SECONDS = 60;
export const DEFAULT_PLAN_REQUESTS_PER_MINUTE = {
  FREE: 600,
  STARTER: 3_000,
  PRO: 30_000,
  ENTERPRISE: null,
} as const satisfies Record<string, number | null>;

/** The policy name the login lockout (lockout.ts) reports its refusals under. */
export const LOGIN_LOCKOUT_POLICY_NAME = 'login.lockout';

/** Bounds that keep the arithmetic exact enough (at least 0.05 ms between requests). */
export const MAX_LIMIT = 1_000_000;
export const MAX_WINDOW_SECONDS = 7 * 24 * HOUR;

export function assertValidRule(rule: RateLimitRule): void {
  const { limit, windowSeconds } = rule;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new RangeError(`rate limit must be an integer from 1 to ${MAX_LIMIT}, got ${limit}`);
  }
  if (!Number.isInteger(windowSeconds) || windowSeconds < 1 || windowSeconds > MAX_WINDOW_SECONDS) {
    throw new RangeError(`rate limit window must be an integer from 1 to ${MAX_WINDOW_SECONDS} seconds, got ${windowSeconds}`);
  }
  if (limit > windowSeconds * 20_000) {
    throw new RangeError(`rate limit ${limit} per ${windowSeconds}s is too fine-grained (at most 20000 per second)`);
  }
}

/** One policy's override in RATE_LIMITS: any of its numbers and its failure mode. */
export const rateLimitOverrideSchema = z
  .object({
    limit: z.number().int().min(1).max(MAX_LIMIT).optional(),
    windowSeconds: z.number().int().min(1).max(MAX_WINDOW_SECONDS).optional(),
    onStoreFailure: z.enum(['local', 'closed']).optional(),
  })
  .strict()
  .refine((value) => Object.keys(value).length > 0, 'give at least one of limit, windowSeconds, onStoreFailure');

export type RateLimitOverride = z.infer<typeof rateLimitOverrideSchema>;

/** RATE_LIMITS after parsing: overrides keyed by policy name; unknown names are refused. */
export const rateLimitOverridesSchema = z.partialRecord(z.enum(RATE_LIMIT_POLICY_NAMES), rateLimitOverrideSchema);

export type RateLimitOverrides = z.infer<typeof rateLimitOverridesSchema>;

/** The environment variable's text: a JSON object, validated by rateLimitOverridesSchema. */
export const rateLimitOverridesJson = z
  .string()
  .transform((text, context): unknown => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      context.addIssue({ code: 'custom', message: 'must be a JSON object, e.g. {"login.ip":{"limit":5,"windowSeconds":60}}' });
      return z.NEVER;
    }
  })
  .pipe(rateLimitOverridesSchema);

/** The defaults with the overrides applied; every resulting rule is checked. */
export function resolveRateLimitPolicies(overrides: RateLimitOverrides = {}): RateLimitPolicies {
  const resolved = {} as Record<RateLimitPolicyName, RateLimitPolicy>;
  for (const name of RATE_LIMIT_POLICY_NAMES) {
    const base: RateLimitPolicy = DEFAULT_RATE_LIMIT_POLICIES[name];
    const override = overrides[name];
    const merged: RateLimitPolicy = {
      ...base,
      ...(override?.limit !== undefined ? { limit: override.limit } : {}),
      ...(override?.windowSeconds !== undefined ? { windowSeconds: override.windowSeconds } : {}),
      ...(override?.onStoreFailure !== undefined ? { onStoreFailure: override.onStoreFailure } : {}),
    };
    try {
      assertValidRule(merged);
    } catch (error) {
      throw new RangeError(`RATE_LIMITS.${name}: ${(error as Error).message}`);
    }
    resolved[name] = Object.freeze(merged);
  }
  return Object.freeze(resolved);
}

export function isRateLimitPolicyName(value: string): value is RateLimitPolicyName {
  return Object.hasOwn(DEFAULT_RATE_LIMIT_POLICIES, value);
}
