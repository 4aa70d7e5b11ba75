import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { rateLimit } from '../../src/platform/rate-limit/hooks.js';
import { byIp } from '../../src/platform/rate-limit/keys.js';
import type { NamedRateLimitRule } from '../../src/platform/rate-limit/limiter.js';
import { LoginLockout } from '../../src/platform/rate-limit/lockout.js';
import { createRateLimiting } from '../../src/platform/rate-limit/rate-limiting.js';
import { waitForRedis } from '../../src/platform/rate-limit/redis-store.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { captureLogger, deleteKeys, eventually, keysUnder, redisInstance, redisUrl, uniquePrefix, type RedisInstance } from './helpers.js';

/**
 * RL-2 on a real Redis: two instances (two connections, as two service processes would
 * have) share one limit. Skipped only when this run has no Redis (never in CI).
 */
describe.skipIf(redisUrl === null)('rate limits shared through Redis (RL-2)', () => {
  const url = redisUrl as string;
  const prefix = uniquePrefix('redis');
  const { logger } = captureLogger();
  const clock = new ManualClock(); // only the local fallbacks would read it; Redis keeps its own time
  let first: RedisInstance;
  let second: RedisInstance;

  const shared = (name: string, limit: number, windowSeconds = 60): NamedRateLimitRule => ({
    name,
    limit,
    windowSeconds,
    // A Redis failure must fail these tests loudly, not be hidden by a local fallback.
    onStoreFailure: 'closed',
  });

  beforeAll(async () => {
    [first, second] = await Promise.all([
      redisInstance({ url, prefix, clock, logger }),
      redisInstance({ url, prefix, clock, logger }),
    ]);
  });
  afterAll(async () => {
    if (first) await deleteKeys(first.client, prefix);
    await first?.close();
    await second?.close();
  });

  it('lets two instances together allow exactly the limit: 3 + 3 concurrent against 5', async () => {
    for (let round = 0; round < 20; round += 1) {
      const rule = shared('test.race', 5);
      const key = `ip:192.0.2.${round}`;
      const decisions = await Promise.all([
        ...Array.from({ length: 3 }, () => first.limiter.consumeRule(rule, key)),
        ...Array.from({ length: 3 }, () => second.limiter.consumeRule(rule, key)),
      ]);
      expect(decisions.every((decision) => decision.store === 'redis' && !decision.unavailable)).toBe(true);
      expect(decisions.filter((decision) => decision.allowed)).toHaveLength(5);
      expect(decisions.map((decision) => decision.remaining).filter((_, i) => decisions[i]?.allowed).sort()).toEqual([0, 1, 2, 3, 4]);
    }
  });

  it('holds under heavier contention: 200 + 200 concurrent against 250', async () => {
    const rule = shared('test.race.large', 250);
    const decisions = await Promise.all([
      ...Array.from({ length: 200 }, () => first.limiter.consumeRule(rule, 'account:acc_race')),
      ...Array.from({ length: 200 }, () => second.limiter.consumeRule(rule, 'account:acc_race')),
    ]);
    expect(decisions.filter((decision) => decision.allowed)).toHaveLength(250);
  });

  it('answers like the memory store: remaining counts down, exact Retry-After, one first refusal', async () => {
    const rule = shared('test.contract', 5);
    const remaining: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const decision = await (i % 2 === 0 ? first : second).limiter.consumeRule(rule, 'user:u_contract');
      expect(decision.allowed).toBe(true);
      remaining.push(decision.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = await first.limiter.consumeRule(rule, 'user:u_contract');
    const again = await second.limiter.consumeRule(rule, 'user:u_contract');
    expect(refused).toMatchObject({ allowed: false, remaining: 0, store: 'redis', firstRefusal: true });
    expect(again).toMatchObject({ allowed: false, firstRefusal: false });
    // Redis time moves on between calls, so these are "12 s, or a hair under": whole seconds, rounded up.
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(11);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(12);
    expect(refused.resetSeconds).toBeGreaterThanOrEqual(59);
    expect(refused.resetSeconds).toBeLessThanOrEqual(60);
  });

  it('stores only hashed keys, each with a TTL no longer than its window', async () => {
    const rule = shared('test.ttl', 3);
    await first.limiter.consumeRule(rule, 'email:secret-person@example.com');
    for (let i = 0; i < 3; i += 1) await first.limiter.consumeRule(rule, 'email:secret-person@example.com');
    const keys = await keysUnder(first.client, `${prefix}rl:{test.ttl:`);
    expect(keys).toHaveLength(2); // the state and the "refused in this episode" marker
    for (const key of keys) {
      expect(key).not.toContain('secret-person');
      const ttl = await first.client.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
  });

  it('frees the key again once its time has passed (polled, no timing assertion)', async () => {
    const rule = shared('test.expiry', 2, 1);
    expect((await first.limiter.consumeRule(rule, 'ip:192.0.2.200')).allowed).toBe(true);
    expect((await second.limiter.consumeRule(rule, 'ip:192.0.2.200')).allowed).toBe(true);
    expect((await first.limiter.consumeRule(rule, 'ip:192.0.2.200')).allowed).toBe(false);
    expect(await eventually(async () => (await keysUnder(first.client, `${prefix}rl:{test.expiry:`)).length === 0)).toBe(true);
    const fresh = await second.limiter.consumeRule(rule, 'ip:192.0.2.200');
    expect(fresh).toMatchObject({ allowed: true, remaining: 1 });
  });

  it('reset() forgets a key for every instance', async () => {
    const rule = shared('test.reset', 1);
    expect((await first.limiter.consumeRule(rule, 'user:u_reset')).allowed).toBe(true);
    expect((await second.limiter.consumeRule(rule, 'user:u_reset')).allowed).toBe(false);
    await first.limiter.reset('test.reset', 'user:u_reset');
    expect((await second.limiter.consumeRule(rule, 'user:u_reset')).allowed).toBe(true);
  });

  describe('the login lockout across instances', () => {
    it('locks on one instance what failures on the other recorded, doubles the delay, and clears on success anywhere', async () => {
      const onFirst = new LoginLockout(first.backend, { logger, onStoreFailure: 'closed' });
      const onSecond = new LoginLockout(second.backend, { logger, onStoreFailure: 'closed' });
      const key = LoginLockout.keyForEmail('Shared@Example.com');
      for (let i = 1; i <= 4; i += 1) {
        const result = await (i % 2 === 0 ? onFirst : onSecond).recordFailure(key);
        expect(result).toMatchObject({ failures: i, locked: false });
      }
      const locked = await onSecond.recordFailure(key);
      expect(locked).toMatchObject({ failures: 5, locked: true, retryAfterSeconds: 30, lockedNow: true });
      const seen = await onFirst.check(LoginLockout.keyForEmail('shared@example.com'));
      expect(seen.locked).toBe(true);
      expect(seen.retryAfterSeconds).toBeGreaterThanOrEqual(29);
      expect(seen.retryAfterSeconds).toBeLessThanOrEqual(30);
      expect((await onFirst.recordFailure(key)).retryAfterSeconds).toBe(60);
      expect((await onSecond.recordFailure(key)).retryAfterSeconds).toBe(120);
      const ttl = await first.client.pttl((await keysUnder(first.client, `${prefix}lo:`)).find((name) => name.endsWith(':lock')) ?? '');
      expect(ttl).toBeGreaterThan(60_000);
      expect(ttl).toBeLessThanOrEqual(120_000);

      await onFirst.recordSuccess(key);
      expect((await onSecond.check(key)).locked).toBe(false);
      expect((await onSecond.recordFailure(key)).failures).toBe(1);
      await onSecond.recordSuccess(key);
    });

    it('lets the lock run out by its TTL (short delays; polled)', async () => {
      const quick = new LoginLockout(first.backend, { logger, onStoreFailure: 'closed', settings: { threshold: 2, baseDelaySeconds: 1, maxDelaySeconds: 2 } });
      const other = new LoginLockout(second.backend, { logger, onStoreFailure: 'closed', settings: { threshold: 2, baseDelaySeconds: 1, maxDelaySeconds: 2 } });
      const key = LoginLockout.keyForEmail('quick@example.com');
      await quick.recordFailure(key);
      expect((await other.recordFailure(key)).locked).toBe(true);
      expect((await quick.check(key)).locked).toBe(true);
      expect(await eventually(async () => !(await other.check(key)).locked)).toBe(true);
      // The failures are remembered: the next failure locks again, for twice as long.
      expect(await quick.recordFailure(key)).toMatchObject({ failures: 3, locked: true, retryAfterSeconds: 2 });
    });
  });
});

describe.skipIf(redisUrl === null)('two full app instances sharing Redis (RL-2)', () => {
  const url = redisUrl as string;
  const prefix = uniquePrefix('apps');
  const { logger } = captureLogger();
  const clock = new ManualClock();
  const limiters: RedisInstance[] = [];
  const apps: TestApp[] = [];
  let handled = 0;

  async function instance(): Promise<FastifyInstance> {
    const rateLimiting = await redisInstance({ url, prefix, clock, logger });
    limiters.push(rateLimiting);
    const testApp = await createTestApp({
      beforeReady: (app) => {
        app.post('/test/login', { preHandler: rateLimit(rateLimiting.limiter, 'login.ip', byIp) }, async () => {
          handled += 1;
          return { ok: true };
        });
      },
    });
    apps.push(testApp);
    return testApp.app;
  }

  afterAll(async () => {
    for (const testApp of apps) await testApp.close();
    if (limiters[0]) await deleteKeys(limiters[0].client, prefix);
    for (const rateLimiting of limiters) await rateLimiting.close();
  });

  it('refuses the 6th login in a minute from one IP whichever instance each request reaches', async () => {
    const [one, two] = await Promise.all([instance(), instance()]);
    const remaining: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const response = await (i % 2 === 0 ? one : two).inject({ method: 'POST', url: '/test/login', remoteAddress: '203.0.113.80' });
      expect(response.statusCode).toBe(200);
      remaining.push(String(response.headers['ratelimit-remaining']));
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    for (const app of [one, two]) {
      const refused = await app.inject({ method: 'POST', url: '/test/login', remoteAddress: '203.0.113.80' });
      expect(refused.statusCode).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(refused.json().error.code).toBe('RATE_LIMITED');
    }
    expect(handled).toBe(5);
    // Another client is unaffected on both.
    expect((await two.inject({ method: 'POST', url: '/test/login', remoteAddress: '203.0.113.81' })).statusCode).toBe(200);
  });
});

describe.skipIf(redisUrl === null)('createRateLimiting on Redis', () => {
  it('connects, decides in Redis for every instance, and closes its connection', async () => {
    const { logger } = captureLogger();
    const prefix = uniquePrefix('factory');
    const settings = { store: 'redis' as const, redisUrl: redisUrl as string, keyPrefix: prefix, overrides: { 'login.ip': { limit: 2 } } };
    const one = createRateLimiting(settings, { clock: new ManualClock(), logger });
    const two = createRateLimiting(settings, { clock: new ManualClock(), logger });
    try {
      await Promise.all([waitForRedis(one.redis as Redis, 5_000), waitForRedis(two.redis as Redis, 5_000)]);
      expect(await one.limiter.consume('login.ip', 'ip:192.0.2.50')).toMatchObject({ allowed: true, store: 'redis' });
      expect(await two.limiter.consume('login.ip', 'ip:192.0.2.50')).toMatchObject({ allowed: true, store: 'redis' });
      expect(await one.limiter.consume('login.ip', 'ip:192.0.2.50')).toMatchObject({ allowed: false, store: 'redis' });
      await deleteKeys(one.redis as Redis, prefix);
    } finally {
      await one.close();
      await two.close();
    }
    expect(one.redis?.status).toBe('end');
  });
});
