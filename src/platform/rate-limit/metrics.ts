import { Counter, type Registry } from 'prom-client';

/**
 * The rate limiter's series (OPS-2, RL-4), registered in the app's own registry so they
 * appear on GET /metrics. Create them once per registry: registering a name twice throws.
 * Labels are policy names only (a fixed set), never keys.
 */
export interface RateLimitMetrics {
  /** Requests refused by a limit or a login lockout, by policy. */
  readonly hits: Counter<'policy'>;
  /** Operations the shared store could not serve, by what happened instead (local | closed). */
  readonly storeFailures: Counter<'outcome'>;
}

export function createRateLimitMetrics(registry: Registry): RateLimitMetrics {
  return {
    hits: new Counter({
      name: 'rate_limit_hits_total',
      help: 'Requests refused by a rate limit or a login lockout, by policy',
      labelNames: ['policy'] as const,
      registers: [registry],
    }),
    storeFailures: new Counter({
      name: 'rate_limit_store_failures_total',
      help: 'Rate-limit operations the shared store (Redis) could not serve, by outcome: local fallback or closed (refused)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  };
}
