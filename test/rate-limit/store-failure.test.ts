import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { rateLimit } from '../../src/platform/rate-limit/hooks.js';
import { byIp } from '../../src/platform/rate-limit/keys.js';
import type { NamedRateLimitRule } from '../../src/platform/rate-limit/limiter.js';
import { LoginLockout } from '../../src/platform/rate-limit/lockout.js';
import { createRateLimitMetrics } from '../../src/platform/rate-limit/metrics.js';
import { createRateLimiting } from '../../src/platform/rate-limit/rate-limiting.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import {
  captureLogger,
  closedPort,
  deleteKeys,
  eventually,
  FreezableProxy,
  redisInstance,
  redisUrl,
  uniquePrefix,
  type RedisInstance,
} from './helpers.js';

const local = (name: string, limit: number): NamedRateLimitRule => ({ name, limit, windowSeconds: 60, onStoreFailure: 'local' });
const closed = (name: string, limit: number): NamedRateLimitRule => ({ name, limit, windowSeconds: 60, onStoreFailure: 'closed' });

/**
 * What a policy does when Redis is down: "local" keeps limiting with this instance's
 * memory, "closed" refuses (503). Nothing waits on the dead Redis: every test here has
 * a 5 s budget, far below ioredis' own defaults (which would queue commands forever).
 */
describe('rate limits when Redis is unreachable (nothing listening)', { timeout: 5_000 }, () => {
  const { logger, logs } = captureLogger();
  const clock = new ManualClock();
  const registry = new Registry();
  const metrics = createRateLimitMetrics(registry);
  let instance: RedisInstance;
  let testApp: TestApp;
  let handled = 0;

  beforeAll(async () => {
    const port = await closedPort();
    instance = await redisInstance({
      url: `redis://127.0.0.1:${port}`,
      prefix: uniquePrefix('down'),
      clock,
      logger,
      metrics,
      waitReady: false,
      overrides: { 'password_reset.ip': { onStoreFailure: 'closed' } },
    });
    testApp = await createTestApp({
      beforeReady: (app) => {
        app.post('/test/login', { preHandler: rateLimit(instance.limiter, 'login.ip', byIp) }, async () => {
          handled += 1;
          return { ok: true };
        });
        app.post('/test/password-reset', { preHandler: rateLimit(instance.limiter, 'password_reset.ip', byIp) }, async () => {
          handled += 1;
          return { ok: true };
        });
      },
    });
  }, 60_000);
  afterAll(async () => {
    await testApp?.close();
    await instance?.close();
  });

  it('falls back to the local store for "local" policies, which still limits (per instance)', async () => {
    const decisions = [];
    for (let i = 0; i < 4; i += 1) decisions.push(await instance.limiter.consumeRule(local('test.local', 3), 'ip:192.0.2.1'));
    expect(decisions.map((decision) => [decision.allowed, decision.store])).toEqual([
      [true, 'memory'],
      [true, 'memory'],
      [true, 'memory'],
      [false, 'memory'],
    ]);
  });

  it('refuses "closed" policies as unavailable', async () => {
    const decision = await instance.limiter.consumeRule(closed('test.closed', 3), 'ip:192.0.2.1');
    expect(decision).toMatchObject({ allowed: false, unavailable: true, retryAfterSeconds: 5 });
  });

  it('over HTTP: login (local) still answers and limits; password reset (closed) answers 503 with Retry-After and has no effect', async () => {
    const before = handled;
    const statuses = [];
    for (let i = 0; i < 6; i += 1) {
      statuses.push((await testApp.app.inject({ method: 'POST', url: '/test/login', remoteAddress: '203.0.113.90' })).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    const reset = await testApp.app.inject({ method: 'POST', url: '/test/password-reset', remoteAddress: '203.0.113.90' });
    expect(reset.statusCode).toBe(503);
    expect(reset.headers['retry-after']).toBe('5');
    expect(reset.json().error).toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: 'Service temporarily unavailable' });
    expect(handled - before).toBe(5);
  });

  it('keeps the login lockout working locally, or fails it closed', async () => {
    const lockout = new LoginLockout(instance.backend, { logger });
    const key = LoginLockout.keyForEmail('down@example.com');
    for (let i = 0; i < 4; i += 1) await lockout.recordFailure(key);
    expect(await lockout.recordFailure(key)).toMatchObject({ locked: true, retryAfterSeconds: 30 });
    expect((await lockout.check(key)).locked).toBe(true);

    const strict = new LoginLockout(instance.backend, { logger, onStoreFailure: 'closed' });
    expect(await strict.check(LoginLockout.keyForEmail('anyone@example.com'))).toEqual({ locked: true, retryAfterSeconds: 5, unavailable: true });
  });

  it('counts the failures in metrics and logs the outage once', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/rate_limit_store_failures_total\{outcome="local"\} [1-9]/);
    expect(text).toMatch(/rate_limit_store_failures_total\{outcome="closed"\} [1-9]/);
    const outages = logs.lines.filter((line) => line.includes('rate-limit store unavailable'));
    expect(outages).toHaveLength(1);
  });

  it('createRateLimiting with an unreachable Redis builds, serves from memory, and closes', async () => {
    const port = await closedPort();
    const rateLimiting = createRateLimiting(
      { store: 'redis', redisUrl: `redis://127.0.0.1:${port}`, keyPrefix: uniquePrefix('factory') },
      { clock, logger, metrics: new Registry() },
    );
    try {
      const decision = await rateLimiting.limiter.consume('login.ip', 'ip:192.0.2.7');
      expect(decision).toMatchObject({ allowed: true, store: 'memory', limit: 5 });
    } finally {
      await rateLimiting.close();
    }
  });
});

describe.skipIf(redisUrl === null)('rate limits when Redis stalls (connected, but no answers)', { timeout: 10_000 }, () => {
  const { logger } = captureLogger();
  const clock = new ManualClock();
  const prefix = uniquePrefix('stall');
  let proxy: FreezableProxy;
  let instance: RedisInstance;

  beforeAll(async () => {
    proxy = await FreezableProxy.start(redisUrl as string);
    instance = await redisInstance({ url: proxy.url, prefix, clock, logger, commandTimeoutMs: 200 });
  });
  afterAll(async () => {
    proxy?.thaw();
    if (instance) {
      await eventually(async () => instance.client.status === 'ready', 3_000);
      await deleteKeys(instance.client, prefix).catch(() => 0);
      await instance.close();
    }
    await proxy?.close();
  });

  it('times commands out and falls back, then goes back to Redis once it answers again', async () => {
    expect((await instance.limiter.consumeRule(local('test.stall', 3), 'ip:192.0.2.2')).store).toBe('redis');
    proxy.freeze();
    const during = await instance.limiter.consumeRule(local('test.stall', 3), 'ip:192.0.2.2');
    expect(during).toMatchObject({ allowed: true, store: 'memory' });
    expect(instance.backend.degraded).toBe(true);
    expect(await instance.limiter.consumeRule(closed('test.stall.closed', 3), 'ip:192.0.2.2')).toMatchObject({ unavailable: true });
    proxy.thaw();
    expect(
      await eventually(async () => (await instance.limiter.consumeRule(local('test.stall.after', 100), 'ip:192.0.2.3')).store === 'redis', 5_000),
    ).toBe(true);
    expect(instance.backend.degraded).toBe(false);
  });
});
