import type { LockoutRule } from './gcra.js';
import type { RateLimitRule } from './policies.js';

/**
 * Where rate-limit and lockout state lives. Two implementations: MemoryRateLimitStore
 * (one instance, time from the injected Clock) and RedisRateLimitStore (shared by every
 * instance, atomic Lua scripts, time from the Redis server). Ids passed in are already
 * namespaced and hashed by the backend (backend.ts); stores never see raw IPs or emails.
 */
export interface RateLimitStore {
  readonly kind: 'memory' | 'redis';

  /** Counts one request of `cost` units against `rule` if it fits; a refusal changes nothing. */
  consume(id: string, rule: RateLimitRule, cost: number): Promise<StoreDecision>;

  /** Forgets a key's rate-limit state (operator unlock, tests). */
  reset(id: string): Promise<void>;

  /** Records one more consecutive failure and, past the threshold, (re)locks the key. */
  recordFailure(id: string, rule: LockoutRule): Promise<LockoutFailure>;

  /** How long the key stays locked, ms; 0 when it is not locked. */
  lockedForMs(id: string): Promise<number>;

  /** Forgets the failures and any lock (a successful login). */
  clearFailures(id: string): Promise<void>;

  close(): Promise<void>;
}

export interface StoreDecision {
  readonly allowed: boolean;
  readonly remaining: number;
  readonly resetMs: number;
  readonly retryAfterMs: number;
  /**
   * True for the first refusal of an episode (no refusal of this key for the last reset
   * period): what is logged and audited, so a client hammering a limit produces one
   * lockout record per window, not one per request.
   */
  readonly firstRefusal: boolean;
}

export interface LockoutFailure {
  readonly failures: number;
  /** The lock this failure set, ms; 0 below the threshold. */
  readonly lockedMs: number;
}
