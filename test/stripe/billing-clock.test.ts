import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { periodEnd, prorate } from '../../src/modules/stripe/sandbox/billing.js';
import { startStripeSandbox } from '../../src/modules/stripe/sandbox/sandbox-server.js';
import { startSandboxHarness, type SandboxHarness } from './helpers.js';

const DAY = 86_400;
let harness: SandboxHarness;
let monthly: Stripe.Price;
let monthlyPro: Stripe.Price;

interface PayAnswer {
  status: string;
  outcome: string;
  subscription: string | null;
  customer: string | null;
}

async function subscribe(card: string | undefined, extra: Partial<Stripe.Checkout.SessionCreateParams> = {}): Promise<{ subscription: Stripe.Subscription; customer: string }> {
  const session = await harness.stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: monthly.id }], success_url: 'http://localhost:3000/ok', ...extra });
  const paid = await harness.control<PayAnswer>('POST', `/_sandbox/checkout/${session.id}/pay`, card ? { card, email: 'clock@example.com' } : { email: 'clock@example.com' });
  expect(paid.body).toMatchObject({ status: 'complete', outcome: 'succeeded' });
  return { subscription: await harness.stripe.subscriptions.retrieve(paid.body.subscription as string), customer: paid.body.customer as string };
}

const advance = (seconds: number) => harness.control<{ now: number; events: string[] }>('POST', '/_sandbox/clock/advance', { seconds });

async function eventsFor(subscriptionId: string): Promise<Stripe.Event[]> {
  const all = await harness.stripe.events.list({ limit: 100 }).autoPagingToArray({ limit: 2000 });
  return all.filter((event) => {
    const object = event.data.object as { id?: string; subscription?: string; parent?: { subscription_details?: { subscription?: string } } | null };
    return object.id === subscriptionId || object.parent?.subscription_details?.subscription === subscriptionId;
  }).reverse();
}

beforeAll(async () => {
  harness = await startSandboxHarness({ dunningRetryDays: [1, 2, 2, 2, 2, 2, 3] });
  const product = await harness.stripe.products.create({ name: 'Clocked' });
  monthly = await harness.stripe.prices.create({ product: product.id, unit_amount: 3000, currency: 'usd', recurring: { interval: 'month' } });
  monthlyPro = await harness.stripe.prices.create({ product: product.id, unit_amount: 9000, currency: 'usd', recurring: { interval: 'month' } });
});
afterAll(async () => {
  await harness.close();
});

describe('billing arithmetic', () => {
  it('keeps the anchor day through short months and rounds prorations half away from zero in integers', () => {
    const jan31 = Date.UTC(2026, 0, 31, 12) / 1000;
    expect(new Date(periodEnd(jan31, 'month', 1, 1) * 1000).toISOString()).toBe('2026-02-28T12:00:00.000Z');
    expect(new Date(periodEnd(jan31, 'month', 1, 2) * 1000).toISOString()).toBe('2026-03-31T12:00:00.000Z');
    expect(new Date(periodEnd(jan31, 'year', 1, 1) * 1000).toISOString()).toBe('2027-01-31T12:00:00.000Z');
    expect(periodEnd(jan31, 'week', 2, 1) - jan31).toBe(14 * DAY);
    expect(prorate(3000, 1, 2)).toBe(1500);
    expect(prorate(1001, 1, 2)).toBe(501);
    expect(prorate(-1001, 1, 2)).toBe(-501);
    expect(prorate(9000, 15 * DAY, 31 * DAY)).toBe(4355);
  });
});

