import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { RateLimitBackend } from '../../src/platform/rate-limit/backend.js';
import type { RateLimitedEvent } from '../../src/platform/rate-limit/limiter.js';
import { MemoryRateLimitStore } from '../../src/platform/rate-limit/memory-store.js';
import { createRateLimiting } from '../../src/platform/rate-limit/rate-limiting.js';
import type { RateLimitStore } from '../../src/platform/rate-limit/store.js';
import { captureLogger, memoryLimiter } from './helpers.js';

describe('RateLimiter', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
  });

  function setUp(options: Partial<Parameters<typeof memoryLimiter>[0]> = {}) {
    const clock = new ManualClock();
    const { logger, logs } = captureLogger();
    const built = memoryLimiter({ clock, logger, ...options });
    closers.push(() => built.backend.close());
    return { ...built, clock, logs };
  }

  it('turns the store outcome into whole seconds: Retry-After rounds up and is at least 1', async () => {
    const { limiter } = setUp({ overrides: { 'checkout.user': { limit: 3, windowSeconds: 1 } } });
    for (let i = 0; i < 3; i += 1) await limiter.consume('checkout.user', 'user:u1');
    const refused = await limiter.consume('checkout.user', 'user:u1');
    expect(refused).toMatchObject({ allowed: false, retryAfterSeconds: 1, resetSeconds: 1, limit: 3, windowSeconds: 1, policy: 'checkout.user' });
    const allowed = await limiter.consume('checkout.user', 'user:u2');
    expect(allowed).toMatchObject({ allowed: true, retryAfterSeconds: 0, remaining: 2, store: 'memory', unavailable: false });
  });

  it('keeps policies apart for the same key', async () => {
    const { limiter } = setUp();
    expect((await limiter.consume('account_delete.user', 'user:u1')).allowed).toBe(true);
    expect((await limiter.consume('account_delete.user', 'user:u1')).allowed).toBe(false);
    expect((await limiter.consume('account_export.user', 'user:u1')).allowed).toBe(true);
  });

  it('calls onLimited once per episode, and a failing hook never turns a refusal into an error', async () => {
    const events: RateLimitedEvent[] = [];
    const { limiter, logs } = setUp({
      onLimited: (event) => {
        events.push(event);
        throw new Error('audit database down');
      },
    });
    await limiter.consume('account_delete.user', 'user:u1');
    const first = await limiter.consume('account_delete.user', 'user:u1');
    const second = await limiter.consume('account_delete.user', 'user:u1');
    expect([first.allowed, second.allowed]).toEqual([false, false]);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ policy: 'account_delete.user', keyKind: 'user', key: 'user:u1', request: undefined });
    expect(logs.text).toContain('rate-limit lockout hook failed');
    expect(logs.text).not.toContain('user:u1');
  });

  it('takes the hook later with setOnLimited (the audit module is built after it)', async () => {
    const { limiter } = setUp();
    const events: string[] = [];
    limiter.setOnLimited((event) => void events.push(event.policy));
    await limiter.consume('account_delete.user', 'user:u9');
    await limiter.consume('account_delete.user', 'user:u9');
    expect(events).toEqual(['account_delete.user']);
  });

  it('refuses a cost outside 1..limit and a malformed run-time rule', async () => {
    const { limiter } = setUp();
    await expect(limiter.consume('checkout.user', 'user:u1', { cost: 6 })).rejects.toThrow(/cost/);
    await expect(limiter.consume('checkout.user', 'user:u1', { cost: 0 })).rejects.toThrow(/cost/);
    await expect(limiter.consumeRule({ name: 'machine.account', limit: 0, windowSeconds: 60, onStoreFailure: 'local' }, 'account:a')).rejects.toThrow(/limit/);
  });

  it('never stores the raw key: ids are hashed, and keyed by a secret when one is given', () => {
    const { logger } = captureLogger();
    const plain = new RateLimitBackend({ store: new MemoryRateLimitStore(new ManualClock()), logger });
    const keyedA = new RateLimitBackend({ store: new MemoryRateLimitStore(new ManualClock()), logger, keySecret: 'a'.repeat(32) });
    const keyedB = new RateLimitBackend({ store: new MemoryRateLimitStore(new ManualClock()), logger, keySecret: 'b'.repeat(32) });
    closers.push(() => plain.close(), () => keyedA.close(), () => keyedB.close());
    const id = plain.idFor('login.account', 'email:alice@example.com');
    expect(id).toMatch(/^login\.account:[A-Za-z0-9_-]{24}$/);
    expect(id).not.toContain('alice');
    expect(keyedA.idFor('login.account', 'email:alice@example.com')).not.toBe(id);
    expect(keyedA.idFor('login.account', 'email:alice@example.com')).not.toBe(keyedB.idFor('login.account', 'email:alice@example.com'));
    expect(keyedA.idFor('login.account', 'email:alice@example.com')).toBe(keyedA.idFor('login.account', 'email:alice@example.com'));
  });

  it('refuses a shared store without a local fallback', () => {
    const { logger } = captureLogger();
    const shared = { kind: 'redis' } as unknown as RateLimitStore;
    expect(() => new RateLimitBackend({ store: shared, logger })).toThrow(/fallback/);
  });

  it('createRateLimiting (memory) applies overrides, counts hits on the given registry, and closes', async () => {
    const { logger } = captureLogger();
    const registry = new Registry();
    const rateLimiting = createRateLimiting(
      { store: 'memory', overrides: { 'login.ip': { limit: 2 } }, lockout: { threshold: 2 } },
      { clock: new ManualClock(), logger, metrics: registry },
    );
    closers.push(() => rateLimiting.close());
    expect(rateLimiting.redis).toBeUndefined();
    await rateLimiting.limiter.consume('login.ip', 'ip:192.0.2.1');
    await rateLimiting.limiter.consume('login.ip', 'ip:192.0.2.1');
    expect((await rateLimiting.limiter.consume('login.ip', 'ip:192.0.2.1')).allowed).toBe(false);
    await rateLimiting.loginLockout.recordFailure('email:x@example.com');
    expect((await rateLimiting.loginLockout.recordFailure('email:x@example.com')).locked).toBe(true);
    expect(await registry.metrics()).toContain('rate_limit_hits_total{policy="login.ip"} 1');
    expect(() => createRateLimiting({ store: 'redis' }, { clock: new ManualClock(), logger })).toThrow(/Redis URL/);
  });
});
