import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allocate, type AllocatableGrant } from '../../src/modules/credits/allocation.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { newId } from '../../src/platform/ids.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { newAccount } from '../credits/helpers.js';

/**
 * gate_pass_many (migration 0024) decides a batch of gates on one statement: each gate
 * exactly as gate_pass would, one after the other, in batch order. The model below is
 * that rule written out (entitlement_count for the counter, allocate() for the credits,
 * one reservation per key); for random batches on random grants, the database must give
 * every gate the model's outcome and leave the model's counters and grants behind.
 */
interface Item {
  readonly feature: 'f1' | 'f2';
  readonly track: number | null;
  readonly limit: number | null;
  readonly key: string | null;
  readonly amount: number;
}

interface Expected {
  readonly outcome: 'allowed' | 'limit' | 'insufficient' | 'replayed';
  readonly used: number | null;
  readonly applied: boolean | null;
  readonly held: boolean;
}

function model(items: readonly Item[], startGrants: readonly AllocatableGrant[], now: Date) {
  const used = new Map<string, number>();
  const grants = startGrants.map((grant) => ({ ...grant }));
  const keys = new Set<string>();
  const answers: Expected[] = [];
  for (const item of items) {
    if (item.key !== null && keys.has(item.key)) {
      answers.push({ outcome: 'replayed', used: null, applied: null, held: true });
      continue;
    }
    const before = used.get(item.feature) ?? 0;
    const refused = item.limit !== null && (item.track !== null ? before + item.track > item.limit : before >= item.limit);
    if (refused) {
      answers.push({ outcome: 'limit', used: before, applied: false, held: false });
      continue;
    }
    if (item.key !== null) {
      const allocation = allocate(grants, item.amount, now);
      if ('insufficient' in allocation) {
        answers.push({ outcome: 'insufficient', used: before, applied: false, held: false });
        continue;
      }
      for (const { grantId, amount } of allocation.allocations) {
        const grant = grants.find((candidate) => candidate.id === grantId);
        if (grant) grant.remaining -= amount;
      }
      keys.add(item.key);
    }
    const after = before + (item.track ?? 0);
    if (item.track !== null) used.set(item.feature, after);
    answers.push({ outcome: 'allowed', used: after, applied: item.track !== null, held: item.key !== null });
  }
  return { answers, used, grants };
}

describe('gate_pass_many decides a batch exactly like gate_pass one gate after the other', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-09-01T12:00:00Z');
  const periodStart = new Date('2026-09-01T00:00:00Z');

  beforeAll(async () => {
    testApp = await createTestApp({ clock });
  });
  afterAll(async () => testApp.close());

  const itemArbitrary = fc.record({
    feature: fc.constantFrom('f1' as const, 'f2' as const),
    track: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
    limit: fc.option(fc.integer({ min: 0, max: 9 }), { nil: null }),
    key: fc.option(fc.constantFrom('k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6'), { nil: null }),
    amount: fc.integer({ min: 1, max: 6 }),
  });
  const grantArbitrary = fc.record({
    remaining: fc.integer({ min: 0, max: 8 }),
    expiresInMinutes: fc.option(fc.integer({ min: -2, max: 3 }), { nil: null }),
  });

  it('for random batches on random grants', async () => {
    const database = testApp.deps.database;
    await fc.assert(
      fc.asyncProperty(fc.array(itemArbitrary, { minLength: 1, maxLength: 14 }), fc.array(grantArbitrary, { maxLength: 4 }), async (items, grantSpecs) => {
        const account = await newAccount(database, clock);
        const now = clock.now();
        const grants: AllocatableGrant[] = grantSpecs.map((spec, index) => ({
          id: newId('grant'),
          remaining: spec.remaining,
          expiresAt: spec.expiresInMinutes === null ? null : new Date(now.getTime() + spec.expiresInMinutes * 60_000),
          createdAt: new Date(now.getTime() - index * 60_000),
        }));
        await asSystem(database, async (tx) => {
          for (const grant of grants) {
            await tx.query(
              `INSERT INTO credit_grants (id, account_id, source, amount, remaining, expires_at, created_at) VALUES ($1, $2, 'admin', $3, $4, $5, $6)`,
              [grant.id, account, Math.max(grant.remaining, 1), grant.remaining, grant.expiresAt, grant.createdAt],
            );
          }
        });
        const expected = model(items, grants, now);

        const { rows } = await database.query<{ position_in_batch: number; outcome: string; applied: boolean | null; used: number | null; id: string | null }>(
          `SELECT position_in_batch, outcome, applied, used, id
           FROM gate_pass_many($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6, $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13)`,
          [
            items.map(() => account),
            items.map((item) => item.feature),
            items.map(() => periodStart),
            items.map((item) => item.track),
            items.map((item) => item.limit),
            now,
            items.map((item) => (item.key === null ? null : newId('reservation'))),
            items.map((item) => (item.key === null ? null : `job-${item.key}`)),
            items.map((item) => (item.key === null ? null : 'render')),
            items.map((item) => (item.key === null ? null : item.amount)),
            items.map((item) => item.key),
            items.map((item) => (item.key === null ? null : `hash-${item.key}`)),
            new Date(now.getTime() + 15 * 60_000),
          ],
        );
        const answers = [...rows]
          .sort((a, b) => a.position_in_batch - b.position_in_batch)
          .map((row) => ({ outcome: row.outcome, used: row.used, applied: row.applied, held: row.id !== null }));
        expect(answers).toEqual(expected.answers);

        await asSystem(database, async (tx) => {
          const counters = await tx.query<{ feature: string; used: number }>('SELECT feature, used FROM usage_counters WHERE account_id = $1', [account]);
          // A counter row exists for every feature some gate of the batch tracks (created at 0 when missing, as entitlement_track_many does).
          const tracked = [...new Set(items.filter((item) => item.track !== null).map((item) => item.feature))];
          expect(Object.fromEntries(counters.rows.map((row) => [row.feature, row.used]))).toEqual(Object.fromEntries(tracked.map((feature) => [feature, expected.used.get(feature) ?? 0])));
          const remaining = await tx.query<{ id: string; remaining: number }>('SELECT id, remaining FROM credit_grants WHERE account_id = $1', [account]);
          expect(Object.fromEntries(remaining.rows.map((row) => [row.id, row.remaining]))).toEqual(Object.fromEntries(expected.grants.map((grant) => [grant.id, grant.remaining])));
          const held = await tx.query<{ sum: number }>(`SELECT coalesce(sum(amount), 0)::bigint AS sum FROM credit_reservations WHERE account_id = $1 AND status = 'held'`, [account]);
          const holds = await tx.query<{ sum: number }>(`SELECT coalesce(-sum(amount), 0)::bigint AS sum FROM credit_ledger WHERE account_id = $1 AND kind = 'hold'`, [account]);
          const taken = grants.reduce((sum, grant) => sum + grant.remaining, 0) - expected.grants.reduce((sum, grant) => sum + grant.remaining, 0);
          expect(held.rows[0]?.sum).toBe(taken);
          expect(holds.rows[0]?.sum).toBe(taken);
        });
      }),
      { numRuns: 80 },
    );
  }, 90_000);
});
