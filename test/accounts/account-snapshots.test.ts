import { afterAll, beforeAll, expect, it } from 'vitest';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * ACC-4 with cached account snapshots: a suspension made on one instance refuses the
 * account's key on another instance that had the account cached, within 1 s (the same
 * bound as key revocation), because the database announces every account change.
 */
describeWithPostgres('account snapshots across instances', () => {
  let scratch: ScratchDatabase;
  let first: TestApp;
  let second: TestApp;
  const limits = JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } });

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    first = await createTestApp({ env: { DATABASE_URL: scratch.url, RATE_LIMITS: limits } });
    // Both instances must share the pepper to verify each other's keys.
    second = await createTestApp({ env: { DATABASE_URL: scratch.url, RATE_LIMITS: limits, API_KEY_PEPPER: first.config.secrets.apiKeyPepper ?? '', ADMIN_API_TOKEN: first.config.secrets.adminApiToken ?? '' } });
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await scratch?.drop();
  });

  it('refuses a suspended account on the other instance within 1 s, and serves it again once reactivated', async () => {
    const admin = { authorization: `Bearer ${first.config.secrets.adminApiToken}` };
    const created = await first.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'Cached Co' } });
    expect(created.statusCode, created.body).toBe(201);
    const accountId = created.json().account.id as string;
    const issued = await first.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'k' } });
    expect(issued.statusCode, issued.body).toBe(201);
    const key = { 'x-api-key': issued.json().secret as string };

    // Warm both instances' caches.
    await expect.poll(async () => (await second.app.inject({ method: 'GET', url: '/api/account', headers: key })).statusCode).toBe(200);
    expect((await first.app.inject({ method: 'GET', url: '/api/account', headers: key })).json().account.status).toBe('active');

    const suspended = await first.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${accountId}`, headers: admin, payload: { status: 'suspended' } });
    expect(suspended.statusCode, suspended.body).toBe(200);
    await expect.poll(async () => (await second.app.inject({ method: 'GET', url: '/api/account', headers: key })).statusCode, { timeout: 1_000, interval: 50 }).toBe(403);

    // A change made directly in the database (say, by a migration or an operator) is announced too.
    await asSystem(first.deps.database, (tx) => tx.query(`UPDATE accounts SET status = 'active', plan = 'PRO' WHERE id = $1`, [accountId]));
    await expect.poll(async () => (await second.app.inject({ method: 'GET', url: '/api/account', headers: key })).json().account?.plan, { timeout: 1_000, interval: 50 }).toBe('PRO');
  });

  it('serves the cached current subscription and shows a subscription change on the other instance within 1 s', async () => {
    const admin = { authorization: `Bearer ${first.config.secrets.adminApiToken}` };
    const created = await first.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'Subscribed Co' } });
    const accountId = created.json().account.id as string;
    const issued = await first.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'k' } });
    const key = { 'x-api-key': issued.json().secret as string };
    const subscriptionOnSecond = async () => (await second.app.inject({ method: 'GET', url: '/api/account', headers: key })).json().subscription;
    await expect.poll(subscriptionOnSecond).toBeNull();

    // A subscription stored the way the webhook handlers store it, on the first instance's database connection.
    const now = new Date();
    await asSystem(first.deps.database, (tx) =>
      tx.query(
        `INSERT INTO subscriptions (id, account_id, stripe_customer_id, status, plan_id, cancel_at_period_end, stripe_created_at, synced_at, created_at, updated_at)
         VALUES ('sub_cachetest', $1, 'cus_cachetest', 'active', 'PRO', false, $2, $2, $2, $2)`,
        [accountId, now],
      ),
    );
    await expect.poll(async () => (await subscriptionOnSecond())?.status, { timeout: 1_000, interval: 50 }).toBe('active');
    await asSystem(first.deps.database, (tx) => tx.query(`UPDATE subscriptions SET cancel_at_period_end = true WHERE id = 'sub_cachetest'`));
    await expect.poll(async () => (await subscriptionOnSecond())?.cancelAtPeriodEnd, { timeout: 1_000, interval: 50 }).toBe(true);
  });
  it('answers checks from the cached account and catalogue without a promise, and still follows plan, catalogue and status changes on the other instance within 1 s', async () => {
    const admin = { authorization: `Bearer ${first.config.secrets.adminApiToken}` };
    const created = await first.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'Checked Co' } });
    const accountId = created.json().account.id as string;
    const issued = await first.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'k' } });
    const key = { 'x-api-key': issued.json().secret as string };
    const check = () => second.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: key, payload: { feature: 'api_calls_per_day' } });
    const limitOnSecond = async () => (await check()).json().limit as number | null;

    // Warm instance 2: the account snapshot and the catalogue are then both cached, so the
    // check and the machine rate limit take the plan without going to the database.
    await expect.poll(async () => (await check()).statusCode).toBe(200);
    await check();
    expect(second.deps.cachedPlanOf(accountId)?.id).toBe('FREE');
    const limitIn = async (planId: string) => {
      const feature = (await first.deps.plans.planFor(planId)).features.api_calls_per_day;
      return feature && 'limit' in feature ? feature.limit : undefined;
    };
    const freeLimit = await limitIn('FREE');
    expect(await limitOnSecond()).toBe(freeLimit);

    // The account moves to PRO on instance 1.
    const moved = await first.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${accountId}`, headers: admin, payload: { plan: 'PRO' } });
    expect(moved.statusCode, moved.body).toBe(200);
    const proLimit = await limitIn('PRO');
    expect(proLimit).not.toBe(freeLimit);
    await expect.poll(limitOnSecond, { timeout: 1_000, interval: 50 }).toBe(proLimit);
    expect(second.deps.cachedPlanOf(accountId)?.id).toBe('PRO');

    // The PRO plan's limit is edited on instance 1.
    const edited = await first.app.inject({
      method: 'PUT',
      url: '/api/admin/plans/PRO',
      headers: admin,
      payload: { features: { api_calls_per_day: { kind: 'metered', period: 'day', limit: 777 } } },
    });
    expect(edited.statusCode, edited.body).toBe(200);
    await expect.poll(limitOnSecond, { timeout: 1_000, interval: 50 }).toBe(777);

    // And the account is suspended on instance 1.
    const suspended = await first.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${accountId}`, headers: admin, payload: { status: 'suspended' } });
    expect(suspended.statusCode, suspended.body).toBe(200);
    await expect.poll(async () => (await check()).statusCode, { timeout: 1_000, interval: 50 }).toBe(403);
    // Refused from the cache too: the snapshot read after the announcement holds the new status.
    expect(second.deps.accounts.peek(accountId)?.status).toBe('suspended');
    expect((await check()).statusCode).toBe(403);
  });
});
