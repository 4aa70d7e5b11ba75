import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.js';
import { RateLimitBackend } from './backend.js';
import { RateLimiter, type OnLimited } from './limiter.js';
import { LoginLockout, type LoginLockoutOptions, type LoginLockoutSettings } from './lockout.js';
import { MemoryRateLimitStore } from './memory-store.js';
import { createRateLimitMetrics, type RateLimitMetrics } from './metrics.js';
import { resolveRateLimitPolicies, type RateLimitOverrides, type StoreFailureMode } from './policies.js';
import { createRateLimitRedisClient, RedisRateLimitStore } from './redis-store.js';

export interface RateLimitingSettings {
  /** `redis` needs redisUrl. */
  readonly store: 'memory' | 'redis';
  readonly redisUrl?: string | undefined;
  /** RATE_LIMITS, parsed. */
  readonly overrides?: RateLimitOverrides | undefined;
  readonly lockout?: Partial<LoginLockoutSettings> | undefined;
  readonly lockoutOnStoreFailure?: StoreFailureMode | undefined;
  /** Prefix of every Redis key (default `bulwark:`). */
  readonly keyPrefix?: string | undefined;
  /** When set, keys are stored as HMACs under it; every instance must use the same value. */
  readonly keySecret?: string | undefined;
  readonly redisCommandTimeoutMs?: number | undefined;
}

export interface RateLimitingDependencies {
  readonly clock: Clock;
  readonly logger: Logger;
  /** The app's registry (creates the counters) or counters already created on it. */
  readonly metrics?: Registry | RateLimitMetrics;
  readonly onLimited?: OnLimited;
  readonly onLocked?: LoginLockoutOptions['onLocked'];
}

export interface RateLimiting {
  readonly limiter: RateLimiter;
  readonly loginLockout: LoginLockout;
  readonly backend: RateLimitBackend;
  /** The Redis connection, when the store is Redis (closed by close()). */
  readonly redis: Redis | undefined;
  close(): Promise<void>;
}

function isMetrics(value: Registry | RateLimitMetrics): value is RateLimitMetrics {
  return 'hits' in value && 'storeFailures' in value;
}

/**
 * Builds the limiter and the login lockout on one backend: Redis (shared by every
 * instance, with this instance's memory as the fallback of "local" policies) or memory.
 * No I/O waits here: the Redis client connects in the background, and until it is ready
 * policies use their failure mode.
 */
export function createRateLimiting(settings: RateLimitingSettings, deps: RateLimitingDependencies): RateLimiting {
  const logger = deps.logger;
  const metrics = deps.metrics ? (isMetrics(deps.metrics) ? deps.metrics : createRateLimitMetrics(deps.metrics)) : undefined;
  const policies = resolveRateLimitPolicies(settings.overrides ?? {});
  let redis: Redis | undefined;
  let backend: RateLimitBackend;
  if (settings.store === 'redis') {
    if (!settings.redisUrl) throw new Error('the redis rate-limit store needs a Redis URL');
    let reported = false;
    redis = createRateLimitRedisClient(settings.redisUrl, {
      ...(settings.redisCommandTimeoutMs !== undefined ? { commandTimeoutMs: settings.redisCommandTimeoutMs } : {}),
      onError: (error) => {
        // One warning per outage; ioredis reports every reconnect attempt.
        if (reported) return logger.debug({ component: 'rate-limit', err: error }, 'rate-limit redis connection error');
        reported = true;
        logger.warn({ component: 'rate-limit', err: error }, 'rate-limit redis connection error');
      },
    });
    redis.on('ready', () => {
      reported = false;
    });
    backend = new RateLimitBackend({
      store: new RedisRateLimitStore(redis, settings.keyPrefix !== undefined ? { keyPrefix: settings.keyPrefix } : {}),
      fallback: new MemoryRateLimitStore(deps.clock),
      logger,
      ...(metrics ? { metrics } : {}),
      ...(settings.keySecret ? { keySecret: settings.keySecret } : {}),
    });
  } else {
    backend = new RateLimitBackend({
      store: new MemoryRateLimitStore(deps.clock),
      logger,
      ...(metrics ? { metrics } : {}),
      ...(settings.keySecret ? { keySecret: settings.keySecret } : {}),
    });
  }
  const limiter = new RateLimiter(backend, {
    policies,
    logger,
    ...(metrics ? { metrics } : {}),
    ...(deps.onLimited ? { onLimited: deps.onLimited } : {}),
  });
  const loginLockout = new LoginLockout(backend, {
    logger,
    ...(settings.lockout ? { settings: settings.lockout } : {}),
    ...(settings.lockoutOnStoreFailure ? { onStoreFailure: settings.lockoutOnStoreFailure } : {}),
    ...(metrics ? { metrics } : {}),
    ...(deps.onLocked ? { onLocked: deps.onLocked } : {}),
  });
  return {
    limiter,
    loginLockout,
    backend,
    redis,
    async close() {
      await backend.close();
      if (redis) await closeRedis(redis);
    },
  };
}

/** QUIT (or, when Redis is unreachable, drop the socket) and wait, briefly, for the connection to end. */
async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  const ended = new Promise<void>((resolve) => {
    redis.once('end', () => resolve());
    setTimeout(resolve, 1_000).unref();
  });
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
  await ended;
}
