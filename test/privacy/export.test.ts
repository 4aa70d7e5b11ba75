import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { startSandboxHarness, type SandboxHarness } from '../stripe/helpers.js';
import { bearer, GENEROUS_LIMITS, giveStripeCustomer, logIn, signUp, useTheAccount, type Person } from './helpers.js';

/** GDPR-1: GET /api/account/export, on the embedded database with a Stripe sandbox. */
describe('account export (GDPR-1)', () => {
  let harness: SandboxHarness;
  let testApp: TestApp;
  let ada: Person;
  let bob: Person;
  let adaKey: { apiKey: string; keyId: string; prefix: string };
  let bobKey: { apiKey: string; keyId: string; prefix: string };
  let adaStripe: { customerId: string; subscriptionId: string; chargeId: string };
  let bobStripe: { customerId: string; subscriptionId: string };

  beforeAll(async () => {
    harness = await startSandboxHarness();
    testApp = await createTestApp({
      env: { STRIPE_API_URL: harness.sandbox.url, STRIPE_MAX_NETWORK_RETRIES: '0', RATE_LIMITS: JSON.stringify(GENEROUS_LIMITS) },
    });
    const { app } = testApp;
    // A failed login for Ada's email before her account existed: an entry about her that names no account.
    expect((await logIn(app, { email: 'ada@example.com', ip: '198.51.100.9' })).statusCode).toBe(401);
    ada = await signUp(app, { email: 'ada@example.com', name: 'Ada Lovelace', ip: '203.0.113.10' });
    bob = await signUp(app, { email: 'bob@example.org', name: 'Bob Babbage', ip: '203.0.113.20' });
    adaKey = await useTheAccount(app, ada);
    bobKey = await useTheAccount(app, bob);
    adaStripe = await giveStripeCustomer(harness, testApp.deps.database, ada);
    bobStripe = await giveStripeCustomer(harness, testApp.deps.database, bob);
  });
  afterAll(async () => {
    await testApp?.close();
    await harness?.close();
  });

  function exportOf(person: Person, headers: Record<string, string> = bearer(person)) {
    return testApp.app.inject({ method: 'GET', url: '/api/account/export', remoteAddress: person.ip, headers });
  }

  it("contains the user's data and nothing of another account; its Content-Disposition names the file", async () => {
    // What the webhook intake would have recorded locally for each of them (their payments,
    // their subscription as Stripe last told it, the webhook events it stored), and what
    // sign-in would have left: a lease, a password reset, an identity at a provider.
    const records = [
      { tag: 'ada', who: ada, stripe: adaStripe, cents: 1000, payloadHash: 'a'.repeat(64) },
      { tag: 'bob', who: bob, stripe: bobStripe, cents: 2000, payloadHash: 'b'.repeat(64) },
    ];
    await asSystem(testApp.deps.database, async (tx) => {
      for (const { tag, who, stripe, cents, payloadHash } of records) {
        await tx.query(
          `INSERT INTO payments (id, account_id, kind, stripe_payment_intent_id, credit_pack_id, amount_cents, currency, status, created_at, updated_at)
           VALUES ($1, $2, 'credit_pack', $3, 'pack_100', $4, 'usd', 'succeeded', now(), now())`,
          [`pay_${tag}_export`, who.accountId, `pi_pay_${tag}_export`, cents],
        );
        // An operator's partial refund of that payment, its reason naming the person.
        await tx.query(
          `INSERT INTO refunds (id, account_id, payment_id, idempotency_key, request_hash, requested_amount_cents, amount_cents, currency, reason,
                                status, stripe_refund_id, actor_type, actor_id, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, 300, 300, 'usd', $6, 'succeeded', $7, 'admin', 'operator-export', now(), now())`,
          [`rfd_${tag}_export`, who.accountId, `pay_${tag}_export`, `key:refund-key-of-${tag}`, payloadHash.replace(/./g, 'd'), `goodwill for ${who.name}`, `re_${tag}_export`],
        );
        await tx.query(
          `INSERT INTO subscriptions (id, account_id, stripe_customer_id, status, plan_id, stripe_price_id, current_period_start, current_period_end,
                                      stripe_created_at, synced_at, created_at, updated_at)
           VALUES ($1, $2, $3, 'active', 'STARTER', $4, now(), now() + interval '30 days', now(), now(), now(), now())`,
          [stripe.subscriptionId, who.accountId, stripe.customerId, `price_${tag}_export`],
        );
        await tx.query(
          `INSERT INTO stripe_events (id, type, event_created_at, livemode, account_id, payload_sha256, status, received_at, updated_at)
           VALUES ($1, 'invoice.paid', now(), false, $2, $3, 'processed', now(), now())`,
          [`evt_${tag}_export`, who.accountId, payloadHash],
        );
        await tx.query(`INSERT INTO leases (id, account_id, feature, created_at, expires_at) VALUES ($1, $2, 'seats', now(), now() + interval '1 hour')`, [
          `lease_${tag}_export`,
          who.accountId,
        ]);
        await tx.query(
          `INSERT INTO password_reset_tokens (id, user_id, account_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, now(), now() + interval '1 hour')`,
          [`prt_${tag}_export`, who.userId, who.accountId, `reset-hash-of-${tag}-${'0'.repeat(40)}`],
        );
        await tx.query(`INSERT INTO external_identities (issuer, subject, user_id, account_id, created_at) VALUES ('https://idp.example.net', $1, $2, $3, now())`, [
          `idp-subject-${tag}`,
          who.userId,
          who.accountId,
        ]);
      }
    });
    const response = await exportOf(ada);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['content-disposition']).toBe(`attachment; filename="account-export-${ada.accountId}.json"`);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.headers['cache-control']).toBe('no-store');
    const document = response.json();
    const text = response.body;

    expect(document.format).toBe('bulwark.account-export.v1');
    expect(document.account).toMatchObject({ id: ada.accountId, name: 'Ada Lovelace', plan: 'FREE', status: 'active', stripeCustomerId: adaStripe.customerId });
    expect(document.user).toMatchObject({ id: ada.userId, email: 'ada@example.com', name: 'Ada Lovelace', role: 'owner', hasPassword: true });
    expect(document.sessions).toHaveLength(1);
    expect(document.apiKeys).toEqual([expect.objectContaining({ id: adaKey.keyId, prefix: adaKey.prefix, label: "Ada Lovelace's laptop" })]);
    expect(document.usage.reports).toEqual([expect.objectContaining({ jobType: 'story', description: 'A story for Ada Lovelace <ada@example.com>' })]);
    expect(document.usage.dailyCounts).toEqual([expect.objectContaining({ events: 1 })]);
    expect(document.credits.grants).toEqual([expect.objectContaining({ source: 'signup_bonus', amount: 10, remaining: 5 })]);
    expect(document.credits.reservations).toEqual([expect.objectContaining({ jobId: `job-${ada.userId}`, amount: 5, status: 'confirmed' })]);
    expect(document.credits.ledger.map((entry: { kind: string }) => entry.kind)).toEqual(['grant', 'hold', 'spend']);
    // Audit entries about her, with the IPs they recorded; also the failed login before she signed up.
    const events = document.audit.map((entry: { event: string }) => entry.event);
    expect(events).toEqual(expect.arrayContaining(['auth.login_failed', 'account.created', 'user.created', 'api_key.issued']));
    expect(document.audit.find((entry: { event: string }) => entry.event === 'account.created')).toMatchObject({ ip: '203.0.113.10', accountId: ada.accountId });
    expect(document.audit.find((entry: { event: string }) => entry.event === 'auth.login_failed')).toMatchObject({ ip: '198.51.100.9', accountId: null, metadata: { email: 'ada@example.com' } });

    // The service's own billing records: her payment, not his.
    expect(document.localBilling.payments).toEqual([expect.objectContaining({ id: 'pay_ada_export', amountCents: 1000, status: 'succeeded' })]);
    expect(document.localBilling.subscriptions).toEqual([
      expect.objectContaining({ id: adaStripe.subscriptionId, status: 'active', planId: 'STARTER', stripePriceId: 'price_ada_export' }),
    ]);
    // Her refund as the service recorded it: not its idempotency key or request hash, not the operator.
    expect(document.localBilling.refunds).toEqual([
      {
        id: 'rfd_ada_export',
        paymentId: 'pay_ada_export',
        amountCents: 300,
        requestedAmountCents: 300,
        currency: 'usd',
        reason: 'goodwill for Ada Lovelace',
        stripeReason: null,
        status: 'succeeded',
        stripeRefundId: 're_ada_export',
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      },
    ]);
    for (const secret of ['refund-key-of-ada', 'd'.repeat(64), 'operator-export']) expect(text).not.toContain(secret);
    // The stored webhook events about her: ids, type and times (the inbox keeps no payload).
    expect(document.localBilling.stripeEvents).toEqual([
      { id: 'evt_ada_export', type: 'invoice.paid', status: 'processed', eventCreatedAt: expect.any(String), receivedAt: expect.any(String) },
    ]);
    expect(document.usage.leases).toEqual([expect.objectContaining({ id: 'lease_ada_export', feature: 'seats', releasedAt: null })]);
    expect(document.passwordResets).toEqual([expect.objectContaining({ id: 'prt_ada_export', usedAt: null })]);
    expect(document.externalIdentities).toEqual([expect.objectContaining({ issuer: 'https://idp.example.net', subject: 'idp-subject-ada' })]);

    // Billing history from Stripe, through the gateway.
    expect(document.billing.customers).toHaveLength(1);
    const billing = document.billing.customers[0];
    expect(billing.customer).toMatchObject({ id: adaStripe.customerId, email: 'ada@example.com', name: 'Ada Lovelace', metadata: { accountId: ada.accountId } });
    expect(billing.subscriptions).toEqual([expect.objectContaining({ id: adaStripe.subscriptionId, status: 'active', items: [expect.objectContaining({ unitAmount: 1500, interval: 'month' })] })]);
    expect(billing.invoices).toEqual([expect.objectContaining({ status: 'paid', amountPaid: 1500, currency: 'usd' })]);
    expect(billing.charges).toEqual([expect.objectContaining({ id: adaStripe.chargeId, amount: 1500, amountRefunded: 500, card: expect.objectContaining({ last4: '4242' }) })]);
    expect(billing.refunds).toEqual([expect.objectContaining({ charge: adaStripe.chargeId, amount: 500 })]);

    // Nothing of Bob's account, and no secret of Ada's.
    const foreign = [bob.email, bob.name, bob.accountId, bob.userId, bob.ip, bobKey.keyId, bobKey.prefix, bobStripe.customerId, `job-${bob.userId}`];
    foreign.push('pay_bob_export', bobStripe.subscriptionId, 'price_bob_export', 'evt_bob_export', 'lease_bob_export', 'prt_bob_export', 'idp-subject-bob', 'rfd_bob_export', 're_bob_export');
    for (const his of foreign) expect(text).not.toContain(his);
    const secrets = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ secret: string }>(
        `SELECT password_hash AS secret FROM users WHERE id = $1
         UNION ALL SELECT token_hash FROM refresh_tokens WHERE user_id = $1
         UNION ALL SELECT secret_hash FROM api_keys WHERE account_id = $2
         UNION ALL SELECT token_hash FROM password_reset_tokens WHERE user_id = $1`,
        [ada.userId, ada.accountId],
      ),
    );
    expect(secrets.rows.length).toBeGreaterThanOrEqual(4);
    for (const { secret } of secrets.rows) expect(text).not.toContain(secret);
    expect(text).not.toContain(adaKey.apiKey);
    expect(text).not.toContain(ada.accessToken);
  });

  it('audits each export, and allows 10 an hour per user', async () => {
    const before = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log WHERE event = 'account.export' AND actor_id = $1`, [bob.userId]),
    );
    expect(before.rows[0]?.n).toBe(0);
    for (let attempt = 1; attempt <= 10; attempt += 1) expect((await exportOf(bob)).statusCode).toBe(200);
    const refused = await exportOf(bob);
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
    const after = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ n: number; ip: string }>(`SELECT count(*)::int AS n, min(ip) AS ip FROM audit_log WHERE event = 'account.export' AND actor_id = $1`, [bob.userId]),
    );
    expect(after.rows[0]).toEqual({ n: 10, ip: bob.ip });
  });

  it('answers 503 and records no export when Stripe cannot be reached', async () => {
    // Two dropped connections: the client retries a closed connection once even without retries.
    const fault = await harness.control('POST', '/_sandbox/faults', { when: 'before', method: 'GET', pathPrefix: '/v1/customers/', count: 2 });
    expect(fault.status).toBe(200);
    const response = await exportOf(ada);
    expect(response.statusCode).toBe(503);
    expect(response.json().error.code).toBe('SERVICE_UNAVAILABLE');
    const exports = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log WHERE event = 'account.export' AND actor_id = $1`, [ada.userId]),
    );
    expect(exports.rows[0]?.n).toBe(1);
    expect(testApp.logs.text).toContain('account export: Stripe did not answer');
  });

  it('refuses anonymous callers (401) and API keys (403)', async () => {
    expect((await testApp.app.inject({ method: 'GET', url: '/api/account/export' })).statusCode).toBe(401);
    expect((await exportOf(ada, { 'x-api-key': adaKey.apiKey })).statusCode).toBe(403);
  });
});