describe('the sandbox clock', () => {
  it('renews a monthly subscription advanced by 31 days: a new paid invoice and a later current_period_end', async () => {
    const { subscription } = await subscribe('4242424242424242');
    const firstEnd = subscription.items.data[0]?.current_period_end as number;
    const answer = await advance(31 * DAY);
    expect(answer.status).toBe(200);
    const renewed = await harness.stripe.subscriptions.retrieve(subscription.id);
    expect(renewed.status).toBe('active');
    expect(renewed.items.data[0]?.current_period_start).toBe(firstEnd);
    expect(renewed.items.data[0]?.current_period_end).toBeGreaterThan(firstEnd);
    const invoices = await harness.gateway.listInvoices({ subscription: subscription.id });
    expect(invoices.data.map((invoice) => [invoice.billing_reason, invoice.status, invoice.amount_paid])).toEqual([
      ['subscription_cycle', 'paid', 3000],
      ['subscription_create', 'paid', 3000],
    ]);
    expect(invoices.data[0]).toMatchObject({ period_start: firstEnd, lines: { data: [{ period: { start: firstEnd } }] } });
    const types = (await eventsFor(subscription.id)).map((event) => event.type);
    expect(types.slice(-5)).toEqual(['customer.subscription.updated', 'invoice.created', 'invoice.finalized', 'invoice.paid', 'invoice.payment_succeeded']);
    const renewal = (await harness.stripe.events.list({ type: 'invoice.paid', limit: 1 })).data[0];
    expect(renewal?.created).toBe(firstEnd);
  });

  it('with a card that fails, goes past_due, retries on the schedule and ends canceled when the retries run out (PAY-6 events)', async () => {
    const { subscription, customer } = await subscribe('4242424242424242');
    const switched = await harness.control<{ paymentMethod: string }>('POST', `/_sandbox/customers/${customer}/payment-method`, { card: '4000000000000341' });
    expect(switched.status).toBe(200);
    expect((await harness.stripe.subscriptions.retrieve(subscription.id)).default_payment_method).toBe(switched.body.paymentMethod);

    await advance(31 * DAY);
    const pastDue = await harness.stripe.subscriptions.retrieve(subscription.id);
    expect(pastDue.status).toBe('past_due');
    const open = (await harness.gateway.listInvoices({ subscription: subscription.id, status: 'open' })).data[0] as Stripe.Invoice;
    expect(open).toMatchObject({ attempt_count: 1, amount_paid: 0, billing_reason: 'subscription_cycle' });
    expect(open.next_payment_attempt).toBe(open.created + 1 * DAY);

    await advance(4 * DAY);
    const retried = await harness.stripe.invoices.retrieve(open.id);
    expect(retried.attempt_count).toBe(3);
    expect((await harness.stripe.subscriptions.retrieve(subscription.id)).status).toBe('past_due');

    await advance(12 * DAY);
    const ended = await harness.stripe.subscriptions.retrieve(subscription.id);
    expect(ended).toMatchObject({ status: 'canceled', cancellation_details: { reason: 'payment_failed' } });
    const final = await harness.stripe.invoices.retrieve(open.id);
    expect(final).toMatchObject({ attempt_count: 8, next_payment_attempt: null, status: 'open' });
    expect(ended.ended_at).toBe(open.created + 14 * DAY);
    const types = (await eventsFor(subscription.id)).map((event) => event.type);
    expect(types.filter((type) => type === 'invoice.payment_failed')).toHaveLength(8);
    expect(types.at(-1)).toBe('customer.subscription.deleted');
    const failedCharges = await harness.gateway.listCharges({ customer });
    expect(failedCharges.data.filter((charge) => charge.status === 'failed')).toHaveLength(8);
    expect(await harness.gateway.listSubscriptions({ customer })).toMatchObject({ data: [] });
    expect((await harness.gateway.listSubscriptions({ customer, status: 'all' })).data.map((item) => item.id)).toEqual([subscription.id]);
  });

  it('converts a 14-day trial advanced 15 days into an active, paid subscription', async () => {
    const { subscription } = await subscribe('4242424242424242', { subscription_data: { trial_period_days: 14 } });
    expect(subscription).toMatchObject({ status: 'trialing' });
    expect(subscription.trial_end).toBe((subscription.trial_start as number) + 14 * DAY);
    const zero = (await harness.gateway.listInvoices({ subscription: subscription.id })).data;
    expect(zero).toMatchObject([{ amount_due: 0, status: 'paid' }]);
    await advance(15 * DAY);
    const converted = await harness.stripe.subscriptions.retrieve(subscription.id);
    expect(converted.status).toBe('active');
    expect(converted.items.data[0]?.current_period_start).toBe(subscription.trial_end);
    const invoices = (await harness.gateway.listInvoices({ subscription: subscription.id })).data;
    expect(invoices[0]).toMatchObject({ status: 'paid', amount_paid: 3000, period_start: subscription.trial_end });
    const types = (await eventsFor(subscription.id)).map((event) => event.type);
    expect(types).toContain('customer.subscription.trial_will_end');
  });

  it('ends a 14-day trial without a payment method when told to cancel, and makes a trial with a failing card past_due', async () => {
    const { subscription } = await subscribe(undefined, {
      payment_method_collection: 'if_required',
      subscription_data: { trial_period_days: 14, trial_settings: { end_behavior: { missing_payment_method: 'cancel' } } },
    });
    expect(subscription.status).toBe('trialing');
    const failing = await subscribe('4000000000000341', { subscription_data: { trial_period_days: 14 } });
    await advance(15 * DAY);
    expect(await harness.stripe.subscriptions.retrieve(subscription.id)).toMatchObject({ status: 'canceled', ended_at: subscription.trial_end });
    expect((await harness.stripe.subscriptions.retrieve(failing.subscription.id)).status).toBe('past_due');
  });

  it('cancels at the period end when asked, and right away on DELETE', async () => {
    const atEnd = await subscribe('4242424242424242');
    const now = await subscribe('4242424242424242');
    await harness.gateway.updateSubscription('cancel_end', atEnd.subscription.id, { cancel_at_period_end: true });
    const canceled = await harness.gateway.cancelSubscription('cancel_now', now.subscription.id);
    expect(canceled).toMatchObject({ status: 'canceled', cancellation_details: { reason: 'cancellation_requested' } });
    await expect(harness.gateway.cancelSubscription('cancel_now', now.subscription.id)).rejects.toMatchObject({ type: 'StripeInvalidRequestError' });
    expect((await harness.stripe.subscriptions.retrieve(atEnd.subscription.id)).status).toBe('active');
    await advance(31 * DAY);
    const ended = await harness.stripe.subscriptions.retrieve(atEnd.subscription.id);
    expect(ended).toMatchObject({ status: 'canceled', ended_at: atEnd.subscription.items.data[0]?.current_period_end });
    expect((await harness.gateway.listInvoices({ subscription: atEnd.subscription.id })).data).toHaveLength(1);
  });

  it('changes the price mid-period with proration: always_invoice charges the difference now, create_prorations waits for the renewal', async () => {
    const now = await subscribe('4242424242424242');
    const later = await subscribe('4242424242424242');
    await advance(10 * DAY);
    const item = now.subscription.items.data[0] as Stripe.SubscriptionItem;
    const upgraded = await harness.gateway.updateSubscription('upgrade_1', now.subscription.id, { items: [{ id: item.id, price: monthlyPro.id }], proration_behavior: 'always_invoice' });
    expect(upgraded.items.data[0]).toMatchObject({ id: item.id, price: { id: monthlyPro.id } });
    const invoice = (await harness.gateway.listInvoices({ subscription: now.subscription.id })).data[0] as Stripe.Invoice;
    const length = item.current_period_end - item.current_period_start;
    const remaining = item.current_period_end - (item.current_period_start + 10 * DAY);
    expect(invoice).toMatchObject({ billing_reason: 'subscription_update', status: 'paid' });
    expect(invoice.lines.data.map((line) => line.amount)).toEqual([-prorate(3000, remaining, length), prorate(9000, remaining, length)]);
    expect(invoice.lines.data.every((line) => line.parent?.subscription_item_details?.proration === true)).toBe(true);
    expect(Number.isInteger(invoice.total)).toBe(true);

    const laterItem = later.subscription.items.data[0] as Stripe.SubscriptionItem;
    await harness.gateway.updateSubscription('upgrade_2', later.subscription.id, { items: [{ id: laterItem.id, price: monthlyPro.id }] });
    expect((await harness.gateway.listInvoices({ subscription: later.subscription.id })).data).toHaveLength(1);
    await advance(21 * DAY);
    const renewal = (await harness.gateway.listInvoices({ subscription: later.subscription.id })).data[0] as Stripe.Invoice;
    expect(renewal.billing_reason).toBe('subscription_cycle');
    expect(renewal.lines.data.map((line) => line.amount)).toEqual([-prorate(3000, remaining, length), prorate(9000, remaining, length), 9000]);
    expect(renewal.amount_paid).toBe(renewal.total);
  });

  it('moves customers on a Stripe test clock only when that clock advances', async () => {
    const { stripe } = harness;
    const start = Math.floor(Date.now() / 1000);
    const clock = await stripe.testHelpers.testClocks.create({ frozen_time: start, name: 'renewals' });
    const customer = await stripe.customers.create({ email: 'clocked@example.com', test_clock: clock.id });
    await harness.control('POST', `/_sandbox/customers/${customer.id}/payment-method`, { card: '4242424242424242' });
    const subscription = await stripe.subscriptions.create({ customer: customer.id, items: [{ price: monthly.id }] });
    expect(subscription).toMatchObject({ status: 'active', test_clock: clock.id, start_date: start });
    await advance(40 * DAY);
    expect((await stripe.subscriptions.retrieve(subscription.id)).items.data[0]?.current_period_start).toBe(start);
    const advanced = await stripe.testHelpers.testClocks.advance(clock.id, { frozen_time: start + 32 * DAY });
    expect(advanced).toMatchObject({ status: 'ready', frozen_time: start + 32 * DAY });
    const renewed = await stripe.subscriptions.retrieve(subscription.id);
    expect(renewed.items.data[0]?.current_period_start).toBe(subscription.items.data[0]?.current_period_end);
    expect((await harness.gateway.listInvoices({ customer: customer.id })).data).toHaveLength(2);
  });

  it('keeps events for 30 days', async () => {
    const customer = await harness.stripe.customers.create({ email: 'retention@example.com' });
    const created = (await harness.stripe.events.list({ type: 'customer.created', limit: 1 })).data[0] as Stripe.Event;
    expect((created.data.object as Stripe.Customer).id).toBe(customer.id);
    await advance(29 * DAY);
    expect((await harness.stripe.events.retrieve(created.id)).id).toBe(created.id);
    await advance(2 * DAY);
    await harness.stripe.customers.create({ email: 'retention-later@example.com' });
    await expect(harness.stripe.events.retrieve(created.id)).rejects.toMatchObject({ statusCode: 404, code: 'resource_missing' });
  });

  it('expires open checkout sessions when their time passes (checkout.session.expired)', async () => {
    const session = await harness.stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: monthly.id }], success_url: 'http://localhost:3000/ok' });
    await advance(25 * 3600);
    expect(await harness.stripe.checkout.sessions.retrieve(session.id)).toMatchObject({ status: 'expired' });
    expect((await harness.stripe.events.list({ type: 'checkout.session.expired' })).data.map((event) => (event.data.object as Stripe.Checkout.Session).id)).toContain(session.id);
    expect((await advance(0)).status).toBe(400);
  });
});

