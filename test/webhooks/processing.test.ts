import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStripeSandbox, type StripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import {
  addCreditPack,
  auditEvents,
  countRows,
  deliver,
  eventOf,
  failAfterEffect,
  FAULT_AFTER_EFFECT,
  inboxRow,
  listen,
  newAccount,
  packSession,
  payInSandbox,
  purchasedCredits,
  recordWebhookAnswers,
  signatureFor,
  testWebhookSecret,
  WEBHOOK_TEST_RATE_LIMITS,
  type WebhookAnswer,
} from './helpers.js';

/**
 * The webhook path end to end over real HTTP: the sandbox delivers its signed events to
 * the service's POST /api/webhooks/stripe, the handlers re-fetch from the sandbox. Credit
 * packs (PAY-3, WH-4, WH-6), subscriptions out of order (WH-5), owner accounts (OWN-1),
 * failures, dead letters and replays (WH-8).
 */

const OWNER = 'acct_webhookowner';
const TEST_ACCOUNT = 'acct_webhooktest';
const PACK = { id: 'pack_100', credits: 100, priceCents: 1000, currency: 'usd' };
const secret = testWebhookSecret();
let sandbox: StripeSandbox;
let testApp: TestApp;
let appUrl: string;
let prices: { exact: Stripe.Price; cheap: Stripe.Price; euro: Stripe.Price; pro: Stripe.Price };
/** Every answer of the app's webhook route, in order (the sandbox keeps only a delivery's last status). */
const answers: WebhookAnswer[] = [];
const answersTo = (eventId: string) => answers.filter((answer) => answer.eventId === eventId).map((answer) => answer.statusCode);

beforeAll(async () => {
  sandbox = await startStripeSandbox({ webhookSecret: secret, webhookRetryDelaysMs: [50, 100, 200, 400] });
  testApp = await createTestApp({
    env: {
      STRIPE_API_URL: sandbox.url,
      STRIPE_SANDBOX_START: 'false',
      STRIPE_WEBHOOK_SECRET: secret,
      STRIPE_MAX_NETWORK_RETRIES: '0',
      WEBHOOK_MAX_ATTEMPTS: '3',
      OWNER_ACCOUNT_IDS: OWNER,
      TEST_ACCOUNT_IDS: TEST_ACCOUNT,
      RATE_LIMITS: WEBHOOK_TEST_RATE_LIMITS,
    },
    beforeReady: recordWebhookAnswers(answers),
  });
  appUrl = await listen(testApp);
  sandbox.setWebhookUrl(`${appUrl}/api/webhooks/stripe`);
  await addCreditPack(testApp, PACK);
  const { stripe } = testApp.deps;
  const packProduct = await stripe.ensureProduct({ id: 'bulwark_pack_pack_100', name: '100 credits' });
  const plan = await stripe.ensureProduct({ id: 'bulwark_plan_PRO', name: 'Pro' });
  prices = {
    exact: await stripe.ensurePrice({ lookupKey: 'pack_100_usd', productId: packProduct.id, unitAmount: 1000, currency: 'usd' }),
    cheap: await stripe.ensurePrice({ lookupKey: 'pack_100_cheap', productId: packProduct.id, unitAmount: 100, currency: 'usd' }),
    euro: await stripe.ensurePrice({ lookupKey: 'pack_100_eur', productId: packProduct.id, unitAmount: 1000, currency: 'eur' }),
    pro: await stripe.ensurePrice({ lookupKey: 'plan_PRO_month', productId: plan.id, unitAmount: 9900, currency: 'usd', recurring: { interval: 'month' } }),
  };
});
afterAll(async () => {
  await testApp?.close();
  await sandbox?.close();
});

