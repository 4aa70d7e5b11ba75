import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { RateLimitStoreUnavailableError, type BackendResult, type RateLimitBackend } from './backend.js';
import { keyKindOf } from './keys.js';
import type { RateLimitMetrics } from './metrics.js';
import {
  assertValidRule,
  resolveRateLimitPolicies,
  type RateLimitPolicies,
  type RateLimitPolicyName,
  type RateLimitRule,
  type StoreFailureMode,
} from './policies.js';
import type { StoreDecision } from './store.js';

/** A rule with the name it is counted, logged and stored under. */
export interface NamedRateLimitRule extends RateLimitRule {
  readonly name: string;
  readonly onStoreFailure: StoreFailureMode;
}

export interface RateLimitDecision {
  readonly policy: string;
  readonly allowed: boolean;
  readonly limit: number;
  readonly windowSeconds: number;
  /** Further requests allowed right now. */
  readonly remaining: number;
  /** Seconds until the full quota is available again. */
  readonly resetSeconds: number;
  /** Seconds until a refused request may be retried (at least 1); 0 when allowed. */
  readonly retryAfterSeconds: number;
  /** Which store decided: the shared one, or this instance's memory (no Redis, or Redis down). */
  readonly store: 'memory' | 'redis';
  /** Refused because the shared store is down and the policy fails closed (answer 503, not 429). */
  readonly unavailable: boolean;
  /** The first refusal of this key in the current window: logged and passed to onLimited. */
  readonly firstRefusal: boolean;
}

/** Given to onLimited once per lockout episode (not per refused request). */
export interface RateLimitedEvent {
  readonly policy: string;
  /** `ip`, `user`, `account`, `email`: safe to log. */
  readonly keyKind: string;
  /** The key itself: personal data (an IP or an email). For the audit trail, never for logs. */
  readonly key: string;
  readonly decision: RateLimitDecision;
  /** The request that hit the limit, when there is one (actor, IP, request id for the audit). */
  readonly request: FastifyRequest | undefined;
}

export type OnLimited = (event: RateLimitedEvent) => void | Promise<void>;

export interface RateLimiterOptions {
  /** Default: RL-1's defaults (resolveRateLimitPolicies() with no overrides). */
  readonly policies?: RateLimitPolicies;
  readonly logger: Logger;
  readonly metrics?: RateLimitMetrics;
  /** Called on the first refusal of an episode; the audit module records `rate_limit.lockout`. Errors are logged, never thrown. */
  readonly onLimited?: OnLimited;
}

export interface ConsumeOptions {
  /** Units this request uses (default 1, at most the limit). */
  readonly cost?: number;
  /** For request-scoped logging and the onLimited event. */
  readonly request?: FastifyRequest;
}

const UNAVAILABLE_RETRY_SECONDS = 5;

/**
 * Decides whether a request fits its policy and counts it when it does (RL-1, RL-2).
 * Refusals are counted in rate_limit_hits_total{policy}; the first refusal of an
 * episode is logged at warn with the policy and the key's kind (never the key) and
 * handed to onLimited.
 */
export class RateLimiter {
  readonly policies: RateLimitPolicies;
  private readonly logger: Logger;
  private readonly metrics: RateLimitMetrics | undefined;
  private onLimited: OnLimited | undefined;

  constructor(
    private readonly backend: RateLimitBackend,
    options: RateLimiterOptions,
  ) {
    this.policies = options.policies ?? resolveRateLimitPolicies();
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.onLimited = options.onLimited;
  }

  /** Sets the lockout hook after construction (the audit module is built after the limiter). */
  setOnLimited(hook: OnLimited | undefined): void {
    this.onLimited = hook;
  }

  rule(policy: RateLimitPolicyName): NamedRateLimitRule {
    const found = this.policies[policy] as RateLimitPolicies[RateLimitPolicyName] | undefined;
    if (!found) throw new Error(`unknown rate-limit policy "${policy}"`);
    const { limit, windowSeconds, onStoreFailure } = found;
    return { name: policy, limit, windowSeconds, onStoreFailure };
  }

  /** Counts one request of `key` (e.g. `ip:203.0.113.7`) against a policy of the table. */
  consume(policy: RateLimitPolicyName, key: string, options: ConsumeOptions = {}): Promise<RateLimitDecision> {
    return this.consumeRule(this.rule(policy), key, options);
  }

  /** Counts one request against a rule decided at run time (RL-5: the plan's requests per minute). */
  async consumeRule(rule: NamedRateLimitRule, key: string, options: ConsumeOptions = {}): Promise<RateLimitDecision> {
    assertValidRule(rule);
    const cost = options.cost ?? 1;
    if (!Number.isInteger(cost) || cost < 1 || cost > rule.limit) {
      throw new RangeError(`rate-limit cost must be an integer from 1 to the limit (${rule.limit}), got ${cost}`);
    }
    const id = this.backend.idFor(rule.name, key);
    const base = { policy: rule.name, limit: rule.limit, windowSeconds: rule.windowSeconds };
    let result: BackendResult<StoreDecision>;
    try {
      result = await this.backend.run(rule.onStoreFailure, (store) => store.consume(id, rule, cost));
    } catch (error) {
      if (!(error instanceof RateLimitStoreUnavailableError)) throw error;
      return {
        ...base,
        allowed: false,
        remaining: 0,
        resetSeconds: UNAVAILABLE_RETRY_SECONDS,
        retryAfterSeconds: UNAVAILABLE_RETRY_SECONDS,
        store: this.backend.store.kind,
        unavailable: true,
        firstRefusal: false,
      };
    }
    const outcome = result.value;
    const decision: RateLimitDecision = {
      ...base,
      allowed: outcome.allowed,
      remaining: outcome.remaining,
      resetSeconds: Math.ceil(outcome.resetMs / 1000),
      retryAfterSeconds: outcome.allowed ? 0 : Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)),
      store: result.store,
      unavailable: false,
      firstRefusal: outcome.firstRefusal,
    };
    if (!decision.allowed) await this.refused(decision, key, options.request);
    return decision;
  }

  /** Forgets a key's state under a policy (operator unlock). */
  async reset(policy: string, key: string): Promise<void> {
    const id = this.backend.idFor(policy, key);
    await this.backend.run('local', (store) => store.reset(id));
  }

  private async refused(decision: RateLimitDecision, key: string, request: FastifyRequest | undefined): Promise<void> {
    this.metrics?.hits.inc({ policy: decision.policy });
    if (!decision.firstRefusal) return;
    const keyKind = keyKindOf(key);
    const log = request?.log ?? this.logger;
    log.warn(
      { component: 'rate-limit', policy: decision.policy, keyKind, retryAfterSeconds: decision.retryAfterSeconds, store: decision.store },
      'rate limit reached',
    );
    if (!this.onLimited) return;
    try {
      await this.onLimited({ policy: decision.policy, keyKind, key, decision, request });
    } catch (error) {
      log.error({ component: 'rate-limit', policy: decision.policy, err: error }, 'rate-limit lockout hook failed');
    }
  }
}