describe('when the retries run out, what the settings say (afterFailedRetries)', () => {
  // Sandboxes of their own: the setting is the account's, fixed when the sandbox starts.
  const others: SandboxHarness[] = [];
  afterAll(async () => {
    await Promise.all(others.map((other) => other.close()));
  });

  /** A fresh sandbox with the setting, a monthly subscription paid with 4242, then the card switched to one that always fails. */
  async function failingSubscription(afterFailedRetries: 'unpaid' | 'past_due'): Promise<{ on: SandboxHarness; subscription: Stripe.Subscription; customer: string }> {
    const on = await startSandboxHarness({ afterFailedRetries });
    others.push(on);
    const price = await on.stripe.prices.create({ unit_amount: 3000, currency: 'usd', recurring: { interval: 'month' }, product_data: { name: 'Clocked' } });
    const session = await on.stripe.checkout.sessions.create({ mode: 'subscription', line_items: [{ price: price.id }], success_url: 'http://localhost:3000/ok' });
    const paid = await on.control<PayAnswer>('POST', `/_sandbox/checkout/${session.id}/pay`, { card: '4242424242424242', email: 'unpaid@example.com' });
    expect(paid.body).toMatchObject({ status: 'complete', outcome: 'succeeded' });
    const customer = paid.body.customer as string;
    expect((await on.control('POST', `/_sandbox/customers/${customer}/payment-method`, { card: '4000000000000341' })).status).toBe(200);
    return { on, subscription: await on.stripe.subscriptions.retrieve(paid.body.subscription as string), customer };
  }

  const advanceOn = (on: SandboxHarness, seconds: number) => on.control<{ now: number }>('POST', '/_sandbox/clock/advance', { seconds });

  async function subscriptionEvents(on: SandboxHarness, subscriptionId: string): Promise<Stripe.Event[]> {
    const all = await on.stripe.events.list({ limit: 100 }).autoPagingToArray({ limit: 2000 });
    return all.filter((event) => event.type.startsWith('customer.subscription.') && (event.data.object as { id?: string }).id === subscriptionId).reverse();
  }

  it("'unpaid': the last failed retry marks the subscription unpaid (customer.subscription.updated), not canceled; renewals are drafts never tried; paying the open invoice makes it active", async () => {
    const { on, subscription, customer } = await failingSubscription('unpaid');
    await advanceOn(on, 31 * DAY);
    expect((await on.stripe.subscriptions.retrieve(subscription.id)).status).toBe('past_due');
    const open = (await on.gateway.listInvoices({ subscription: subscription.id, status: 'open' })).data[0] as Stripe.Invoice;
    expect(open).toMatchObject({ attempt_count: 1, billing_reason: 'subscription_cycle' });

    // Day 13: one try left, still past_due.
    await advanceOn(on, 13 * DAY);
    expect((await on.stripe.subscriptions.retrieve(subscription.id)).status).toBe('past_due');
    // Day 14: the eighth attempt fails and Stripe gives up: unpaid, the subscription still in place.
    const moved = await advanceOn(on, 1 * DAY);
    const unpaid = await on.stripe.subscriptions.retrieve(subscription.id);
    expect(unpaid).toMatchObject({ status: 'unpaid', ended_at: null, canceled_at: null, cancel_at_period_end: false });
    expect(await on.stripe.invoices.retrieve(open.id)).toMatchObject({ status: 'open', attempt_count: 8, next_payment_attempt: null });
    const events = await subscriptionEvents(on, subscription.id);
    expect(events.map((event) => event.type)).not.toContain('customer.subscription.deleted');
    const last = events.at(-1) as Stripe.Event;
    expect(last).toMatchObject({ type: 'customer.subscription.updated', created: open.created + 14 * DAY, data: { object: { id: subscription.id, status: 'unpaid' }, previous_attributes: { status: 'past_due' } } });
    // Listed among the live subscriptions, not the ended ones.
    expect((await on.gateway.listSubscriptions({ customer })).data.map((item) => item.id)).toEqual([subscription.id]);

    // The next renewal: a draft invoice that is never finalized or tried; still unpaid.
    const periodEndAt = unpaid.items.data[0]?.current_period_end as number;
    await advanceOn(on, periodEndAt - moved.body.now + 3 * DAY);
    const draft = (await on.gateway.listInvoices({ subscription: subscription.id })).data[0] as Stripe.Invoice;
    expect(draft).toMatchObject({ billing_reason: 'subscription_cycle', status: 'draft', auto_advance: false, attempt_count: 0, amount_due: 3000, period_start: periodEndAt });
    expect((await on.stripe.subscriptions.retrieve(subscription.id)).status).toBe('unpaid');
    expect((await on.gateway.listCharges({ customer })).data.filter((charge) => charge.status === 'failed')).toHaveLength(8);

    // A working card and the open invoice paid: active again, with its updated event.
    const working = await on.control<{ paymentMethod: string }>('POST', `/_sandbox/customers/${customer}/payment-method`, { card: '4242424242424242' });
    expect(working.status).toBe(200);
    expect(await on.stripe.invoices.pay(open.id)).toMatchObject({ status: 'paid', amount_paid: 3000 });
    expect((await on.stripe.subscriptions.retrieve(subscription.id)).status).toBe('active');
    expect((await subscriptionEvents(on, subscription.id)).at(-1)).toMatchObject({ type: 'customer.subscription.updated', data: { object: { status: 'active' }, previous_attributes: { status: 'unpaid' } } });
  });

  it("'past_due': after the last failed retry the subscription is left past_due, with no event for it", async () => {
    const { on, subscription } = await failingSubscription('past_due');
    await advanceOn(on, 31 * DAY);
    const open = (await on.gateway.listInvoices({ subscription: subscription.id, status: 'open' })).data[0] as Stripe.Invoice;
    const before = (await subscriptionEvents(on, subscription.id)).length;
    await advanceOn(on, 15 * DAY);
    expect(await on.stripe.invoices.retrieve(open.id)).toMatchObject({ status: 'open', attempt_count: 8, next_payment_attempt: null });
    expect(await on.stripe.subscriptions.retrieve(subscription.id)).toMatchObject({ status: 'past_due', ended_at: null });
    expect((await subscriptionEvents(on, subscription.id)).length).toBe(before);
  });

  it('refuses a setting it does not know', async () => {
    await expect(startStripeSandbox({ afterFailedRetries: 'pause' as 'cancel' })).rejects.toThrow(/afterFailedRetries: one of cancel, unpaid, past_due/);
  });
});
