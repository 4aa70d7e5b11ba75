import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { RateLimitBackend } from '../../src/platform/rate-limit/backend.js';
import { LoginLockout, loginLockedError, type LoginLockedEvent } from '../../src/platform/rate-limit/lockout.js';
import { MemoryRateLimitStore } from '../../src/platform/rate-limit/memory-store.js';
import { createRateLimitMetrics } from '../../src/platform/rate-limit/metrics.js';
import { captureLogger } from './helpers.js';

describe('LoginLockout on the memory store (issue 3 item 6)', () => {
  const backends: RateLimitBackend[] = [];
  afterEach(async () => {
    for (const backend of backends.splice(0)) await backend.close();
  });

  function setUp() {
    const clock = new ManualClock();
    const { logger, logs } = captureLogger();
    const registry = new Registry();
    const metrics = createRateLimitMetrics(registry);
    const backend = new RateLimitBackend({ store: new MemoryRateLimitStore(clock), logger, metrics });
    backends.push(backend);
    const events: LoginLockedEvent[] = [];
    const lockout = new LoginLockout(backend, { logger, metrics });
    lockout.setOnLocked((event) => void events.push(event));
    return { clock, lockout, logs, registry, events };
  }

  it('locks after 5 consecutive failures, doubling the delay with each further failure, capped at 15 minutes', async () => {
    const { clock, lockout } = setUp();
    const key = LoginLockout.keyForEmail('alice@example.com');
    for (let i = 1; i <= 4; i += 1) {
      expect(await lockout.recordFailure(key)).toMatchObject({ failures: i, locked: false, lockedNow: false });
      expect(await lockout.check(key)).toEqual({ locked: false, retryAfterSeconds: 0, unavailable: false });
    }
    const delays: number[] = [];
    for (let failure = 5; failure <= 11; failure += 1) {
      const result = await lockout.recordFailure(key);
      expect(result).toMatchObject({ failures: failure, locked: true, lockedNow: true });
      delays.push(result.retryAfterSeconds);
      expect(await lockout.check(key)).toEqual({ locked: true, retryAfterSeconds: result.retryAfterSeconds, unavailable: false });
      // Still locked one second before the end, free at the end.
      clock.advance((result.retryAfterSeconds - 1) * 1000);
      expect((await lockout.check(key)).locked).toBe(true);
      clock.advance(1000);
      expect((await lockout.check(key)).locked).toBe(false);
    }
    expect(delays).toEqual([30, 60, 120, 240, 480, 900, 900]);
  });

  it('forgets everything on success', async () => {
    const { lockout } = setUp();
    const key = LoginLockout.keyForEmail('bob@example.com');
    for (let i = 0; i < 6; i += 1) await lockout.recordFailure(key);
    expect((await lockout.check(key)).locked).toBe(true);
    await lockout.recordSuccess(key);
    expect((await lockout.check(key)).locked).toBe(false);
    // The count starts again: four more failures do not lock.
    for (let i = 0; i < 4; i += 1) expect((await lockout.recordFailure(key)).locked).toBe(false);
  });

  it('forgets failures an hour after the last one', async () => {
    const { clock, lockout } = setUp();
    const key = LoginLockout.keyForEmail('carol@example.com');
    for (let i = 0; i < 4; i += 1) await lockout.recordFailure(key);
    clock.advance(60 * 60 * 1000);
    expect(await lockout.recordFailure(key)).toMatchObject({ failures: 1, locked: false });
  });

  it('behaves the same for any email, known or not, and for its spellings (no enumeration)', async () => {
    const { lockout } = setUp();
    const results = [];
    for (const email of ['known@example.com', 'nobody-has-this@example.com']) {
      const key = LoginLockout.keyForEmail(email);
      const sequence = [];
      for (let i = 0; i < 6; i += 1) sequence.push(await lockout.recordFailure(key));
      sequence.push(await lockout.check(key));
      results.push(sequence);
    }
    expect(results[0]).toEqual(results[1]);
    // Case and surrounding spaces do not give a fresh count.
    expect((await lockout.check(LoginLockout.keyForEmail('  KNOWN@Example.com '))).locked).toBe(true);
  });

  it('keeps accounts apart', async () => {
    const { lockout } = setUp();
    for (let i = 0; i < 5; i += 1) await lockout.recordFailure(LoginLockout.keyForEmail('dave@example.com'));
    expect((await lockout.check(LoginLockout.keyForEmail('erin@example.com'))).locked).toBe(false);
  });

  it('logs and reports each lock without the email, and counts refused checks', async () => {
    const { lockout, logs, registry, events } = setUp();
    const key = LoginLockout.keyForEmail('frank@example.com');
    for (let i = 0; i < 6; i += 1) await lockout.recordFailure(key);
    await lockout.check(key);
    await lockout.check(key);
    expect(events.map((event) => [event.keyKind, event.failures, event.lockSeconds])).toEqual([
      ['email', 5, 30],
      ['email', 6, 60],
    ]);
    expect(events[0]?.key).toBe('email:frank@example.com');
    const warnings = logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.level === 40);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ policy: 'login.lockout', keyKind: 'email', failures: 5, lockSeconds: 30 });
    expect(logs.text).not.toContain('frank');
    expect(await registry.metrics()).toContain('rate_limit_hits_total{policy="login.lockout"} 2');
  });

  it('answers a locked login 429 with Retry-After, in the error envelope', () => {
    const error = loginLockedError({ locked: true, retryAfterSeconds: 60, unavailable: false });
    expect(error).toMatchObject({ code: 'RATE_LIMITED', statusCode: 429, headers: { 'Retry-After': '60' } });
    expect(loginLockedError({ locked: true, retryAfterSeconds: 5, unavailable: true })).toMatchObject({ statusCode: 503 });
  });

  it('refuses settings that make no sense', () => {
    const { logger } = captureLogger();
    const backend = new RateLimitBackend({ store: new MemoryRateLimitStore(new ManualClock()), logger });
    backends.push(backend);
    expect(() => new LoginLockout(backend, { logger, settings: { threshold: 0 } })).toThrow(/threshold/);
    expect(() => new LoginLockout(backend, { logger, settings: { baseDelaySeconds: 60, maxDelaySeconds: 30 } })).toThrow(/max delay/);
  });
});
