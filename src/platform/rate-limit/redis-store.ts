import { Redis } from 'ioredis';
import type { LockoutRule } from './gcra.js';
import type { RateLimitRule } from './policies.js';
import type { LockoutFailure, RateLimitStore, StoreDecision } from './store.js';

/**
 * GCRA in one Lua script, the same arithmetic as gcra.ts, so one round trip decides and
 * records atomically: two instances racing for the last unit cannot both get it. Time is
 * the Redis server's (TIME), one clock for every instance. KEYS[1] holds the TAT (ms, with
 * a fraction), expiring when it is reached; KEYS[2] marks "already refused in this
 * episode" so the first refusal alone is logged and audited. Needs Redis >= 5 (scripts
 * replicated by effects, so TIME may precede writes); Valkey works too.
 */
const GCRA_SCRIPT = `
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local interval = period / limit
local tolerance = math.min(interval / 2, 1)
local debt = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  debt = tonumber(stored) - now
  if debt < 0 then debt = 0 end
end
local new_debt = debt + interval * cost
if new_debt > period + tolerance then
  local reset = math.ceil(debt)
  local first = 0
  if redis.call('SET', KEYS[2], '1', 'PX', math.max(1, reset), 'NX') then first = 1 end
  return {0, 0, reset, math.ceil(new_debt - period - tolerance), first}
end
local ttl = math.max(1, math.ceil(new_debt))
redis.call('SET', KEYS[1], string.format('%.17g', now + new_debt), 'PX', ttl)
return {1, math.floor((period + tolerance - new_debt) / interval), ttl, 0, 0}
`;

/**
 * One more consecutive failure: KEYS[1] counts them (forgotten ARGV[4] ms after the last),
 * KEYS[2] is the lock itself, a key whose TTL is the lock (so checking it is one PTTL and
 * no clock is involved). The delay doubles per failure past the threshold, capped.
 */
const LOCKOUT_FAILURE_SCRIPT = `
local threshold = tonumber(ARGV[1])
local base = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
local forget = tonumber(ARGV[4])
local failures = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], forget)
if failures < threshold then return {failures, 0} end
local exponent = failures - threshold
local delay = max
if exponent < 40 then delay = math.min(base * 2 ^ exponent, max) end
redis.call('SET', KEYS[2], '1', 'PX', delay)
return {failures, delay}
`;

interface ScriptCommands {
  bulwarkRateLimitGcra(tatKey: string, markerKey: string, limit: number, periodMs: number, cost: number): Promise<number[]>;
  bulwarkRateLimitLockoutFailure(
    failuresKey: string,
    lockKey: string,
    threshold: number,
    baseMs: number,
    maxMs: number,
    forgetMs: number,
  ): Promise<number[]>;
}

export interface RedisStoreOptions {
  /** Prepended to every key, e.g. `bulwark:` (tests use one per run). */
  readonly keyPrefix?: string;
}

/**
 * Rate-limit state shared by every instance through Redis. Keys carry a hash tag
 * ({...}) so each script's keys live in one slot should the deployment use Redis Cluster.
 * Errors (Redis down, timeout) are thrown; the backend decides what a failure means.
 */
export class RedisRateLimitStore implements RateLimitStore {
  readonly kind = 'redis' as const;
  private readonly prefix: string;
  private readonly scripts: ScriptCommands;

  constructor(
    readonly client: Redis,
    options: RedisStoreOptions = {},
  ) {
    this.prefix = options.keyPrefix ?? 'bulwark:';
    client.defineCommand('bulwarkRateLimitGcra', { numberOfKeys: 2, lua: GCRA_SCRIPT });
    client.defineCommand('bulwarkRateLimitLockoutFailure', { numberOfKeys: 2, lua: LOCKOUT_FAILURE_SCRIPT });
    this.scripts = client as unknown as ScriptCommands;
  }

  private rateKeys(id: string): [string, string] {
    const base = `${this.prefix}rl:{${id}}`;
    return [base, `${base}:refused`];
  }

  private lockoutKeys(id: string): [string, string] {
    const base = `${this.prefix}lo:{${id}}`;
    return [`${base}:failures`, `${base}:lock`];
  }

  async consume(id: string, rule: RateLimitRule, cost: number): Promise<StoreDecision> {
    const [tatKey, markerKey] = this.rateKeys(id);
    const reply = await this.scripts.bulwarkRateLimitGcra(tatKey, markerKey, rule.limit, rule.windowSeconds * 1000, cost);
    const [allowed, remaining, resetMs, retryAfterMs, first] = reply.map(Number);
    return {
      allowed: allowed === 1,
      remaining: remaining ?? 0,
      resetMs: resetMs ?? 0,
      retryAfterMs: retryAfterMs ?? 0,
      firstRefusal: first === 1,
    };
  }

  async reset(id: string): Promise<void> {
    await this.client.del(...this.rateKeys(id));
  }

  async recordFailure(id: string, rule: LockoutRule): Promise<LockoutFailure> {
    const [failuresKey, lockKey] = this.lockoutKeys(id);
    const reply = await this.scripts.bulwarkRateLimitLockoutFailure(
      failuresKey,
      lockKey,
      rule.threshold,
      rule.baseDelayMs,
      rule.maxDelayMs,
      rule.forgetAfterMs,
    );
    const [failures, lockedMs] = reply.map(Number);
    return { failures: failures ?? 0, lockedMs: lockedMs ?? 0 };
  }

  async lockedForMs(id: string): Promise<number> {
    const ttl = await this.client.pttl(this.lockoutKeys(id)[1]);
    return ttl > 0 ? ttl : 0;
  }

  async clearFailures(id: string): Promise<void> {
    await this.client.del(...this.lockoutKeys(id));
  }

  /** The client belongs to whoever created it (createRateLimitRedisClient's caller closes it). */
  async close(): Promise<void> {}
}

export interface RateLimitRedisClientOptions {
  /** Upper bound on one command; a slower Redis counts as down. */
  readonly commandTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  /** Connect only when connect() is called (tests); default: connect at once. */
  readonly lazyConnect?: boolean;
  /** Told about connection errors (throttled by the caller if needed). */
  readonly onError?: (error: Error) => void;
}

/**
 * An ioredis client that never makes a request wait on a dead Redis: commands fail at
 * once while disconnected (no offline queue), are not retried across reconnects (a retry
 * could count a request twice), and are bounded by a command timeout. It keeps
 * reconnecting in the background with a capped backoff.
 */
export function createRateLimitRedisClient(url: string, options: RateLimitRedisClientOptions = {}): Redis {
  const client = new Redis(url, {
    commandTimeout: options.commandTimeoutMs ?? 250,
    connectTimeout: options.connectTimeoutMs ?? 2_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: options.lazyConnect ?? false,
    connectionName: 'bulwark-rate-limit',
  });
  // Without a listener ioredis prints every connection error to stderr.
  client.on('error', (error: Error) => options.onError?.(error));
  return client;
}

/**
 * Resolves when the client is ready; rejects after timeoutMs. Connection errors in
 * between do not end the wait (the client keeps retrying), unlike events.once.
 */
export function waitForRedis(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis not ready within ${timeoutMs} ms (status ${client.status})`));
    }, timeoutMs);
    client.once('ready', onReady);
    if (client.status === 'wait') void client.connect().catch(() => undefined);
  });
}
