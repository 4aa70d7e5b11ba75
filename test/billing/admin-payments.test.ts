import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { addCreditPack, listen, newAccount, packSession, testWebhookSecret, WEBHOOK_TEST_RATE_LIMITS } from '../webhooks/helpers.js';

/**
 * GET /api/admin/accounts/:id/payments (UI-1, the dashboard's account page): a credit pack
 * bought for real through the sandbox (its webhooks delivered to the service over HTTP),
 * then the operator's list of the account's payments, its pages, its subscription, and
 * its refusals.
 */

const PACK = { id: 'pack_250', credits: 250, priceCents: 1500, currency: 'usd' };
const secret = testWebhookSecret();
let sandbox: StripeSandbox;
let testApp: TestApp;
let appUrl: string;
let admin: Record<string, string>;
let packPrice: Stripe.Price;

beforeAll(async () => {
  sandbox = await startStripeSandbox({ webhookSecret: secret, webhookRetryDelaysMs: [50, 100, 200] });
  testApp = await createTestApp({
    env: {
      STRIPE_API_URL: sandbox.url,
      STRIPE_SANDBOX_START: 'false',
      STRIPE_WEBHOOK_SECRET: secret,
      STRIPE_MAX_NETWORK_RETRIES: '0',
      RATE_LIMITS: WEBHOOK_TEST_RATE_LIMITS,
    },
  });
  appUrl = await listen(testApp);
  sandbox.setWebhookUrl(`${appUrl}/api/webhooks/stripe`);
  admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken ?? ''}` };
  await addCreditPack(testApp, PACK);
  const product = await testApp.deps.stripe.ensureProduct({ id: `bulwark_pack_${PACK.id}`, name: '250 credits' });
  packPrice = await testApp.deps.stripe.ensurePrice({ lookupKey: `${PACK.id}_usd`, productId: product.id, unitAmount: PACK.priceCents, currency: 'usd' });
});
afterAll(async () => {
  await testApp?.close();
  await sandbox?.close();
});

let sequence = 0;
async function customerAccount(): Promise<{ accountId: string; customerId: string }> {
  sequence += 1;
  const customer = await testApp.deps.stripe.createCustomer(`admin_payments_${sequence}_${Date.now()}`, { email: `payer${sequence}@example.com` });
  return { accountId: await newAccount(testApp.deps.database, testApp.deps.clock, customer.id), customerId: customer.id };
}

/** Buys the pack on the sandbox's hosted page (its pay route, over HTTP) and waits for every webhook. */
async function buyPack(accountId: string, customerId: string): Promise<Stripe.Checkout.Session> {
  sequence += 1;
  const session = await packSession(testApp.deps.stripe, { operationId: `adminpay_${accountId}_${sequence}`, customerId, priceId: packPrice.id, packId: PACK.id, metadataAccount: accountId });
  const paid = await fetch(`${appUrl}/sandbox/checkout/${session.id}/pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ card: '4242 4242 4242 4242' }) });
  expect(paid.status).toBe(200);
  expect(((await paid.json()) as { outcome: string }).outcome).toBe('succeeded');
  expect(await sandbox.delivery.settle(10_000)).toBe(true);
  return session;
}

const list = (accountId: string, query = '', headers: Record<string, string> = admin) =>
  testApp.app.inject({ method: 'GET', url: `/api/admin/accounts/${accountId}/payments${query}`, headers });

/** A payment row as the webhook intake records one (for paging without a purchase each). */
async function insertPayment(accountId: string, id: string, at: string, kind = 'charge'): Promise<void> {
  await asSystem(testApp.deps.database, (tx) =>
    tx.query(
      `INSERT INTO payments (id, account_id, kind, stripe_payment_intent_id, amount_cents, currency, status, created_at, updated_at)
       VALUES ($1, $2, $3, $4, 700, 'eur', 'succeeded', $5, $5)`,
      [id, accountId, kind, `pi_${id}`, at],
    ),
  );
}

