import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/modules/audit/audit.verify.js';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import type { Database } from '../../src/platform/database/database.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, openPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { startSandboxHarness, type SandboxHarness } from '../stripe/helpers.js';
import { bearer, financialRecordsOf, GENEROUS_LIMITS, givePaymentsAndRefund, giveStripeCustomer, logIn, PASSWORD, scanTextColumns, signUp, useTheAccount } from './helpers.js';

/**
 * GDPR-2's Must-show on real PostgreSQL with two instances, as production runs: the
 * deletion is asked of instance 1; instance 2, which had the account's key cached, refuses
 * it within 1 s through the LISTEN/NOTIFY feeds.
 */
describeWithPostgres('account deletion across two instances (GDPR-2, PostgreSQL)', () => {
  let scratch: ScratchDatabase;
  let harness: SandboxHarness;
  let first: TestApp;
  let second: TestApp;
  let owner: Database;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    harness = await startSandboxHarness();
    // Both instances share the deployment's secrets (generated at run time).
    const shared = {
      DATABASE_URL: scratch.url,
      STRIPE_API_URL: harness.sandbox.url,
      RATE_LIMITS: JSON.stringify(GENEROUS_LIMITS),
      JWT_SECRET: randomBytes(32).toString('hex'),
      COOKIE_SECRET: randomBytes(32).toString('hex'),
      API_KEY_PEPPER: randomBytes(32).toString('hex'),
      AUDIT_PSEUDONYM_KEY: randomBytes(32).toString('hex'),
      ADMIN_API_TOKEN: randomBytes(32).toString('hex'),
    };
    first = await createTestApp({ env: shared });
    second = await createTestApp({ env: shared });
    owner = openPostgres(scratch.url);
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await owner?.close();
    await harness?.close();
    await scratch?.drop();
  });

  it('login 401, old token 401, old API key 401 on the second instance; the Stripe customer gone; no email or name in any table; chain and ledger verify; payments and refunds kept', async () => {
    const ada = await signUp(first.app, { email: 'ada.pg@example.com', name: 'Ada Postgres', ip: '203.0.113.90' });
    const { apiKey } = await useTheAccount(first.app, ada);
    const stripe = await giveStripeCustomer(harness, first.deps.database, ada);
    await givePaymentsAndRefund(first.deps.database, ada, stripe);
    const moneyBefore = await financialRecordsOf(owner, ada.accountId);
    expect(moneyBefore.totals).toEqual({ paid: '2500', refunded: '500', refunds: '500' });
    // Instance 2 knows the key and the account (its caches are live once its feeds listen).
    await expect.poll(async () => (await second.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': apiKey } })).statusCode, { timeout: 10_000 }).toBe(200);
    await expect.poll(() => second.deps.apiKeyModule.verifier.cacheSize, { timeout: 10_000 }).toBeGreaterThan(0);
    expect((await second.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(ada) })).statusCode).toBe(200);
    const needles = [ada.email, ada.name];
    expect((await scanTextColumns(owner, needles)).length).toBeGreaterThan(0);

    const deleted = await first.app.inject({ method: 'POST', url: '/api/account/delete', remoteAddress: ada.ip, headers: bearer(ada), payload: { password: PASSWORD } });
    expect(deleted.statusCode, deleted.body).toBe(202);
    expect(deleted.json().status).toBe('deleted');

    await expect
      .poll(async () => (await second.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': apiKey } })).statusCode, { timeout: 1_000, interval: 50 })
      .toBe(401);
    expect((await second.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(ada) })).statusCode).toBe(401);
    expect((await first.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': apiKey } })).statusCode).toBe(401);

    // The deletion email is queued (MAIL-1) with its address, which its delivery clears once sent.
    await second.deps.notifications.deliverDue();
    // Every text, varchar and jsonb column of every table, read as the owner (no row-level security in the way).
    expect(await scanTextColumns(owner, needles)).toEqual([]);
    expect((await harness.gateway.retrieveSubscription(stripe.subscriptionId)).status).toBe('canceled');
    await expect(harness.gateway.retrieveCustomer(stripe.customerId)).rejects.toMatchObject({ code: 'resource_missing' });
    expect(await verifyAuditChain(owner)).toMatchObject({ valid: true });
    expect(await verifyCreditLedger(owner)).toMatchObject({ valid: true, mismatches: [] });
    const kept = await owner.query<{ ledger: number; grants: number }>(
      'SELECT (SELECT count(*) FROM credit_ledger WHERE account_id = $1)::int AS ledger, (SELECT count(*) FROM credit_grants WHERE account_id = $1)::int AS grants',
      [ada.accountId],
    );
    expect(kept.rows[0]).toEqual({ ledger: 3, grants: 1 });
    // Her payments and the refund, with their amounts, as they were.
    expect(await financialRecordsOf(owner, ada.accountId)).toEqual(moneyBefore);

    // Logged in on the second instance: refused too (after the scan, since a failed login records the typed email).
    expect((await logIn(second.app, ada)).statusCode).toBe(401);
  });
});
