import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertAccount } from '../../src/modules/accounts/accounts.repository.js';
import { EntitlementsService } from '../../src/modules/entitlements/entitlements.service.js';
import type { Plan, PlanCataloguePort } from '../../src/modules/plans/plan-features.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { newId } from '../../src/platform/ids.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/** A fixed catalogue for these tests; the catalogue module has its own. */
const plans: Record<string, Plan> = {
  FREE: {
    id: 'FREE',
    name: 'Free',
    priceCents: 0,
    currency: 'usd',
    interval: 'month',
    requestsPerMinute: 600,
    updatedAt: '2026-01-01T00:00:00.000Z',
    features: {
      api_calls_per_day: { kind: 'metered', limit: 10, period: 'day' },
      monthly_exports: { kind: 'metered', limit: 2, period: 'month' },
      private_repos: { kind: 'static', limit: 3 },
      concurrent_builds: { kind: 'concurrency', limit: 3 },
      priority_support: { kind: 'boolean', enabled: false },
      sso: { kind: 'boolean', enabled: true },
      unlimited_things: { kind: 'metered', limit: null, period: 'day' },
    },
  },
};
const catalogue: PlanCataloguePort = { planFor: async (planId) => plans[planId] ?? (plans.FREE as Plan) };

async function newAccount(database: Database, clock: ManualClock, plan = 'FREE'): Promise<string> {
  const id = newId('account');
  await asSystem(database, (tx) => insertAccount(tx, { id, name: null, plan, at: clock.now() }));
  return id;
}

function service(database: Database, clock: ManualClock): EntitlementsService {
  return new EntitlementsService({
    database,
    clock,
    catalogue,
    planIdOf: async (accountId) => {
      const { rows } = await asSystem(database, (tx) => tx.query<{ plan: string }>('SELECT plan FROM accounts WHERE id = $1', [accountId]));
      return rows[0]?.plan ?? 'FREE';
    },
  });
}