describe('GET /api/admin/accounts/:id/payments (UI-1)', () => {
  it("lists a credit pack bought through the sandbox with its amount, credits and Stripe ids; another account's payments are not in it", async () => {
    const buyer = await customerAccount();
    const other = await customerAccount();
    const session = await buyPack(buyer.accountId, buyer.customerId);
    await buyPack(other.accountId, other.customerId);

    const response = await list(buyer.accountId);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const body = response.json();
    expect(body).toEqual({
      items: [
        {
          id: expect.stringMatching(/^pay_/),
          accountId: buyer.accountId,
          kind: 'credit_pack',
          status: 'succeeded',
          amount: 1500,
          currency: 'usd',
          amountRefunded: 0,
          creditPackId: PACK.id,
          creditsGranted: 250,
          creditGrantId: expect.stringMatching(/^grant_/),
          creditsReversed: 0,
          creditsReversalShortfall: 0,
          stripePaymentIntentId: expect.stringMatching(/^pi_/),
          stripeChargeId: expect.stringMatching(/^ch_/),
          stripeCheckoutSessionId: session.id,
          stripeInvoiceId: null,
          stripeSubscriptionId: null,
          disputedAt: null,
          createdAt: expect.any(String),
          updatedAt: expect.any(String),
        },
      ],
      nextCursor: null,
      subscription: null,
    });
    // The grant it names is the purchase's grant of this account.
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ account_id: string; amount: string | number; source: string }>('SELECT account_id, amount, source FROM credit_grants WHERE id = $1', [body.items[0].creditGrantId]),
    );
    expect(rows[0]).toMatchObject({ account_id: buyer.accountId, source: 'purchase' });
    expect(Number(rows[0]?.amount)).toBe(250);
  });

  it('shows a partial refund made through POST /api/admin/refunds: the refunded amount and the credits taken back', async () => {
    const buyer = await customerAccount();
    await buyPack(buyer.accountId, buyer.customerId);
    const payment = (await list(buyer.accountId)).json().items[0] as { id: string };
    const refunded = await testApp.app.inject({ method: 'POST', url: '/api/admin/refunds', headers: admin, payload: { paymentId: payment.id, amount: 600, reason: 'requested_by_customer' } });
    expect(refunded.statusCode, refunded.body).toBe(201);
    expect(await sandbox.delivery.settle(10_000)).toBe(true);
    // 600 of 1500 cents refunded: floor(250 x 600 / 1500) = 100 of the 250 unspent credits back.
    expect((await list(buyer.accountId)).json().items[0]).toMatchObject({ id: payment.id, amountRefunded: 600, creditsGranted: 250, creditsReversed: 100, creditsReversalShortfall: 0 });
  });

  it('pages newest first with nextCursor, every payment once', async () => {
    const accountId = await newAccount(testApp.deps.database, testApp.deps.clock);
    // Two with the same timestamp: the id breaks the tie, so none is skipped or repeated.
    await insertPayment(accountId, 'pay_page_a', '2026-03-01T10:00:00.000001Z');
    await insertPayment(accountId, 'pay_page_b', '2026-03-01T10:00:00.000001Z');
    await insertPayment(accountId, 'pay_page_c', '2026-03-02T10:00:00Z', 'subscription_invoice');
    const first = await list(accountId, '?limit=2');
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json().items.map((item: { id: string }) => item.id)).toEqual(['pay_page_c', 'pay_page_b']);
    expect(first.json().nextCursor).toEqual(expect.any(String));
    const second = await list(accountId, `?limit=2&cursor=${encodeURIComponent(first.json().nextCursor)}`);
    expect(second.statusCode, second.body).toBe(200);
    expect(second.json()).toMatchObject({ items: [{ id: 'pay_page_a', kind: 'charge', amount: 700, currency: 'eur' }], nextCursor: null });
    // No payments: an empty page.
    const empty = await newAccount(testApp.deps.database, testApp.deps.clock);
    expect((await list(empty)).json()).toEqual({ items: [], nextCursor: null, subscription: null });
  });

  it("answers the account's current subscription beside the payments (a live one before a newer ended one)", async () => {
    const accountId = await newAccount(testApp.deps.database, testApp.deps.clock);
    await asSystem(testApp.deps.database, async (tx) => {
      for (const [id, status, created, periodEnd] of [
        ['sub_adminpay_live', 'active', '2026-01-01T00:00:00Z', '2026-04-01T00:00:00Z'],
        ['sub_adminpay_old', 'canceled', '2026-02-01T00:00:00Z', '2026-03-01T00:00:00Z'],
      ] as const) {
        await tx.query(
          `INSERT INTO subscriptions (id, account_id, stripe_customer_id, status, plan_id, current_period_end, cancel_at_period_end, stripe_created_at, synced_at, created_at, updated_at)
           VALUES ($1, $2, 'cus_adminpay', $3, 'PRO', $4, $5, $6, now(), now(), now())`,
          [id, accountId, status, periodEnd, status === 'active', created],
        );
      }
    });
    const response = await list(accountId);
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json().subscription).toEqual({
      id: 'sub_adminpay_live',
      status: 'active',
      plan: 'PRO',
      currentPeriodEnd: '2026-04-01T00:00:00.000Z',
      cancelAtPeriodEnd: true,
      trialEnd: null,
    });
  });

  it('refuses an unknown account (404), a bad cursor or limit or an unknown parameter (400 naming it), and anyone but the operator (401/403)', async () => {
    expect((await list('acct_nobody')).statusCode).toBe(404);
    const accountId = await newAccount(testApp.deps.database, testApp.deps.clock);
    for (const [query, field] of [
      ['?cursor=bm90IGEgY3Vyc29y', 'cursor'],
      ['?cursor=a%20b', 'cursor'],
      ['?limit=ten', 'limit'],
      ['?limit=1.5', 'limit'],
      ['?page=2', 'page'],
    ] as const) {
      const response = await list(accountId, query);
      expect(response.statusCode, query).toBe(400);
      expect(response.json().error.code, query).toBe('VALIDATION_FAILED');
      expect(response.body, query).toContain(field);
    }
    expect((await list(accountId, '', {})).statusCode).toBe(401);
    expect((await list(accountId, '', { authorization: 'Bearer not-the-token' })).statusCode).toBe(401);
    // An account's own key is not the operator.
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'own' } });
    expect(issued.statusCode, issued.body).toBe(201);
    const asAccount = await list(accountId, '', { 'x-api-key': issued.json().secret as string });
    expect([401, 403]).toContain(asAccount.statusCode);
  });

  it('is in the OpenAPI document with its query and answer', async () => {
    const document = (await testApp.app.inject({ method: 'GET', url: '/docs/openapi.json' })).json();
    const operation = document.paths['/api/admin/accounts/{id}/payments']?.get;
    expect(operation).toBeDefined();
    expect(operation.parameters.map((parameter: { name: string }) => parameter.name).sort()).toEqual(['cursor', 'id', 'limit']);
    const schema = operation.responses['200'].content['application/json'].schema;
    expect(Object.keys(schema.properties).sort()).toEqual(['items', 'nextCursor', 'subscription']);
    expect(schema.properties.items.items.properties.amountRefunded.type).toBe('integer');
  });
});
