import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allocate, type AllocatableGrant } from '../../src/modules/credits/allocation.js';

const NOW = new Date('2026-06-01T00:00:00Z');
const at = (iso: string) => new Date(iso);

describe('allocate (CRD-1): soonest-expiring grants first, exact sums', () => {
  it('spends the soonest-expiring grant first and grants without expiry last', () => {
    const grants: AllocatableGrant[] = [
      { id: 'grant_never', remaining: 50, expiresAt: null },
      { id: 'grant_late', remaining: 10, expiresAt: at('2026-12-01T00:00:00Z') },
      { id: 'grant_soon', remaining: 5, expiresAt: at('2026-06-02T00:00:00Z') },
    ];
    expect(allocate(grants, 3, NOW)).toEqual({ allocations: [{ grantId: 'grant_soon', amount: 3 }] });
    expect(allocate(grants, 20, NOW)).toEqual({
      allocations: [
        { grantId: 'grant_soon', amount: 5 },
        { grantId: 'grant_late', amount: 10 },
        { grantId: 'grant_never', amount: 5 },
      ],
    });
  });

  it('skips expired and empty grants, and an expiry exactly at now counts as expired', () => {
    const grants: AllocatableGrant[] = [
      { id: 'grant_expired', remaining: 100, expiresAt: at('2026-05-31T23:59:59Z') },
      { id: 'grant_now', remaining: 100, expiresAt: NOW },
      { id: 'grant_empty', remaining: 0, expiresAt: at('2026-06-01T00:00:01Z') },
      { id: 'grant_ok', remaining: 4, expiresAt: null },
    ];
    expect(allocate(grants, 4, NOW)).toEqual({ allocations: [{ grantId: 'grant_ok', amount: 4 }] });
    expect(allocate(grants, 5, NOW)).toEqual({ insufficient: true });
  });

  it('breaks ties by creation time, then by id, whatever the input order', () => {
    const expiresAt = at('2026-07-01T00:00:00Z');
    const grants: AllocatableGrant[] = [
      { id: 'grant_b', remaining: 2, expiresAt, createdAt: at('2026-01-01T00:00:00Z') },
      { id: 'grant_c', remaining: 2, expiresAt, createdAt: at('2026-01-02T00:00:00Z') },
      { id: 'grant_a', remaining: 2, expiresAt, createdAt: at('2026-01-01T00:00:00Z') },
    ];
    const expected = { allocations: [{ grantId: 'grant_a', amount: 2 }, { grantId: 'grant_b', amount: 2 }, { grantId: 'grant_c', amount: 1 }] };
    expect(allocate(grants, 5, NOW)).toEqual(expected);
    expect(allocate([...grants].reverse(), 5, NOW)).toEqual(expected);
  });

  it('answers insufficient with nothing allocated when the usable total is short, and exact when it is just enough', () => {
    const grants: AllocatableGrant[] = [
      { id: 'grant_1', remaining: 3, expiresAt: null },
      { id: 'grant_2', remaining: 4, expiresAt: null },
    ];
    expect(allocate(grants, 8, NOW)).toEqual({ insufficient: true });
    expect(allocate(grants, 7, NOW)).toEqual({ allocations: [{ grantId: 'grant_1', amount: 3 }, { grantId: 'grant_2', amount: 4 }] });
    expect(allocate([], 1, NOW)).toEqual({ insufficient: true });
  });

  it('refuses amounts that are not whole positive credits', () => {
    for (const amount of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(() => allocate([{ id: 'grant_1', remaining: 10, expiresAt: null }], amount, NOW)).toThrow(RangeError);
    }
    expect(() => allocate([{ id: 'grant_1', remaining: 0.5, expiresAt: null }], 1, NOW)).toThrow(RangeError);
  });
});

