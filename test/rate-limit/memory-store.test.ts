import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { gcra } from '../../src/platform/rate-limit/gcra.js';
import { MemoryRateLimitStore } from '../../src/platform/rate-limit/memory-store.js';

const PER_MINUTE_5 = { limit: 5, windowSeconds: 60 };

describe('MemoryRateLimitStore (GCRA on the injected clock)', () => {
  const stores: MemoryRateLimitStore[] = [];
  function open(clock: ManualClock, options: ConstructorParameters<typeof MemoryRateLimitStore>[1] = {}): MemoryRateLimitStore {
    const store = new MemoryRateLimitStore(clock, options);
    stores.push(store);
    return store;
  }
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
  });

  it('allows exactly the limit at once, counting remaining down, then refuses', async () => {
    const store = open(new ManualClock());
    const remaining: number[] = [];
    for (let i = 0; i < 5; i += 1) {
      const decision = await store.consume('k', PER_MINUTE_5, 1);
      expect(decision.allowed).toBe(true);
      remaining.push(decision.remaining);
    }
    expect(remaining).toEqual([4, 3, 2, 1, 0]);
    const refused = await store.consume('k', PER_MINUTE_5, 1);
    expect(refused).toEqual({ allowed: false, remaining: 0, resetMs: 60_000, retryAfterMs: 12_000 - 1, firstRefusal: true });
  });

  it('a refusal changes nothing: refusing many times does not push the next allowed moment back', async () => {
    const clock = new ManualClock();
    const store = open(clock);
    for (let i = 0; i < 5; i += 1) await store.consume('k', PER_MINUTE_5, 1);
    for (let i = 0; i < 50; i += 1) expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(false);
    clock.advance(12_000);
    expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(true);
  });

  it('frees one request per interval (window / limit) and the whole quota after the window', async () => {
    const clock = new ManualClock();
    const store = open(clock);
    for (let i = 0; i < 5; i += 1) await store.consume('k', PER_MINUTE_5, 1);
    clock.advance(11_000);
    expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(false);
    clock.advance(1_000);
    const one = await store.consume('k', PER_MINUTE_5, 1);
    expect(one).toMatchObject({ allowed: true, remaining: 0 });
    expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(false);
    clock.advance(60_000);
    const fresh = await store.consume('k', PER_MINUTE_5, 1);
    expect(fresh).toMatchObject({ allowed: true, remaining: 4, resetMs: 12_000 });
  });

  it('has no window boundary to exploit: a burst just after a burst is refused', async () => {
    // With a fixed one-minute window, 5 at 0:59 and 5 more at 1:01 would all pass.
    const clock = new ManualClock('2026-01-01T00:00:59Z');
    const store = open(clock);
    for (let i = 0; i < 5; i += 1) expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(true);
    clock.advance(2_000);
    for (let i = 0; i < 5; i += 1) expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(false);
  });

  it('holds the long-run rate to the limit per window', async () => {
    const clock = new ManualClock();
    const store = open(clock);
    const allowedAt: number[] = [];
    for (let t = 0; t < 10 * 60_000; t += 1_000) {
      if ((await store.consume('k', PER_MINUTE_5, 1)).allowed) allowedAt.push(t);
      clock.advance(1_000);
    }
    // The burst of 5, then one every 12 s: at 12 s, 24 s, ... 588 s.
    expect(allowedAt.slice(0, 7)).toEqual([0, 1_000, 2_000, 3_000, 4_000, 12_000, 24_000]);
    expect(allowedAt).toHaveLength(5 + 49);
    for (const start of allowedAt) {
      expect(allowedAt.filter((t) => t >= start && t < start + 60_000).length).toBeLessThanOrEqual(2 * 5 - 1);
    }
  });

  it('keeps keys apart', async () => {
    const store = open(new ManualClock());
    for (let i = 0; i < 5; i += 1) await store.consume('a', PER_MINUTE_5, 1);
    expect((await store.consume('a', PER_MINUTE_5, 1)).allowed).toBe(false);
    expect((await store.consume('b', PER_MINUTE_5, 1)).allowed).toBe(true);
  });

  it('counts a cost of several units at once', async () => {
    const store = open(new ManualClock());
    expect(await store.consume('k', PER_MINUTE_5, 3)).toMatchObject({ allowed: true, remaining: 2 });
    expect((await store.consume('k', PER_MINUTE_5, 3)).allowed).toBe(false);
    expect(await store.consume('k', PER_MINUTE_5, 2)).toMatchObject({ allowed: true, remaining: 0 });
  });

  it('reports the first refusal of an episode only once per window', async () => {
    const clock = new ManualClock();
    const store = open(clock);
    for (let i = 0; i < 5; i += 1) await store.consume('k', PER_MINUTE_5, 1);
    const first = await store.consume('k', PER_MINUTE_5, 1);
    const second = await store.consume('k', PER_MINUTE_5, 1);
    expect([first.firstRefusal, second.firstRefusal]).toEqual([true, false]);
    clock.advance(12_000);
    await store.consume('k', PER_MINUTE_5, 1); // allowed: one unit had freed
    expect((await store.consume('k', PER_MINUTE_5, 1)).firstRefusal).toBe(false);
    clock.advance(61_000);
    for (let i = 0; i < 5; i += 1) await store.consume('k', PER_MINUTE_5, 1);
    expect((await store.consume('k', PER_MINUTE_5, 1)).firstRefusal).toBe(true);
  });

  it('reset() forgets a key', async () => {
    const store = open(new ManualClock());
    for (let i = 0; i < 5; i += 1) await store.consume('k', PER_MINUTE_5, 1);
    await store.reset('k');
    expect((await store.consume('k', PER_MINUTE_5, 1)).allowed).toBe(true);
  });

  it('sweeps expired state and holds at most maxKeys keys', async () => {
    const clock = new ManualClock();
    const store = open(clock, { maxKeys: 100 });
    for (let i = 0; i < 1_000; i += 1) await store.consume(`k${i}`, PER_MINUTE_5, 1);
    expect(store.size).toBe(100);
    // The most recently used keys are the ones kept.
    expect((await store.consume('k999', PER_MINUTE_5, 4)).remaining).toBe(0);
    clock.advance(12_000);
    store.sweep();
    expect(store.size).toBe(1); // only k999 still owes time
    clock.advance(60_000);
    store.sweep();
    expect(store.size).toBe(0);
  });

  it('keeps exact counts for limits that do not divide the window evenly', () => {
    for (const limit of [3, 7, 13, 99, 600, 30_000]) {
      const rule = { limit, windowSeconds: 60 };
      let tat: number | undefined;
      let allowed = 0;
      for (let i = 0; i < limit + 5; i += 1) {
        const outcome = gcra(1_767_225_600_000, tat, rule, 1);
        if (outcome.allowed) {
          allowed += 1;
          tat = outcome.tat;
        }
      }
      expect(allowed, `limit ${limit}`).toBe(limit);
    }
  });
});
