import type { Clock } from '../clock.js';
import { gcra, lockoutDelayMs, type LockoutRule } from './gcra.js';
import type { RateLimitRule } from './policies.js';
import type { LockoutFailure, RateLimitStore, StoreDecision } from './store.js';

export interface MemoryStoreOptions {
  /**
   * Upper bound on keys held per kind of state. Beyond it the least recently used key
   * is dropped, so a flood of distinct keys (many IPv6 /64s, made-up emails) cannot
   * exhaust memory; the price is that a dropped key starts afresh.
   */
  readonly maxKeys?: number;
  /** How often expired state is swept out (the sweep timer never keeps the process alive). */
  readonly sweepIntervalMs?: number;
}

interface LockoutEntry {
  failures: number;
  forgetAt: number;
  lockedUntil: number;
}

/**
 * One instance's rate-limit state, in process memory, with time from the injected Clock
 * (tests move a ManualClock). The default when REDIS_URL is unset, and the local fallback
 * of policies that fail "local" when Redis is down. Every operation is synchronous inside,
 * so concurrent requests in this process cannot interleave within one.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  readonly kind = 'memory' as const;
  private readonly tats = new Map<string, number>();
  private readonly refusalMarkers = new Map<string, number>();
  private readonly lockouts = new Map<string, LockoutEntry>();
  private readonly maxKeys: number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly clock: Clock,
    options: MemoryStoreOptions = {},
  ) {
    this.maxKeys = options.maxKeys ?? 100_000;
    this.sweeper = setInterval(() => this.sweep(), options.sweepIntervalMs ?? 60_000);
    this.sweeper.unref();
  }

  async consume(id: string, rule: RateLimitRule, cost: number): Promise<StoreDecision> {
    const now = this.clock.now().getTime();
    const outcome = gcra(now, this.tats.get(id), rule, cost);
    if (outcome.allowed && outcome.tat !== undefined) {
      touch(this.tats, id, outcome.tat, this.maxKeys);
      return { allowed: true, remaining: outcome.remaining, resetMs: outcome.resetMs, retryAfterMs: 0, firstRefusal: false };
    }
    const markerUntil = this.refusalMarkers.get(id);
    const firstRefusal = markerUntil === undefined || markerUntil <= now;
    if (firstRefusal) touch(this.refusalMarkers, id, now + Math.max(1, outcome.resetMs), this.maxKeys);
    return { allowed: false, remaining: 0, resetMs: outcome.resetMs, retryAfterMs: outcome.retryAfterMs, firstRefusal };
  }

  async reset(id: string): Promise<void> {
    this.tats.delete(id);
    this.refusalMarkers.delete(id);
  }

  async recordFailure(id: string, rule: LockoutRule): Promise<LockoutFailure> {
    const now = this.clock.now().getTime();
    const previous = this.lockouts.get(id);
    const failures = previous && previous.forgetAt > now ? previous.failures + 1 : 1;
    const lockedMs = lockoutDelayMs(failures, rule);
    const lockedUntil = lockedMs > 0 ? now + lockedMs : 0;
    touch(this.lockouts, id, { failures, forgetAt: now + rule.forgetAfterMs, lockedUntil }, this.maxKeys);
    return { failures, lockedMs };
  }

  async lockedForMs(id: string): Promise<number> {
    const entry = this.lockouts.get(id);
    if (!entry) return 0;
    return Math.max(0, entry.lockedUntil - this.clock.now().getTime());
  }

  async clearFailures(id: string): Promise<void> {
    this.lockouts.delete(id);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.tats.clear();
    this.refusalMarkers.clear();
    this.lockouts.clear();
  }

  /** Keys currently held (all kinds), for tests and diagnostics. */
  get size(): number {
    return this.tats.size + this.refusalMarkers.size + this.lockouts.size;
  }

  /** Drops every expired entry; runs on a timer, callable directly. */
  sweep(): void {
    const now = this.clock.now().getTime();
    for (const [id, tat] of this.tats) if (tat <= now) this.tats.delete(id);
    for (const [id, until] of this.refusalMarkers) if (until <= now) this.refusalMarkers.delete(id);
    for (const [id, entry] of this.lockouts) {
      if (entry.forgetAt <= now && entry.lockedUntil <= now) this.lockouts.delete(id);
    }
  }
}

/** Sets a value as the most recently used (Map keeps insertion order) and evicts the oldest beyond the cap. */
function touch<V>(map: Map<string, V>, id: string, value: V, maxKeys: number): void {
  map.delete(id);
  map.set(id, value);
  while (map.size > maxKeys) {
    const oldest = map.keys().next();
    if (oldest.done) break;
    map.delete(oldest.value);
  }
}
