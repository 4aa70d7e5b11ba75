import type Stripe from 'stripe';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AppError } from '../../src/errors/app-error.js';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { addCreditPack, eventOf, listen, newAccount, packSession, signatureFor, testWebhookSecret, WEBHOOK_TEST_RATE_LIMITS } from '../webhooks/helpers.js';

/**
 * PAY-7 races the way production runs: two instances with their own pools on one
 * PostgreSQL, the sandbox's events delivered by the test itself, at once to both.
 */
describeWithPostgres('refunds racing across two instances on PostgreSQL', () => {
  const PACK = { id: 'pack_refund_race', credits: 100, priceCents: 1000, currency: 'usd' };
  const secret = testWebhookSecret();
  let scratch: ScratchDatabase;
  let sandbox: StripeSandbox;
  let instances: TestApp[] = [];
  let urls: string[] = [];
  let priceId: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    sandbox = await startStripeSandbox({ webhookSecret: secret });
    const env = {
      DATABASE_URL: scratch.url,
      DATABASE_POOL_MAX: '10',
      STRIPE_API_URL: sandbox.url,
      STRIPE_SANDBOX_START: 'false',
      STRIPE_WEBHOOK_SECRET: secret,
      STRIPE_MAX_NETWORK_RETRIES: '0',
      RATE_LIMITS: WEBHOOK_TEST_RATE_LIMITS,
    };
    instances = [await createTestApp({ env }), await createTestApp({ env })];
    urls = await Promise.all(instances.map((instance) => listen(instance)));
    await addCreditPack(first(), PACK);
    await addCreditPack(instances[1] as TestApp, PACK);
    const { stripe } = first().deps;
    const product = await stripe.ensureProduct({ id: 'bulwark_pack_pack_refund_race', name: '100 credits' });
    priceId = (await stripe.ensurePrice({ lookupKey: 'pack_refund_race_usd', productId: product.id, unitAmount: 1000, currency: 'usd' })).id;
  });
  afterAll(async () => {
    for (const instance of instances) await instance.close();
    await sandbox?.close();
    await scratch?.drop();
  });

  const first = () => instances[0] as TestApp;

  async function post(url: string, event: Stripe.Event): Promise<number> {
    const payload = JSON.stringify(event);
    const response = await fetch(`${url}/api/webhooks/stripe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': signatureFor(payload, secret, Math.floor(Date.now() / 1000)) },
      body: payload,
    });
    await response.body?.cancel();
    return response.status;
  }

  async function eventFor(type: string, objectId: string): Promise<Stripe.Event> {
    const events = await first().deps.stripe.listEvents({ type, limit: 100 });
    const found = events.data.find((event) => (event.data.object as { id: string }).id === objectId);
    if (!found) throw new Error(`no ${type} for ${objectId}`);
    return found;
  }

  /** A credit pack bought and granted (the checkout event delivered by the test). */
  async function purchase(label: string) {
    const { stripe, database, clock } = first().deps;
    const customer = await stripe.createCustomer(`refund_race_${label}`, { email: `${label}@example.com` });
    const accountId = await newAccount(database, clock, customer.id);
    const session = await packSession(stripe, { operationId: `refund_race_${label}`, customerId: customer.id, priceId, packId: PACK.id, metadataAccount: accountId });
    const paid = await fetch(`${sandbox.url}/_sandbox/checkout/${session.id}/pay`, { method: 'POST', body: JSON.stringify({ card: '4242424242424242' }) });
    expect(paid.status).toBe(200);
    expect(await post(urls[0] as string, await eventFor('checkout.session.completed', session.id))).toBe(200);
    const { rows } = await asSystem(database, (tx) =>
      tx.query<{ id: string; credit_grant_id: string; stripe_payment_intent_id: string }>('SELECT id, credit_grant_id, stripe_payment_intent_id FROM payments WHERE stripe_checkout_session_id = $1', [session.id]),
    );
    const payment = rows[0];
    if (!payment?.credit_grant_id) throw new Error('the purchase was not granted');
    return { accountId, payment };
  }

  async function state(paymentId: string, accountId: string) {
    return asSystem(first().deps.database, async (tx) => {
      const payment = (await tx.query<{ credits_reversed: number; credits_reversal_shortfall: number; amount_refunded_cents: number }>('SELECT * FROM payments WHERE id = $1', [paymentId])).rows[0];
      const reversals = (await tx.query<{ amount: number }>(`SELECT amount FROM credit_ledger WHERE account_id = $1 AND kind = 'refund_reversal' ORDER BY id`, [accountId])).rows.map((row) => Number(row.amount));
      return { payment, reversals };
    });
  }

  it('two identical refund requests at once on two instances make one Stripe refund; charge.refunded three times at once reverses once', async () => {
    const { accountId, payment } = await purchase(`a${Date.now()}`);
    const { reservation } = await first().deps.credits.reserve(accountId, { jobId: 'spent', jobType: 'render', amount: 30, idempotencyKey: 'spent' });
    await first().deps.credits.confirm(accountId, reservation.id);

    const answers = await Promise.all(
      instances.map((instance, index) =>
        fetch(`${urls[index]}/api/admin/refunds`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${instance.config.secrets.adminApiToken}` },
          body: JSON.stringify({ paymentId: payment.id, reason: 'requested_by_customer' }),
        }).then(async (response) => ({ status: response.status, body: (await response.json()) as { refund: { id: string; stripeRefundId: string } } })),
      ),
    );
    expect(answers.map((answer) => answer.status)).toEqual([201, 201]);
    expect(answers[0]?.body.refund.id).toBe(answers[1]?.body.refund.id);
    const refunds = await first().deps.stripe.listRefunds({ payment_intent: payment.stripe_payment_intent_id, limit: 100 });
    expect(refunds.data).toHaveLength(1);

    const charge = (await first().deps.stripe.retrievePaymentIntent(payment.stripe_payment_intent_id)).latest_charge as string;
    const refunded = await eventFor('charge.refunded', charge);
    const copy = eventOf('charge.refunded', refunded.data.object as unknown as Record<string, unknown>, { createdSeconds: Math.floor(Date.now() / 1000) });
    const statuses = await Promise.all([post(urls[0] as string, refunded), post(urls[1] as string, refunded), post(urls[1] as string, copy), post(urls[0] as string, copy)]);
    expect(statuses.every((status) => status === 200)).toBe(true);
    const after = await state(payment.id, accountId);
    expect(after.payment).toMatchObject({ amount_refunded_cents: 1000, credits_reversed: 70, credits_reversal_shortfall: 30 });
    expect(after.reversals).toEqual([-70]);
    expect((await verifyCreditLedger(first().deps.database, { accountId })).valid).toBe(true);
  });

  it('a reservation racing the reversal never takes the same credits: what is held plus what is taken back is what was left', async () => {
    const { accountId, payment } = await purchase(`b${Date.now()}`);
    const refund = await fetch(`${urls[0]}/api/admin/refunds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${first().config.secrets.adminApiToken}` },
      body: JSON.stringify({ paymentId: payment.id, reason: 'fraudulent' }),
    });
    expect(refund.status).toBe(201);
    const charge = (await first().deps.stripe.retrievePaymentIntent(payment.stripe_payment_intent_id)).latest_charge as string;
    const refunded = await eventFor('charge.refunded', charge);
    const [delivered, reserved] = await Promise.all([
      post(urls[0] as string, refunded),
      (instances[1] as TestApp).deps.credits
        .reserve(accountId, { jobId: 'racing', jobType: 'render', amount: 60, idempotencyKey: 'racing' })
        .then((result) => result.reservation.amount)
        .catch((error: unknown) => {
          if (error instanceof AppError && error.code === 'INSUFFICIENT_CREDITS') return 0;
          throw error;
        }),
    ]);
    expect(delivered).toBe(200);
    const after = await state(payment.id, accountId);
    // Either the reservation came first (60 held, 40 taken back, 60 short) or the reversal (100 taken back, the reservation refused).
    expect(Number(after.payment?.credits_reversed) + reserved).toBe(100);
    expect(Number(after.payment?.credits_reversal_shortfall)).toBe(reserved);
    expect((await verifyCreditLedger(first().deps.database, { accountId })).valid).toBe(true);
  });
});
