import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxHarness, type SandboxHarness } from './helpers.js';

let harness: SandboxHarness;
let monthly: Stripe.Price;
let pack: Stripe.Price;

interface PayAnswer {
  id: string;
  status: string;
  paymentStatus: string;
  outcome: string;
  paymentIntent: { id: string; status: string } | null;
  subscription: string | null;
  customer: string | null;
  error?: { code: string; declineCode?: string };
}

const pay = (sessionId: string, body: Record<string, string>) => harness.control<PayAnswer>('POST', `/_sandbox/checkout/${sessionId}/pay`, body);

beforeAll(async () => {
  harness = await startSandboxHarness();
  const product = await harness.gateway.ensureProduct({ id: 'bulwark_plan_STARTER', name: 'Starter' });
  monthly = await harness.gateway.ensurePrice({ lookupKey: 'plan_STARTER_month', productId: product.id, unitAmount: 1500, currency: 'usd', recurring: { interval: 'month' } });
  const credits = await harness.gateway.ensureProduct({ id: 'bulwark_credits_100', name: '100 credits' });
  pack = await harness.gateway.ensurePrice({ lookupKey: 'credits_100', productId: credits.id, unitAmount: 1000, currency: 'usd' });
});
afterAll(async () => {
  await harness.close();
});

describe('checkout in subscription mode', () => {
  it('creates a session with the fields the service sends, is paid with 4242, and starts an active subscription (PAY-1: the card stays in the sandbox)', async () => {
    const { gateway, stripe } = harness;
    const customer = await gateway.createCustomer('acct_sub', { email: 'sub@example.com', metadata: { accountId: 'acct_sub' } });
    const session = await gateway.createCheckoutSession('chk_sub_1', {
      mode: 'subscription',
      customer: customer.id,
      client_reference_id: 'acct_sub',
      line_items: [{ price: monthly.id, quantity: 1 }],
      allow_promotion_codes: true,
      metadata: { accountId: 'acct_sub', plan: 'STARTER' },
      subscription_data: { metadata: { accountId: 'acct_sub' } },
      success_url: 'http://localhost:3000/billing/success?session={CHECKOUT_SESSION_ID}',
      cancel_url: 'http://localhost:3000/billing/cancel',
    });
    expect(session).toMatchObject({ object: 'checkout.session', mode: 'subscription', status: 'open', payment_status: 'unpaid', customer: customer.id, client_reference_id: 'acct_sub', amount_total: 1500, currency: 'usd', allow_promotion_codes: true });
    expect(session.url).toBe(`${harness.sandbox.core.hostedBaseUrl}/sandbox/checkout/${session.id}`);
    expect((await gateway.listCheckoutSessionLineItems(session.id)).data).toMatchObject([{ quantity: 1, amount_total: 1500, price: { id: monthly.id } }]);

    const paid = await pay(session.id, { card: '4242 4242 4242 4242' });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ status: 'complete', paymentStatus: 'paid', outcome: 'succeeded', customer: customer.id });

    const completed = await gateway.retrieveCheckoutSession(session.id, { expand: ['subscription', 'line_items'] });
    expect(completed.status).toBe('complete');
    const subscription = completed.subscription as Stripe.Subscription;
    expect(subscription).toMatchObject({ object: 'subscription', status: 'active', customer: customer.id, metadata: { accountId: 'acct_sub' } });
    expect(subscription.items.data[0]).toMatchObject({ price: { id: monthly.id }, quantity: 1 });
    expect(subscription.items.data[0]?.current_period_end).toBeGreaterThan(subscription.items.data[0]?.current_period_start ?? Infinity);

    const listed = await gateway.listSubscriptions({ customer: customer.id });
    expect(listed.data.map((item) => item.id)).toEqual([subscription.id]);
    const invoices = await gateway.listInvoices({ subscription: subscription.id });
    expect(invoices.data).toMatchObject([{ status: 'paid', amount_paid: 1500, billing_reason: 'subscription_create' }]);
    const payments = await gateway.listInvoicePayments({ invoice: invoices.data[0]?.id as string });
    expect(payments.data[0]?.payment.payment_intent).toBe(paid.body.paymentIntent?.id);
    const charges = await gateway.listCharges({ customer: customer.id });
    expect(charges.data).toMatchObject([{ status: 'succeeded', paid: true, amount: 1500, payment_method_details: { card: { last4: '4242', brand: 'visa' } } }]);
    // Nothing card-like beyond Stripe's own last4/brand is kept anywhere in the sandbox state.
    expect(JSON.stringify(harness.sandbox.core.store.data)).not.toContain('4242424242424242');

    const updated = await gateway.updateSubscription('cancel_1', subscription.id, { cancel_at_period_end: true });
    expect(updated).toMatchObject({ cancel_at_period_end: true, cancel_at: subscription.items.data[0]?.current_period_end });
    const resumed = await gateway.updateSubscription('resume_1', subscription.id, { cancel_at_period_end: false });
    expect(resumed).toMatchObject({ cancel_at_period_end: false, cancel_at: null, status: 'active' });

    await harness.receiver.until(() => harness.receiver.received.some((item) => item.event.type === 'checkout.session.completed' && (item.event.data.object as Stripe.Checkout.Session).id === session.id));
    const events = await gateway.listEvents({ type: 'customer.subscription.*', limit: 100 });
    expect(events.data.map((event) => event.type)).toEqual(expect.arrayContaining(['customer.subscription.created', 'customer.subscription.updated']));
    const types = (await stripe.events.list({ limit: 100 })).data.map((event) => event.type);
    for (const type of ['checkout.session.completed', 'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded', 'charge.succeeded', 'payment_intent.succeeded']) {
      expect(types).toContain(type);
    }
    const completedEvent = (await stripe.events.list({ type: 'checkout.session.completed' })).data[0] as Stripe.CheckoutSessionCompletedEvent;
    expect(await gateway.retrieveEvent(completedEvent.id)).toEqual(completedEvent);
    expect(completedEvent.data.object).toMatchObject({ id: session.id, status: 'complete', client_reference_id: 'acct_sub', metadata: { accountId: 'acct_sub', plan: 'STARTER' } });
    expect(completedEvent.api_version).toBe(Stripe.API_VERSION);
  });

  it('signs every delivered event so that stripe.webhooks.constructEvent verifies it with the configured secret', async () => {
    await harness.receiver.until(() => harness.receiver.received.length > 3);
    const delivered = harness.receiver.received[0];
    expect(delivered).toBeDefined();
    const event = harness.stripe.webhooks.constructEvent(delivered?.body as string, delivered?.signature as string, harness.secret);
    expect(event.id).toMatch(/^evt_/);
    expect(delivered?.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(() => harness.stripe.webhooks.constructEvent(delivered?.body as string, delivered?.signature as string, ['whsec', 'wrong'].join('_'))).toThrow(/signature/i);
    expect(() => harness.stripe.webhooks.constructEvent(`${delivered?.body as string} `, delivered?.signature as string, harness.secret)).toThrow(/signature/i);
    expect(harness.receiver.rejected).toEqual([]);
    // The gateway's own verification, with a rotation list whose second secret is the current one.
    expect(harness.gateway.constructWebhookEvent(delivered?.body as string, delivered?.signature as string, [['whsec', 'old'].join('_'), harness.secret]).id).toBe(event.id);
  });

  it('applies a promotion code entered on the hosted page to the first invoice', async () => {
    const { stripe, gateway } = harness;
    const coupon = await stripe.coupons.create({ percent_off: 20, duration: 'once' });
    await stripe.promotionCodes.create({ promotion: { type: 'coupon', coupon: coupon.id }, code: 'LAUNCH20' });
    const session = await gateway.createCheckoutSession('chk_promo', {
      mode: 'subscription',
      line_items: [{ price: monthly.id, quantity: 1 }],
      allow_promotion_codes: true,
      success_url: 'http://localhost:3000/ok',
    });
    const paid = await pay(session.id, { card: '4242424242424242', email: 'promo@example.com', promotionCode: 'launch20' });
    expect(paid.body).toMatchObject({ status: 'complete', outcome: 'succeeded' });
    const invoice = (await gateway.listInvoices({ subscription: paid.body.subscription as string })).data[0];
    expect(invoice).toMatchObject({ subtotal: 1500, total: 1200, amount_paid: 1200 });
    expect((await stripe.coupons.retrieve(coupon.id)).times_redeemed).toBe(1);
    const refused = await pay((await gateway.createCheckoutSession('chk_nopromo', { mode: 'subscription', line_items: [{ price: monthly.id }], success_url: 'http://localhost:3000/ok' })).id, { card: '4242424242424242', promotionCode: 'LAUNCH20' });
    expect(refused.status).toBe(400);
  });
});

