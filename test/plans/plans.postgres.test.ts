import { afterAll, beforeAll, expect, it } from 'vitest';
import { asSystem } from '../../src/platform/database/access.js';
import { seedCatalogue } from '../../src/modules/plans/seed.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { createPlansApp, type PlansTestApp } from './helpers.js';

/**
 * TIER-5 across instances: a plan or price change made on one instance reaches the cached
 * catalogue of another within 1 s, because migration 0006's triggers announce every change
 * on bulwark_plans and each instance's PlanCatalogue listens.
 */
describeWithPostgres('plan catalogue across instances (PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let first: PlansTestApp;
  let second: PlansTestApp;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    first = await createPlansApp({ databaseUrl: scratch.url });
    second = await createPlansApp({ databaseUrl: scratch.url });
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await scratch?.drop();
  });

  it('seeds once even when two instances seed', async () => {
    const again = await seedCatalogue(second.database, second.clock);
    expect(again.inserted).toEqual([]);
    const { rows } = await second.database.query<{ count: number }>('SELECT count(*)::int AS count FROM plans');
    expect(rows[0]?.count).toBe(4);
  });

  it('shows a plan change made through instance 1 in instance 2 within 1 s, and a hand-made change too', async () => {
    // Wait for both listeners, then warm instance 2's cache.
    await expect.poll(() => second.catalogue.cacheLive && first.catalogue.cacheLive, { timeout: 5_000 }).toBe(true);
    expect((await second.catalogue.planFor('PRO')).features.team_members).toEqual({ kind: 'static', limit: 10 });
    const loads = second.catalogue.loads;
    await second.catalogue.planFor('PRO');
    expect(second.catalogue.loads).toBe(loads);

    const response = await first.testApp.app.inject({
      method: 'PUT',
      url: '/api/admin/plans/PRO',
      headers: first.admin,
      payload: { features: { team_members: { kind: 'static', limit: 15 } } },
    });
    expect(response.statusCode, response.body).toBe(200);
    await expect
      .poll(async () => (await second.catalogue.planFor('PRO')).features.team_members, { timeout: 1_000, interval: 50 })
      .toEqual({ kind: 'static', limit: 15 });
    await expect
      .poll(async () => (await second.testApp.app.inject({ method: 'GET', url: '/api/pricing' })).json().plans[2].features, {
        timeout: 1_000,
        interval: 50,
      })
      .toEqual({ team_members: { kind: 'static', limit: 15 } });

    // An operator's SQL is announced by the trigger as well, and so are job prices.
    await asSystem(first.database, (tx) => tx.query(`UPDATE plans SET requests_per_minute = 1234 WHERE id = 'STARTER'`));
    await asSystem(first.database, (tx) => tx.query(`UPDATE credit_job_prices SET credits_per_unit = 9 WHERE job_type = 'book'`));
    await expect.poll(async () => (await second.catalogue.planFor('STARTER')).requestsPerMinute, { timeout: 1_000, interval: 50 }).toBe(1234);
    await expect.poll(async () => (await second.catalogue.jobPrice('book'))?.creditsPerUnit, { timeout: 1_000, interval: 50 }).toBe(9);
  });
});