describe('entitlements on the embedded database (TIER-2, TIER-3, TIER-4)', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-03-31T23:59:00Z');
  let entitlements: EntitlementsService;

  beforeAll(async () => {
    testApp = await createTestApp({ clock });
    entitlements = service(testApp.deps.database, clock);
  });
  afterAll(async () => testApp.close());

  it('answers boolean, static, metered and concurrency features, and denies an unknown feature', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    expect(await entitlements.check(account, { feature: 'sso' })).toMatchObject({ allowed: true, kind: 'boolean' });
    expect(await entitlements.check(account, { feature: 'priority_support' })).toMatchObject({ allowed: false, kind: 'boolean' });
    expect(await entitlements.check(account, { feature: 'private_repos' })).toEqual({ allowed: true, feature: 'private_repos', kind: 'static', limit: 3, used: 0, remaining: 3 });
    expect(await entitlements.check(account, { feature: 'api_calls_per_day' })).toEqual({
      allowed: true,
      feature: 'api_calls_per_day',
      kind: 'metered',
      limit: 10,
      used: 0,
      remaining: 10,
      resetsAt: '2026-04-01T00:00:00.000Z',
    });
    expect(await entitlements.check(account, { feature: 'concurrent_builds' })).toMatchObject({ allowed: true, kind: 'concurrency', used: 0, limit: 3 });
    expect(await entitlements.check(account, { feature: 'teleportation' })).toMatchObject({ allowed: false, kind: null });
  });

  it('tracks only when allowed, reports used and remaining after recording, and never goes past the limit', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    expect(await entitlements.check(account, { feature: 'api_calls_per_day', track: 4 })).toMatchObject({ allowed: true, used: 4, remaining: 6 });
    expect(await entitlements.check(account, { feature: 'api_calls_per_day', track: 7 })).toMatchObject({ allowed: false, used: 4, remaining: 6 });
    expect(await entitlements.check(account, { feature: 'api_calls_per_day', track: 6 })).toMatchObject({ allowed: true, used: 10, remaining: 0 });
    expect(await entitlements.check(account, { feature: 'api_calls_per_day' })).toMatchObject({ allowed: false, used: 10 });
    expect(await entitlements.check(account, { feature: 'api_calls_per_day', track: 11 })).toMatchObject({ allowed: false, used: 10 });
    expect(await entitlements.check(account, { feature: 'unlimited_things', track: 1_000_000 })).toMatchObject({ allowed: true, limit: null, remaining: null });
  });

  it('resets metered counters at the UTC period boundary; static limits never reset', async () => {
    const localClock = new ManualClock('2026-05-31T23:00:00Z');
    const local = service(testApp.deps.database, localClock);
    const account = await newAccount(testApp.deps.database, localClock);
    await local.check(account, { feature: 'api_calls_per_day', track: 10 });
    await local.check(account, { feature: 'monthly_exports', track: 2 });
    await local.check(account, { feature: 'private_repos', track: 3 });
    localClock.set('2026-06-01T00:00:00Z');
    expect(await local.check(account, { feature: 'api_calls_per_day' })).toMatchObject({ allowed: true, used: 0, resetsAt: '2026-06-02T00:00:00.000Z' });
    expect(await local.check(account, { feature: 'monthly_exports' })).toMatchObject({ allowed: true, used: 0, resetsAt: '2026-07-01T00:00:00.000Z' });
    expect(await local.check(account, { feature: 'private_repos' })).toMatchObject({ allowed: false, used: 3 });
    localClock.set('2027-06-01T00:00:00Z');
    expect(await local.check(account, { feature: 'private_repos', track: 1 })).toMatchObject({ allowed: false, used: 3 });
  });

  it('counts a retried track with the same idempotency key once and returns the first answer; another body is 422', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const first = await entitlements.check(account, { feature: 'api_calls_per_day', track: 3, idempotencyKey: 'job-1' });
    const retry = await entitlements.check(account, { feature: 'api_calls_per_day', track: 3, idempotencyKey: 'job-1' });
    expect(retry).toEqual(first);
    expect(await entitlements.check(account, { feature: 'api_calls_per_day' })).toMatchObject({ used: 3 });
    await expect(entitlements.check(account, { feature: 'api_calls_per_day', track: 4, idempotencyKey: 'job-1' })).rejects.toMatchObject({
      code: 'IDEMPOTENCY_KEY_REUSED',
      statusCode: 422,
    });
  });

  it('gives out at most the limit of leases, frees them on release and on expiry, and keeps them per account', async () => {
    const leaseClock = new ManualClock('2026-07-01T00:00:00Z');
    const local = service(testApp.deps.database, leaseClock);
    const account = await newAccount(testApp.deps.database, leaseClock);
    const other = await newAccount(testApp.deps.database, leaseClock);
    const leases = [];
    for (let index = 0; index < 3; index += 1) leases.push(await local.acquireLease(account, { feature: 'concurrent_builds', ttlSeconds: 60 }));
    expect(leases.every((result) => result.lease?.id.startsWith('lse_'))).toBe(true);
    expect(await local.acquireLease(account, { feature: 'concurrent_builds' })).toEqual({
      denied: { allowed: false, feature: 'concurrent_builds', kind: 'concurrency', limit: 3, used: 3, remaining: 0 },
    });
    expect((await local.acquireLease(other, { feature: 'concurrent_builds' })).lease).toBeDefined();
    await local.releaseLease(account, leases[0]?.lease?.id ?? '');
    expect((await local.acquireLease(account, { feature: 'concurrent_builds', ttlSeconds: 600 })).lease).toBeDefined();
    await expect(local.releaseLease(other, leases[1]?.lease?.id ?? '')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    leaseClock.advance(61_000);
    // The two 60 s leases expired without a release call.
    expect(await local.check(account, { feature: 'concurrent_builds' })).toMatchObject({ used: 1, remaining: 2, allowed: true });
    expect((await local.acquireLease(account, { feature: 'api_calls_per_day' })).denied).toMatchObject({ allowed: false });
  });
});

describeWithPostgres('entitlements under concurrency on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let testApp: TestApp;
  const clock = new ManualClock('2026-08-01T12:00:00Z');
  let entitlements: EntitlementsService;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    testApp = await createTestApp({ clock, env: { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '20' } });
    entitlements = service(testApp.deps.database, clock);
  });
  afterAll(async () => {
    await testApp?.close();
    await scratch?.drop();
  });

  it('lets exactly 10 of 50 concurrent check+track calls through when 10 units remain', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const answers = await Promise.all(Array.from({ length: 50 }, () => entitlements.check(account, { feature: 'api_calls_per_day', track: 1 })));
    expect(answers.filter((answer) => answer.allowed)).toHaveLength(10);
    expect(Math.max(...answers.map((answer) => answer.used))).toBe(10);
    expect(await entitlements.check(account, { feature: 'api_calls_per_day' })).toMatchObject({ used: 10, remaining: 0, allowed: false });
  });

  it('counts concurrent retries with one idempotency key once', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const answers = await Promise.allSettled(
      Array.from({ length: 10 }, () => entitlements.check(account, { feature: 'api_calls_per_day', track: 2, idempotencyKey: 'same' })),
    );
    const fulfilled = answers.flatMap((answer) => (answer.status === 'fulfilled' ? [answer.value] : []));
    expect(fulfilled.length).toBeGreaterThan(0);
    expect(new Set(fulfilled.map((answer) => answer.used))).toEqual(new Set([2]));
    expect(await entitlements.check(account, { feature: 'api_calls_per_day' })).toMatchObject({ used: 2 });
  });

  it('gives exactly 3 of 5 concurrent lease acquisitions with a limit of 3', async () => {
    const account = await newAccount(testApp.deps.database, clock);
    const results = await Promise.all(Array.from({ length: 5 }, () => entitlements.acquireLease(account, { feature: 'concurrent_builds', ttlSeconds: 30 })));
    expect(results.filter((result) => result.lease)).toHaveLength(3);
    expect(results.filter((result) => result.denied)).toHaveLength(2);
    clock.advance(31_000);
    const again = await Promise.all(Array.from({ length: 5 }, () => entitlements.acquireLease(account, { feature: 'concurrent_builds', ttlSeconds: 30 })));
    expect(again.filter((result) => result.lease)).toHaveLength(3);
  });
});