describe('checkout in payment mode, charges and refunds', () => {
  it('is paid, leaves a succeeded payment intent and charge, and refunds partly, then fully, never beyond the charge', async () => {
    const { gateway } = harness;
    const session = await gateway.createCheckoutSession('chk_pack', {
      mode: 'payment',
      client_reference_id: 'acct_pack',
      customer_creation: 'always',
      line_items: [{ price: pack.id, quantity: 2 }],
      metadata: { accountId: 'acct_pack', creditPack: 'credits_100' },
      success_url: 'http://localhost:3000/ok',
      cancel_url: 'http://localhost:3000/no',
    });
    expect(session).toMatchObject({ mode: 'payment', amount_total: 2000, payment_intent: null });
    const paid = await pay(session.id, { card: '5555555555554444', email: 'pack@example.com' });
    expect(paid.body).toMatchObject({ status: 'complete', paymentStatus: 'paid', outcome: 'succeeded' });
    const completed = await gateway.retrieveCheckoutSession(session.id, { expand: ['payment_intent.latest_charge'] });
    const intent = completed.payment_intent as Stripe.PaymentIntent;
    expect(intent).toMatchObject({ status: 'succeeded', amount: 2000, amount_received: 2000, metadata: { accountId: 'acct_pack' } });
    const charge = intent.latest_charge as Stripe.Charge;
    expect(charge).toMatchObject({ status: 'succeeded', amount: 2000, amount_refunded: 0, refunded: false, payment_method_details: { card: { brand: 'mastercard', last4: '4444' } } });
    expect((await gateway.retrievePaymentIntent(intent.id)).id).toBe(intent.id);
    expect((await gateway.listPaymentIntents({ customer: completed.customer as string })).data.map((item) => item.id)).toEqual([intent.id]);

    const partial = await gateway.createRefund('refund_1', { charge: charge.id, amount: 500, reason: 'requested_by_customer' });
    expect(partial).toMatchObject({ object: 'refund', amount: 500, status: 'succeeded', charge: charge.id });
    expect(await gateway.createRefund('refund_1', { charge: charge.id, amount: 500, reason: 'requested_by_customer' })).toEqual(partial);
    await expect(gateway.createRefund('refund_2', { charge: charge.id, amount: 1600 })).rejects.toMatchObject({ type: 'StripeInvalidRequestError', param: 'amount' });
    const rest = await gateway.createRefund('refund_3', { payment_intent: intent.id });
    expect(rest.amount).toBe(1500);
    expect(await gateway.retrieveCharge(charge.id)).toMatchObject({ amount_refunded: 2000, refunded: true });
    expect((await gateway.listRefunds({ charge: charge.id })).data.map((refund) => refund.amount).sort()).toEqual([1500, 500]);
    await expect(gateway.createRefund('refund_4', { charge: charge.id, amount: 1 })).rejects.toMatchObject({ type: 'StripeInvalidRequestError' });
    const refundedEvents = await gateway.listEvents({ type: 'charge.refunded' });
    expect(refundedEvents.data).toHaveLength(2);
    expect((await gateway.listEvents({ type: 'refund.created' })).data).toHaveLength(2);
  });

  it('declines 4000 0000 0000 0002 without any successful charge and leaves the session open to try again', async () => {
    const { gateway } = harness;
    const session = await gateway.createCheckoutSession('chk_decline', { mode: 'payment', line_items: [{ price: pack.id }], success_url: 'http://localhost:3000/ok' });
    const declined = await pay(session.id, { card: '4000 0000 0000 0002' });
    expect(declined.status).toBe(200);
    expect(declined.body).toMatchObject({ status: 'open', paymentStatus: 'unpaid', outcome: 'declined', error: { code: 'card_declined', declineCode: 'generic_decline' } });
    const intentId = declined.body.paymentIntent?.id as string;
    const charges = await gateway.listCharges({ payment_intent: intentId });
    expect(charges.data).toMatchObject([{ status: 'failed', paid: false, failure_code: 'card_declined' }]);
    expect(charges.data.filter((charge) => charge.paid)).toHaveLength(0);
    expect(await gateway.retrievePaymentIntent(intentId)).toMatchObject({ status: 'requires_payment_method', last_payment_error: { code: 'card_declined' } });
    expect((await gateway.retrieveCheckoutSession(session.id)).status).toBe('open');

    const retried = await pay(session.id, { card: '4242424242424242' });
    expect(retried.body).toMatchObject({ status: 'complete', outcome: 'succeeded', paymentIntent: { id: intentId, status: 'succeeded' } });
    expect((await gateway.listCharges({ payment_intent: intentId })).data.map((charge) => charge.status).sort()).toEqual(['failed', 'succeeded']);
  });

  it('leaves the session unpaid with the payment intent in requires_action for 4000 0025 0000 3155', async () => {
    const { gateway } = harness;
    const session = await gateway.createCheckoutSession('chk_3ds', { mode: 'subscription', line_items: [{ price: monthly.id }], success_url: 'http://localhost:3000/ok' });
    const answer = await pay(session.id, { card: '4000002500003155' });
    expect(answer.body).toMatchObject({ status: 'open', paymentStatus: 'unpaid', outcome: 'requires_action', error: { code: 'authentication_required' }, subscription: null });
    expect(await gateway.retrievePaymentIntent(answer.body.paymentIntent?.id as string)).toMatchObject({ status: 'requires_action', next_action: { type: 'use_stripe_sdk' } });
    expect(await gateway.retrieveCheckoutSession(session.id)).toMatchObject({ status: 'open', payment_status: 'unpaid', subscription: null });
    expect((await gateway.listCharges({ payment_intent: answer.body.paymentIntent?.id as string })).data).toHaveLength(0);
  });

  it('refuses unknown cards, a paid session and an expired session, and expires on request', async () => {
    const { gateway } = harness;
    const session = await gateway.createCheckoutSession('chk_misc', { mode: 'payment', line_items: [{ price: pack.id }], success_url: 'http://localhost:3000/ok' });
    const unknown = await pay(session.id, { card: '1234123412341234' });
    expect(unknown.status).toBe(400);
    expect(unknown.body).toMatchObject({ error: { code: 'invalid_number', param: 'card' } });
    const expired = await gateway.expireCheckoutSession('expire_1', session.id);
    expect(expired).toMatchObject({ status: 'expired', url: null });
    expect((await pay(session.id, { card: '4242424242424242' })).status).toBe(400);
    await expect(gateway.createCheckoutSession('chk_bad', { mode: 'payment', line_items: [{ price: monthly.id }], success_url: 'http://localhost:3000/ok' })).rejects.toMatchObject({ param: 'line_items[0][price]' });
  });
});
