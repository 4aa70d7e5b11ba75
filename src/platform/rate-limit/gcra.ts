import type { RateLimitRule } from './policies.js';

/**
 * GCRA (generic cell rate algorithm), the arithmetic shared by the in-memory store and,
 * line for line, by the Redis Lua script in redis-store.ts.
 *
 * State per key is one number, the theoretical arrival time (TAT). With
 * period = windowSeconds in ms and interval = period / limit, a request costing `cost`
 * is allowed when the debt it would leave, max(TAT - now, 0) + interval * cost, does not
 * exceed the period. So a fresh key allows `limit` requests at once, then one more per
 * interval; a refused request changes nothing. Compared with a fixed window there is no
 * boundary at which a client can get twice the limit in a moment, and the Retry-After is
 * exact (the time until the next unit frees) rather than "until the window ends".
 *
 * `tolerance` absorbs floating-point error so that exactly `limit` requests fit in a
 * burst (it is at most 1 ms, and at most half an interval, so it never admits one more).
 */
export interface GcraOutcome {
  readonly allowed: boolean;
  /** The TAT to store when allowed (absolute, ms); the state is unchanged when refused. */
  readonly tat: number | undefined;
  readonly remaining: number;
  /** Until the full quota is available again (the "window frees"), ms. */
  readonly resetMs: number;
  /** Until a request of the same cost would be allowed; 0 when allowed. ms. */
  readonly retryAfterMs: number;
}

export function gcra(nowMs: number, storedTat: number | undefined, rule: RateLimitRule, cost: number): GcraOutcome {
  const period = rule.windowSeconds * 1000;
  const interval = period / rule.limit;
  const tolerance = Math.min(interval / 2, 1);
  const debt = storedTat === undefined ? 0 : Math.max(0, storedTat - nowMs);
  const newDebt = debt + interval * cost;
  if (newDebt > period + tolerance) {
    return {
      allowed: false,
      tat: undefined,
      remaining: 0,
      resetMs: Math.ceil(debt),
      retryAfterMs: Math.ceil(newDebt - period - tolerance),
    };
  }
  return {
    allowed: true,
    tat: nowMs + newDebt,
    remaining: Math.floor((period + tolerance - newDebt) / interval),
    resetMs: Math.max(1, Math.ceil(newDebt)),
    retryAfterMs: 0,
  };
}

/** Delay before the next attempt after `failures` consecutive failures (0 below the threshold). */
export function lockoutDelayMs(failures: number, rule: LockoutRule): number {
  if (failures < rule.threshold) return 0;
  const exponent = failures - rule.threshold;
  // 2^40 x any base already exceeds every allowed cap; stop there so the number stays exact.
  if (exponent >= 40) return rule.maxDelayMs;
  return Math.min(rule.baseDelayMs * 2 ** exponent, rule.maxDelayMs);
}

export interface LockoutRule {
  /** Consecutive failures that trigger the first lock. */
  readonly threshold: number;
  /** The first lock; each further failure doubles it. */
  readonly baseDelayMs: number;
  /** The cap on a single lock. */
  readonly maxDelayMs: number;
  /** Failures are forgotten this long after the last one (at least maxDelayMs). */
  readonly forgetAfterMs: number;
}