describeWithPostgres('batched checks and tracks across two instances on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  const instances: TestApp[] = [];
  const services: EntitlementsService[] = [];
  const clock = new ManualClock('2026-08-02T12:00:00Z');

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    for (let index = 0; index < 2; index += 1) {
      const instance = await createTestApp({ clock, env: { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '10' } });
      instances.push(instance);
      services.push(service(instance.deps.database, clock));
    }
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await scratch?.drop();
  });

  const database = () => (instances[0] as TestApp).deps.database;

  async function counter(accountId: string, feature: string): Promise<number> {
    const { rows } = await asSystem(database(), (tx) =>
      tx.query<{ used: number }>('SELECT coalesce(sum(used), 0)::bigint AS used FROM usage_counters WHERE account_id = $1 AND feature = $2', [accountId, feature]),
    );
    return rows[0]?.used ?? 0;
  }

  it('keeps every account exact when many accounts track and read at once on both instances', async () => {
    const accounts = await Promise.all(Array.from({ length: 5 }, () => newAccount(database(), clock)));
    // 60 tracked checks of 1 per account (limit 10 a day) interleaved with 30 reads, all at once, half on each instance.
    const calls = accounts.flatMap((account) => [
      ...Array.from({ length: 60 }, (_, index) => ({ account, track: 1 as number | undefined, index })),
      ...Array.from({ length: 30 }, (_, index) => ({ account, track: undefined, index })),
    ]);
    const answers = await Promise.all(
      calls.map((call, index) =>
        (services[index % 2] as EntitlementsService).check(call.account, { feature: 'api_calls_per_day', ...(call.track ? { track: call.track } : {}) }).then((answer) => ({ call, answer })),
      ),
    );
    for (const account of accounts) {
      const own = answers.filter((entry) => entry.call.account === account);
      const tracked = own.filter((entry) => entry.call.track !== undefined);
      expect(tracked.filter((entry) => entry.answer.allowed)).toHaveLength(10);
      expect(own.every((entry) => entry.answer.used <= 10)).toBe(true);
      // Each allowed track saw a distinct total: 1..10, every unit given out once.
      expect(tracked.filter((entry) => entry.answer.allowed).map((entry) => entry.answer.used).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(await counter(account, 'api_calls_per_day')).toBe(10);
    }
  });

  it('never lets mixed track sizes pass the limit, and the counter equals what was answered as recorded', async () => {
    const account = await newAccount(database(), clock);
    const sizes = Array.from({ length: 80 }, (_, index) => 1 + (index % 3));
    const answers = await Promise.all(sizes.map((track, index) => (services[index % 2] as EntitlementsService).check(account, { feature: 'private_repos', track })));
    const recorded = answers.reduce((sum, answer, index) => sum + (answer.allowed ? (sizes[index] ?? 0) : 0), 0);
    expect(recorded).toBeLessThanOrEqual(3);
    expect(await counter(account, 'private_repos')).toBe(recorded);
    expect(answers.every((answer) => answer.used <= 3)).toBe(true);
  });

  it('fails only the bad request of a batch: a track for an account that does not exist rejects, its neighbours are counted', async () => {
    const account = await newAccount(database(), clock);
    const entitlements = services[0] as EntitlementsService;
    // Submitted in the same turn, so they travel in one batch.
    const outcomes = await Promise.allSettled([
      entitlements.check(account, { feature: 'api_calls_per_day', track: 1 }),
      entitlements.check('acct_does_not_exist', { feature: 'api_calls_per_day', track: 1 }),
      entitlements.check(account, { feature: 'api_calls_per_day', track: 2 }),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(await counter(account, 'api_calls_per_day')).toBe(3);
  });
});