const offsetMs = fc.integer({ min: -10 * 86_400_000, max: 30 * 86_400_000 });
const grantArbitrary = fc.record({
  remaining: fc.integer({ min: 0, max: 1_000 }),
  expiresIn: fc.option(offsetMs, { nil: null }),
  createdAgo: fc.integer({ min: 0, max: 1_000_000 }),
});
const grantsArbitrary = fc
  .array(grantArbitrary, { maxLength: 12 })
  .map((items) =>
    items.map(
      (item, index): AllocatableGrant => ({
        id: `grant_${String(index).padStart(2, '0')}`,
        remaining: item.remaining,
        expiresAt: item.expiresIn === null ? null : new Date(NOW.getTime() + item.expiresIn),
        createdAt: new Date(NOW.getTime() - item.createdAgo),
      }),
    ),
  );

function usable(grant: AllocatableGrant): boolean {
  return grant.remaining > 0 && (grant.expiresAt === null || grant.expiresAt.getTime() > NOW.getTime());
}
const expiryKey = (grant: AllocatableGrant) => (grant.expiresAt === null ? Number.POSITIVE_INFINITY : grant.expiresAt.getTime());

describe('allocate: properties (fast-check)', () => {
  it('never allocates more than a grant has, never from an unusable grant, and sums exactly (or refuses exactly when short)', () => {
    fc.assert(
      fc.property(grantsArbitrary, fc.integer({ min: 1, max: 5_000 }), (grants, amount) => {
        const byId = new Map(grants.map((grant) => [grant.id, grant]));
        const available = grants.filter(usable).reduce((sum, grant) => sum + grant.remaining, 0);
        const result = allocate(grants, amount, NOW);
        if ('insufficient' in result) {
          expect(available).toBeLessThan(amount);
          return;
        }
        expect(available).toBeGreaterThanOrEqual(amount);
        expect(result.allocations.reduce((sum, allocation) => sum + allocation.amount, 0)).toBe(amount);
        const seen = new Set<string>();
        for (const allocation of result.allocations) {
          const grant = byId.get(allocation.grantId);
          expect(grant).toBeDefined();
          if (!grant) return;
          expect(usable(grant)).toBe(true);
          expect(Number.isSafeInteger(allocation.amount)).toBe(true);
          expect(allocation.amount).toBeGreaterThan(0);
          expect(allocation.amount).toBeLessThanOrEqual(grant.remaining);
          expect(seen.has(allocation.grantId)).toBe(false);
          seen.add(allocation.grantId);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('always spends soonest-expiring first: only the last grant it takes from is partly used, and no unused usable grant expires sooner', () => {
    fc.assert(
      fc.property(grantsArbitrary, fc.integer({ min: 1, max: 5_000 }), (grants, amount) => {
        const result = allocate(grants, amount, NOW);
        if ('insufficient' in result) return;
        const byId = new Map(grants.map((grant) => [grant.id, grant]));
        const taken = result.allocations.map((allocation) => byId.get(allocation.grantId) as AllocatableGrant);
        // In order of expiry (none last).
        for (let index = 1; index < taken.length; index += 1) {
          expect(expiryKey(taken[index - 1] as AllocatableGrant)).toBeLessThanOrEqual(expiryKey(taken[index] as AllocatableGrant));
        }
        // Every grant but the last is emptied.
        result.allocations.slice(0, -1).forEach((allocation) => expect(allocation.amount).toBe(byId.get(allocation.grantId)?.remaining));
        // No usable grant left untouched expires strictly sooner than one that was used.
        const latestTaken = Math.max(...taken.map(expiryKey));
        const untouched = grants.filter((grant) => usable(grant) && !taken.includes(grant));
        for (const grant of untouched) expect(expiryKey(grant)).toBeGreaterThanOrEqual(latestTaken);
      }),
      { numRuns: 500 },
    );
  });

  it('does not depend on the order the grants come in', () => {
    fc.assert(
      fc.property(grantsArbitrary, fc.integer({ min: 1, max: 5_000 }), fc.integer(), (grants, amount, seed) => {
        const shuffled = [...grants].sort((a, b) => ((a.id.charCodeAt(6) * 31 + seed) % 7) - ((b.id.charCodeAt(6) * 31 + seed) % 7));
        expect(allocate(shuffled, amount, NOW)).toEqual(allocate(grants, amount, NOW));
      }),
      { numRuns: 200 },
    );
  });
});
