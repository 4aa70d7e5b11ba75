import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocate } from '../../src/modules/credits/allocation.js';
import type { CreditsService } from '../../src/modules/credits/credits.service.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { newId } from '../../src/platform/ids.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { creditsOf, newAccount } from './helpers.js';

/**
 * allocation.ts is the specification of the spending order (CRD-1); credit_reserve
 * (migration 0012) applies it inside PostgreSQL. For random sets of grants and amounts,
 * the database must take exactly what allocate() says, or refuse exactly when it refuses.
 */
describe('credit_reserve allocates exactly like allocate()', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-09-01T00:00:00Z');
  let credits: CreditsService;

  beforeAll(async () => {
    testApp = await createTestApp({ clock });
    credits = creditsOf(testApp, clock);
  });
  afterAll(async () => testApp.close());

  const grantArbitrary = fc.record({
    remaining: fc.integer({ min: 0, max: 12 }),
    // minutes from now: negative = expired; null = no expiry; small ranges so that ties happen
    expiresInMinutes: fc.option(fc.integer({ min: -3, max: 4 }), { nil: null }),
    createdMinutesAgo: fc.integer({ min: 0, max: 2 }),
  });

  it('for random grants and amounts', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(grantArbitrary, { minLength: 0, maxLength: 6 }), fc.integer({ min: 1, max: 40 }), async (specs, amount) => {
        const account = await newAccount(testApp.deps.database, clock);
        const now = clock.now();
        const grants = specs.map((spec) => ({
          id: newId('grant'),
          amount: Math.max(spec.remaining, 1),
          remaining: spec.remaining,
          expiresAt: spec.expiresInMinutes === null ? null : new Date(now.getTime() + spec.expiresInMinutes * 60_000),
          createdAt: new Date(now.getTime() - spec.createdMinutesAgo * 60_000),
        }));
        await asSystem(testApp.deps.database, async (tx) => {
          for (const grant of grants) {
            await tx.query(
              `INSERT INTO credit_grants (id, account_id, source, amount, remaining, expires_at, created_at) VALUES ($1, $2, 'admin', $3, $4, $5, $6)`,
              [grant.id, account, grant.amount, grant.remaining, grant.expiresAt, grant.createdAt],
            );
          }
        });
        const expected = allocate(grants, amount, now);
        const attempt = await credits.reserve(account, { jobId: 'j', jobType: 'render', amount, idempotencyKey: 'k' }).then(
          (result) => result.reservation.id,
          (error: { code?: string }) => error.code,
        );
        if ('insufficient' in expected) {
          expect(attempt).toBe('INSUFFICIENT_CREDITS');
          return;
        }
        const { rows } = await asSystem(testApp.deps.database, (tx) =>
          tx.query<{ grant_id: string; amount: number }>('SELECT grant_id, amount FROM credit_reservation_allocations WHERE reservation_id = $1', [attempt]),
        );
        const taken = Object.fromEntries(rows.map((row) => [row.grant_id, row.amount]));
        expect(taken).toEqual(Object.fromEntries(expected.allocations.map((allocation) => [allocation.grantId, allocation.amount])));
      }),
      { numRuns: 60 },
    );
  }, 60_000);
});