let sequence = 0;
/** An account that owns a fresh Stripe customer. */
async function customerAccount(accountId?: string): Promise<{ accountId: string; customerId: string }> {
  sequence += 1;
  const customer = await testApp.deps.stripe.createCustomer(`webhooks_${sequence}_${Date.now()}`, { email: `buyer${sequence}@example.com` });
  if (accountId) {
    await asSystem(testApp.deps.database, async (tx) => {
      await tx.query(`INSERT INTO accounts (id, plan, status, created_at, updated_at) VALUES ($1, 'FREE', 'active', now(), now())`, [accountId]);
      await tx.query('UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1', [accountId, customer.id]);
    });
    return { accountId, customerId: customer.id };
  }
  return { accountId: await newAccount(testApp.deps.database, testApp.deps.clock, customer.id), customerId: customer.id };
}

/** Pays on the hosted page through the service's own /sandbox route, over real HTTP, then waits for every webhook. */
async function payOverHttp(sessionId: string, card: string): Promise<{ outcome: string }> {
  const response = await fetch(`${appUrl}/sandbox/checkout/${sessionId}/pay`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ card }),
  });
  const body = (await response.json()) as { outcome: string };
  expect(await sandbox.delivery.settle(10_000)).toBe(true);
  return body;
}

async function eventIdOf(type: string, objectId: string): Promise<string> {
  const events = await testApp.deps.stripe.listEvents({ type, limit: 100 });
  const found = events.data.find((event) => (event.data.object as { id: string }).id === objectId);
  if (!found) throw new Error(`no ${type} event for ${objectId}`);
  return found.id;
}

async function paymentOf(sessionId: string) {
  const { rows } = await asSystem(testApp.deps.database, (tx) =>
    tx.query<{ kind: string; status: string; credits_granted: number; amount_cents: number; stripe_charge_id: string | null }>(
      'SELECT kind, status, credits_granted, amount_cents, stripe_charge_id FROM payments WHERE stripe_checkout_session_id = $1',
      [sessionId],
    ),
  );
  return rows[0];
}

