import { describe, expect, it } from 'vitest';
import { VerificationCache, type CachedVerification } from '../../src/modules/api-keys/verification-cache.js';

function entry(keyId: string): CachedVerification {
  return { keyId, accountId: 'acct_a', expiresAtMs: null, lastUsedAtMs: null };
}

describe('VerificationCache', () => {
  it('answers within the time to live and forgets after it', () => {
    const cache = new VerificationCache(30_000, 10);
    expect(cache.set('h1', entry('k1'), 1_000, cache.epoch)).toBe(true);
    expect(cache.get('h1', 30_999)?.keyId).toBe('k1');
    expect(cache.get('h1', 31_000)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('evicts the least recently used entry beyond its size', () => {
    const cache = new VerificationCache(30_000, 2);
    cache.set('h1', entry('k1'), 0, cache.epoch);
    cache.set('h2', entry('k2'), 0, cache.epoch);
    expect(cache.get('h1', 1)).toBeDefined(); // h1 is now the most recent
    cache.set('h3', entry('k3'), 2, cache.epoch);
    expect(cache.size).toBe(2);
    expect(cache.get('h2', 3)).toBeUndefined();
    expect(cache.get('h1', 3)).toBeDefined();
    expect(cache.get('h3', 3)).toBeDefined();
  });

  it('drops a key by id when it is invalidated', () => {
    const cache = new VerificationCache(30_000, 10);
    cache.set('h1', entry('k1'), 0, cache.epoch);
    cache.set('h2', entry('k2'), 0, cache.epoch);
    cache.invalidateKey('k1');
    expect(cache.get('h1', 1)).toBeUndefined();
    expect(cache.get('h2', 1)).toBeDefined();
  });

  it('refuses to store a look-up that began before an invalidation (no resurrection of a revoked key)', () => {
    const cache = new VerificationCache(30_000, 10);
    const epochAtLookup = cache.epoch;
    cache.invalidateKey('k1'); // the revocation arrives while the look-up is in flight
    expect(cache.set('h1', entry('k1'), 0, epochAtLookup)).toBe(false);
    expect(cache.get('h1', 1)).toBeUndefined();
    const afterClear = cache.epoch;
    cache.clear();
    expect(cache.set('h1', entry('k1'), 0, afterClear)).toBe(false);
    expect(cache.set('h1', entry('k1'), 0, cache.epoch)).toBe(true);
  });
});