describe('credit pack purchases through the sandbox (PAY-3, WH-4, WH-6)', () => {
  it('grants the credits exactly once for a purchase with 4242, every event delivered twice', async () => {
    const { accountId, customerId } = await customerAccount();
    await fetch(`${appUrl}/sandbox/webhooks/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ duplicate: true }) });
    try {
      const session = await packSession(testApp.deps.stripe, { operationId: `pack_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
      expect((await payOverHttp(session.id, '4242 4242 4242 4242')).outcome).toBe('succeeded');
      expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([100]);
      expect(await paymentOf(session.id)).toMatchObject({ kind: 'credit_pack', status: 'succeeded', credits_granted: 100, amount_cents: 1000 });
      const completed = await eventIdOf('checkout.session.completed', session.id);
      expect(await inboxRow(testApp.deps.database, completed)).toMatchObject({ status: 'processed', account_id: accountId, attempts: 1 });
      const { body } = await (await fetch(`${sandbox.url}/_sandbox/webhooks/deliveries`)).json().then((value) => ({ body: value as { deliveries: Array<{ eventId: string; state: string; lastStatus: number }> } }));
      const deliveries = body.deliveries.filter((delivery) => delivery.eventId === completed);
      expect(deliveries).toHaveLength(2);
      expect(deliveries.every((delivery) => delivery.state === 'delivered' && delivery.lastStatus === 200)).toBe(true);
      // The charge's own events land on the same payment row.
      expect((await paymentOf(session.id))?.stripe_charge_id).toMatch(/^ch_/);
    } finally {
      await fetch(`${appUrl}/sandbox/webhooks/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ duplicate: false }) });
    }
    const metrics = await testApp.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/stripe_webhook_events_total\{type="checkout.session.completed",outcome="processed"\} [1-9]/);
    expect(metrics.body).toMatch(/stripe_webhook_events_total\{type="checkout.session.completed",outcome="duplicate"\} [1-9]/);
    expect(metrics.body).toContain('stripe_webhook_processing_seconds_count{type="checkout.session.completed",outcome="processed"}');
  });

  it('grants nothing for a declined card (4000 0000 0000 0002), and records the failed charge', async () => {
    const { accountId, customerId } = await customerAccount();
    const session = await packSession(testApp.deps.stripe, { operationId: `decline_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    expect((await payOverHttp(session.id, '4000 0000 0000 0002')).outcome).toBe('declined');
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);
    const { rows } = await asSystem(testApp.deps.database, (tx) => tx.query<{ status: string }>('SELECT status FROM payments WHERE account_id = $1', [accountId]));
    expect(rows).toEqual([{ status: 'failed' }]);
  });

  it('records a failed async payment (checkout.session.async_payment_failed) as a failed payment, with no credits', async () => {
    const { accountId, customerId } = await customerAccount();
    // The sandbox has no delayed payment methods: its session stays unpaid, which is what the
    // handler's re-fetch sees for a completed session whose bank debit then fails. The events
    // are shaped like Stripe's and name the real session.
    const session = await packSession(testApp.deps.stripe, { operationId: `async_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    const object = { id: session.id, object: 'checkout.session', mode: 'payment', customer: customerId, status: 'complete', payment_status: 'unpaid', amount_total: 1000, currency: 'usd', metadata: session.metadata };
    const completed = eventOf('checkout.session.completed', object);
    const failed = eventOf('checkout.session.async_payment_failed', object, { createdSeconds: completed.created + 60 });
    const signed = (event: Stripe.Event) => {
      const payload = JSON.stringify(event);
      return deliver(testApp, payload, signatureFor(payload, secret, Math.floor(Date.now() / 1000)));
    };
    expect((await signed(completed)).json()).toEqual({ received: true, outcome: 'processed' });
    expect(await paymentOf(session.id)).toMatchObject({ kind: 'credit_pack', status: 'pending', credits_granted: 0, amount_cents: 1000 });

    expect((await signed(failed)).json()).toEqual({ received: true, outcome: 'processed' });
    const again = await signed(failed);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ received: true, outcome: 'duplicate' });
    expect(await paymentOf(session.id)).toMatchObject({ kind: 'credit_pack', status: 'failed', credits_granted: 0 });
    expect(await countRows(testApp.deps.database, 'SELECT count(*) FROM payments WHERE account_id = $1', [accountId])).toBe(1);
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);
    expect(await inboxRow(testApp.deps.database, failed.id)).toMatchObject({ type: 'checkout.session.async_payment_failed', status: 'processed', reason: null, attempts: 1, account_id: accountId });
    // Received counts every verified delivery (the duplicate too); events count what became of each.
    const metrics = (await testApp.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toContain('stripe_webhook_received_total{type="checkout.session.async_payment_failed"} 2\n');
    expect(metrics).toContain('stripe_webhook_events_total{type="checkout.session.async_payment_failed",outcome="processed"} 1\n');
    expect(metrics).toContain('stripe_webhook_events_total{type="checkout.session.async_payment_failed",outcome="duplicate"} 1\n');
  });

  it('refuses and audits a purchase whose amount_total (100) is not the pack price (1000), or whose currency is wrong', async () => {
    const { accountId, customerId } = await customerAccount();
    const cheap = await packSession(testApp.deps.stripe, { operationId: `cheap_${accountId}`, customerId, priceId: prices.cheap.id, packId: PACK.id, metadataAccount: accountId });
    await payOverHttp(cheap.id, '4242424242424242');
    const euro = await packSession(testApp.deps.stripe, { operationId: `euro_${accountId}`, customerId, priceId: prices.euro.id, packId: PACK.id, metadataAccount: accountId });
    await payOverHttp(euro.id, '4242424242424242');
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);
    expect(await inboxRow(testApp.deps.database, await eventIdOf('checkout.session.completed', cheap.id))).toMatchObject({ status: 'refused', reason: 'AMOUNT_MISMATCH' });
    expect(await inboxRow(testApp.deps.database, await eventIdOf('checkout.session.completed', euro.id))).toMatchObject({ status: 'refused', reason: 'CURRENCY_MISMATCH' });
    const refusals = (await auditEvents(testApp.deps.database, 'credits.purchase_refused')).filter((entry) => entry.account_id === accountId);
    expect(refusals.map((entry) => entry.metadata)).toMatchObject([
      { reason: 'AMOUNT_MISMATCH', amountTotal: 100, expectedAmount: 1000, checkoutSessionId: cheap.id },
      { reason: 'CURRENCY_MISMATCH', currency: 'eur', expectedCurrency: 'usd', checkoutSessionId: euro.id },
    ]);
  });

  it('credits only the account that owns the Stripe customer, whatever account the metadata names', async () => {
    const owner = await customerAccount();
    const other = await customerAccount();
    const session = await packSession(testApp.deps.stripe, { operationId: `named_${owner.accountId}`, customerId: owner.customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: other.accountId });
    await payOverHttp(session.id, '4242424242424242');
    expect(await purchasedCredits(testApp.deps.database, other.accountId)).toEqual([]);
    expect(await purchasedCredits(testApp.deps.database, owner.accountId)).toEqual([100]);
    const ignored = (await auditEvents(testApp.deps.database, 'billing.metadata_account_ignored')).filter((entry) => entry.account_id === owner.accountId);
    expect(ignored).toMatchObject([{ metadata: { metadataAccountIgnored: other.accountId, checkoutSessionId: session.id } }]);
  });

  it('records an event for an unknown customer as ignored and answers 200, without retries', async () => {
    const event = eventOf('checkout.session.completed', { id: 'cs_test_unknown', object: 'checkout.session', mode: 'payment', customer: 'cus_nobodyknows' });
    const payload = JSON.stringify(event);
    const response = await deliver(testApp, payload, signatureFor(payload, secret, Math.floor(Date.now() / 1000)));
    expect(response.statusCode).toBe(200);
    expect(await inboxRow(testApp.deps.database, event.id)).toMatchObject({ status: 'ignored', reason: 'UNKNOWN_CUSTOMER', account_id: null });
  });
});

describe('invoices, charges, refunds and disputes (WH-9)', () => {
  it('records a refund and a dispute on the credit pack payment, without touching the credits', async () => {
    const { accountId, customerId } = await customerAccount();
    const session = await packSession(testApp.deps.stripe, { operationId: `refund_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    await payOverHttp(session.id, '4242424242424242');
    const chargeId = (await paymentOf(session.id))?.stripe_charge_id as string;
    await testApp.deps.stripe.createRefund(`refund_${accountId}`, { charge: chargeId, amount: 300 });
    expect(await sandbox.delivery.settle(10_000)).toBe(true);
    const refundedRow = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ amount_refunded_cents: number; status: string }>('SELECT amount_refunded_cents, status FROM payments WHERE stripe_charge_id = $1', [chargeId]),
    );
    expect(refundedRow.rows).toEqual([{ amount_refunded_cents: 300, status: 'succeeded' }]);
    expect((await auditEvents(testApp.deps.database, 'payment.refunded')).filter((entry) => entry.account_id === accountId)).toHaveLength(1);

    // The sandbox has no disputes: a signed event shaped like Stripe's, naming the real charge.
    const dispute = eventOf('charge.dispute.created', { id: 'dp_test_1', object: 'dispute', charge: chargeId, amount: 1000, currency: 'usd', reason: 'fraudulent' });
    const payload = JSON.stringify(dispute);
    expect((await deliver(testApp, payload, signatureFor(payload, secret, Math.floor(Date.now() / 1000)))).json()).toMatchObject({ outcome: 'processed' });
    const disputed = await countRows(testApp.deps.database, 'SELECT count(*) FROM payments WHERE stripe_charge_id = $1 AND disputed_at IS NOT NULL', [chargeId]);
    expect(disputed).toBe(1);
    expect((await auditEvents(testApp.deps.database, 'payment.disputed')).filter((entry) => entry.account_id === accountId)).toMatchObject([
      { metadata: { disputeId: 'dp_test_1', chargeId, reason: 'fraudulent' } },
    ]);
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([100]);
  });
});

describe('owner and test accounts (OWN-1, webhook side)', () => {
  it.each([
    ['owner', OWNER],
    ['test', TEST_ACCOUNT],
  ] as const)('refuses an exempt (%s) account purchase and subscription: a critical log line, an audit entry, no change', async (kind, exemptId) => {
    const { accountId, customerId } = await customerAccount(exemptId);
    const session = await packSession(testApp.deps.stripe, { operationId: `owner_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    await payOverHttp(session.id, '4242424242424242');
    const subscriptionSession = await testApp.deps.stripe.createCheckoutSession(`owner_sub_${accountId}`, {
      mode: 'subscription',
      customer: customerId,
      line_items: [{ price: prices.pro.id }],
      success_url: 'http://localhost:3000/ok',
    });
    await payOverHttp(subscriptionSession.id, '4242424242424242');

    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);
    expect(await countRows(testApp.deps.database, 'SELECT count(*) FROM payments WHERE account_id = $1', [accountId])).toBe(0);
    expect(await countRows(testApp.deps.database, 'SELECT count(*) FROM subscriptions WHERE account_id = $1', [accountId])).toBe(0);
    expect(await countRows(testApp.deps.database, `SELECT count(*) FROM accounts WHERE id = $1 AND plan = 'FREE'`, [accountId])).toBe(1);
    const completed = await eventIdOf('checkout.session.completed', session.id);
    expect(await inboxRow(testApp.deps.database, completed)).toMatchObject({ status: 'refused', reason: 'EXEMPT_ACCOUNT', account_id: accountId });
    const refused = (await auditEvents(testApp.deps.database, 'billing.owner_charge_refused')).filter((entry) => entry.account_id === accountId);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((entry) => entry.metadata.exemptKind === kind)).toBe(true);
    const types = refused.map((entry) => entry.metadata.type);
    expect(types).toContain('checkout.session.completed');
    expect(types).toContain('customer.subscription.created');
    expect(types).toContain('charge.succeeded');
    expect(types).toContain('invoice.paid');
    const critical = testApp.logs.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.alertKind === 'owner_charge_attempt' && line.accountId === accountId);
    expect(critical.length).toBe(refused.length);
    expect(critical[0]).toMatchObject({ level: 60, alert: true, severity: 'critical', exemptKind: kind, eventId: expect.stringMatching(/^evt_/) });
  });
});

describe('subscriptions, order-proof (PAY-3, WH-5)', () => {
  it('leaves the account on FREE when subscription.updated (active, PRO) arrives after the later subscription.deleted', async () => {
    const { accountId, customerId } = await customerAccount();
    const { stripe } = testApp.deps;
    // Events are held back (no delivery target) and delivered by the test, in the wrong order.
    sandbox.setWebhookUrl(undefined);
    let subscriptionId: string;
    try {
      const session = await stripe.createCheckoutSession(`sub_${accountId}`, { mode: 'subscription', customer: customerId, line_items: [{ price: prices.pro.id }], success_url: 'http://localhost:3000/ok' });
      const paid = await (await fetch(`${sandbox.url}/_sandbox/checkout/${session.id}/pay`, { method: 'POST', body: JSON.stringify({ card: '4242424242424242' }) })).json() as { subscription: string };
      subscriptionId = paid.subscription;
      await stripe.cancelSubscription(`cancel_${subscriptionId}`, subscriptionId);
    } finally {
      sandbox.setWebhookUrl(`${appUrl}/api/webhooks/stripe`);
    }
    const events = (await stripe.listEvents({ type: 'customer.subscription.*', limit: 100 })).data.filter((event) => (event.data.object as Stripe.Subscription).id === subscriptionId);
    const updatedActive = events.find((event) => event.type === 'customer.subscription.updated' && (event.data.object as Stripe.Subscription).status === 'active');
    const deleted = events.find((event) => event.type === 'customer.subscription.deleted');
    expect(updatedActive && deleted).toBeTruthy();
    const now = Math.floor(Date.now() / 1000);
    for (const event of [deleted, updatedActive] as Stripe.Event[]) {
      const payload = JSON.stringify(event);
      expect((await deliver(testApp, payload, signatureFor(payload, secret, now))).json()).toMatchObject({ outcome: 'processed' });
    }
    expect(await countRows(testApp.deps.database, `SELECT count(*) FROM accounts WHERE id = $1 AND plan = 'FREE'`, [accountId])).toBe(1);
    const { rows } = await asSystem(testApp.deps.database, (tx) => tx.query<{ status: string; plan_id: string }>('SELECT status, plan_id FROM subscriptions WHERE id = $1', [subscriptionId]));
    expect(rows).toEqual([{ status: 'canceled', plan_id: 'PRO' }]);
    // The held-back deliveries (the same events, in order) then change nothing.
    expect(await sandbox.delivery.settle(10_000)).toBe(true);
    expect(await countRows(testApp.deps.database, `SELECT count(*) FROM accounts WHERE id = $1 AND plan = 'FREE'`, [accountId])).toBe(1);
  });

  it('puts the account on PRO once Stripe confirms the payment, never from the return URL', async () => {
    const { accountId, customerId } = await customerAccount();
    const session = await testApp.deps.stripe.createCheckoutSession(`pro_${accountId}`, { mode: 'subscription', customer: customerId, line_items: [{ price: prices.pro.id }], success_url: 'http://localhost:3000/ok' });
    expect(await countRows(testApp.deps.database, `SELECT count(*) FROM accounts WHERE id = $1 AND plan = 'FREE'`, [accountId])).toBe(1);
    await payOverHttp(session.id, '4242424242424242');
    expect(await countRows(testApp.deps.database, `SELECT count(*) FROM accounts WHERE id = $1 AND plan = 'PRO'`, [accountId])).toBe(1);
    const changes = (await auditEvents(testApp.deps.database, 'account.updated')).filter((entry) => entry.account_id === accountId);
    expect(changes).toMatchObject([{ metadata: { changes: { plan: { from: 'FREE', to: 'PRO' } }, via: 'stripe' } }]);
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ kind: string; status: string; amount_cents: number }>('SELECT kind, status, amount_cents FROM payments WHERE account_id = $1', [accountId]),
    );
    expect(rows).toEqual([{ kind: 'subscription_invoice', status: 'succeeded', amount_cents: 9900 }]);
  });
});

describe('failures, dead letters and replays (WH-8)', () => {
  it('answers 5xx to a handler failure, and the sandbox retry after the fault is gone gives one effect', async () => {
    const { accountId, customerId } = await customerAccount();
    const session = await packSession(testApp.deps.stripe, { operationId: `fault_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    // The handler's re-fetch of the session fails once: the connection is dropped twice,
    // because the stripe client always retries a closed connection once by itself.
    sandbox.injectFault({ when: 'before', method: 'GET', pathPrefix: `/v1/checkout/sessions/${session.id}`, count: 2 });
    await payOverHttp(session.id, '4242424242424242');
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([100]);
    const completed = await eventIdOf('checkout.session.completed', session.id);
    expect(await inboxRow(testApp.deps.database, completed)).toMatchObject({ status: 'processed', attempts: 2 });
    const { deliveries } = (await (await fetch(`${sandbox.url}/_sandbox/webhooks/deliveries`)).json()) as { deliveries: Array<{ eventId: string; attempts: number; state: string }> };
    expect(deliveries.find((delivery) => delivery.eventId === completed)).toMatchObject({ attempts: 2, state: 'delivered' });
    // The failed attempt was answered 503 (SERVICE_UNAVAILABLE), the sandbox's retry 200.
    expect(answersTo(completed)).toEqual([503, 200]);
    const metrics = await testApp.app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/stripe_webhook_events_total\{type="checkout.session.completed",outcome="failed"\} [1-9]/);
    expect(testApp.logs.text).toContain('Stripe event processing failed; Stripe will retry');
  });

  it('rolls back the grant and the payment with the inbox row when the transaction fails after the effect (WH-4), and the retry applies it once', async () => {
    const { accountId, customerId } = await customerAccount();
    const { database, stripe } = testApp.deps;
    const session = await packSession(stripe, { operationId: `atomic_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    // Held back (no delivery target): the test delivers the event itself, with and without the fault.
    sandbox.setWebhookUrl(undefined);
    let completed: Stripe.Event;
    try {
      completed = await payInSandbox(stripe, sandbox.url, session.id);
      const payload = JSON.stringify(completed);
      const signed = () => deliver(testApp, payload, signatureFor(payload, secret, Math.floor(Date.now() / 1000)));
      // The last write of the transaction (the inbox row's final status) fails, after the
      // handler wrote the payment, the grant and the tie between them.
      const removeFault = await failAfterEffect(database, completed.id);
      let failedAttempt;
      try {
        failedAttempt = await signed();
      } finally {
        await removeFault();
      }
      expect(failedAttempt.statusCode).toBe(503);
      expect(failedAttempt.json()).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE' } });
      // The fault struck with the effect written (TF001, not TF000), and nothing of it is left.
      expect(await inboxRow(database, completed.id)).toMatchObject({ status: 'failed', attempts: 1, reason: `DATABASE_${FAULT_AFTER_EFFECT}` });
      expect(await purchasedCredits(database, accountId)).toEqual([]);
      expect(await countRows(database, 'SELECT count(*) FROM payments WHERE account_id = $1', [accountId])).toBe(0);
      expect(await countRows(database, 'SELECT count(*) FROM notifications WHERE account_id = $1', [accountId])).toBe(0);
      expect((await auditEvents(database, 'credits.granted')).filter((entry) => entry.account_id === accountId)).toEqual([]);
      expect((await testApp.deps.credits.balance(accountId)).balance).toBe(0);

      const retried = await signed();
      expect(retried.statusCode).toBe(200);
      expect(retried.json()).toEqual({ received: true, outcome: 'processed' });
    } finally {
      sandbox.setWebhookUrl(`${appUrl}/api/webhooks/stripe`);
    }
    expect(await purchasedCredits(database, accountId)).toEqual([100]);
    expect(await paymentOf(session.id)).toMatchObject({ kind: 'credit_pack', status: 'succeeded', credits_granted: 100 });
    expect(await inboxRow(database, completed.id)).toMatchObject({ status: 'processed', reason: null, attempts: 2 });
    // The held-back deliveries (this event among them) then change nothing.
    expect(await sandbox.delivery.settle(10_000)).toBe(true);
    expect(answersTo(completed.id)).toEqual([503, 200, 200]);
    expect(await purchasedCredits(database, accountId)).toEqual([100]);
    expect((await auditEvents(database, 'credits.granted')).filter((entry) => entry.account_id === accountId)).toHaveLength(1);
  });

  it('dead-letters an event after WEBHOOK_MAX_ATTEMPTS failures, answers 200 then, and an operator replay applies it once', async () => {
    const { accountId, customerId } = await customerAccount();
    const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
    const session = await packSession(testApp.deps.stripe, { operationId: `dead_${accountId}`, customerId, priceId: prices.exact.id, packId: PACK.id, metadataAccount: accountId });
    // Three failed attempts (each two dropped connections, see above).
    sandbox.injectFault({ when: 'before', method: 'GET', pathPrefix: `/v1/checkout/sessions/${session.id}`, count: 6 });
    await payOverHttp(session.id, '4242424242424242');
    const completed = await eventIdOf('checkout.session.completed', session.id);
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);
    expect(await inboxRow(testApp.deps.database, completed)).toMatchObject({ status: 'dead', attempts: 3, reason: 'STRIPE_CONNECTION_ERROR' });
    const { deliveries } = (await (await fetch(`${sandbox.url}/_sandbox/webhooks/deliveries`)).json()) as { deliveries: Array<{ eventId: string; attempts: number; state: string; lastStatus: number }> };
    expect(deliveries.find((delivery) => delivery.eventId === completed)).toMatchObject({ attempts: 3, state: 'delivered', lastStatus: 200 });
    expect(answersTo(completed)).toEqual([503, 503, 200]);

    expect((await testApp.app.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/stripe_webhook_events_total\{type="checkout.session.completed",outcome="dead_lettered"\} 1/);
    const list = await testApp.app.inject({ method: 'GET', url: '/api/admin/webhooks/dead-letters', headers: admin });
    expect(list.statusCode).toBe(200);
    expect(list.json<{ items: Array<{ eventId: string }> }>().items).toContainEqual(
      expect.objectContaining({ eventId: completed, type: 'checkout.session.completed', attempts: 3, lastErrorCode: 'STRIPE_CONNECTION_ERROR', accountId }),
    );
    // A delivery of a dead event is a duplicate: Stripe stops, nothing happens.
    const event = await testApp.deps.stripe.retrieveEvent(completed);
    const payload = JSON.stringify(event);
    expect((await deliver(testApp, payload, signatureFor(payload, secret, Math.floor(Date.now() / 1000)))).json()).toMatchObject({ outcome: 'duplicate' });
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([]);

    const [first, second] = await Promise.all([
      testApp.app.inject({ method: 'POST', url: `/api/admin/webhooks/${completed}/replay`, headers: admin }),
      testApp.app.inject({ method: 'POST', url: `/api/admin/webhooks/${completed}/replay`, headers: admin }),
    ]);
    expect([first.statusCode, second.statusCode].sort()).toEqual([200, 409]);
    const replayed = [first, second].find((response) => response.statusCode === 200);
    expect(replayed?.json()).toMatchObject({ outcome: 'processed', event: { eventId: completed, status: 'processed' } });
    expect(await purchasedCredits(testApp.deps.database, accountId)).toEqual([100]);
    expect((await testApp.app.inject({ method: 'POST', url: `/api/admin/webhooks/${completed}/replay`, headers: admin })).statusCode).toBe(409);
    expect((await testApp.app.inject({ method: 'POST', url: '/api/admin/webhooks/evt_neverseen/replay', headers: admin })).statusCode).toBe(404);
    const after = await testApp.app.inject({ method: 'GET', url: '/api/admin/webhooks/dead-letters', headers: admin });
    expect(after.json<{ items: Array<{ eventId: string }> }>().items.map((item) => item.eventId)).not.toContain(completed);
    expect((await auditEvents(testApp.deps.database, 'webhook.replayed')).map((entry) => entry.metadata)).toContainEqual(
      expect.objectContaining({ eventId: completed, status: 'processed' }),
    );
  });

  it('keeps the dead-letter routes for operators, and validates their input', async () => {
    expect((await testApp.app.inject({ method: 'GET', url: '/api/admin/webhooks/dead-letters' })).statusCode).toBe(401);
    const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
    const bad = await testApp.app.inject({ method: 'GET', url: '/api/admin/webhooks/dead-letters?cursor=nope', headers: admin });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
    expect((await testApp.app.inject({ method: 'POST', url: '/api/admin/webhooks/not-an-event/replay', headers: admin })).statusCode).toBe(400);
  });
});

describe('the inbox after everything above', () => {
  it('holds no failed or dead event that a test did not make fail on purpose, and every handled type was seen', async () => {
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ type: string; status: string; reason: string | null }>(
        `SELECT type, status, reason FROM stripe_events
         WHERE status IN ('failed', 'dead', 'received') OR reason IN ('CUSTOMER_MISMATCH', 'MALFORMED_OBJECT', 'STRIPE_OBJECT_MISSING', 'UNKNOWN_STATUS', 'OLDER_STATE')`,
      ),
    );
    expect(rows).toEqual([]);
    const { rows: seen } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ type: string }>(`SELECT DISTINCT type FROM stripe_events WHERE status IN ('processed', 'refused') ORDER BY type`),
    );
    expect(seen.map((row) => row.type)).toEqual(
      expect.arrayContaining(['charge.failed', 'charge.refunded', 'charge.succeeded', 'checkout.session.completed', 'customer.subscription.created', 'customer.subscription.deleted', 'customer.subscription.updated', 'invoice.paid', 'charge.dispute.created']),
    );
  });
});
