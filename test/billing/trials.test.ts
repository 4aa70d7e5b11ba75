import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  advance,
  call,
  CARD_OK,
  DAY,
  newPerson,
  notificationsOf,
  planOf,
  settle,
  startBillingHarness,
  subscriptionOf,
  type BillingHarness,
} from './lifecycle-helpers.js';

/**
 * Trials (PAY-5) with the default BILLING_TRIAL_DAYS (PRO=14): the checkout starts a
 * 14-day trial without asking for a card (payment_method_collection if_required); without a
 * card by its end Stripe cancels it (trial_settings missing_payment_method cancel) and the
 * account is on FREE; with one it converts to a paid PRO.
 */

let harness: BillingHarness;

beforeAll(async () => {
  harness = await startBillingHarness();
});
afterAll(async () => {
  await harness?.close();
});

async function startTrial(label: string, card: string | undefined) {
  const person = await newPerson(harness, label);
  const checkout = await call(harness, 'POST', '/api/billing/checkout', { person, body: { plan: 'PRO' } });
  expect(checkout.status, JSON.stringify(checkout.body)).toBe(200);
  const session = await harness.testApp.deps.stripe.retrieveCheckoutSession(checkout.body.sessionId);
  expect(session).toMatchObject({ mode: 'subscription', payment_method_collection: 'if_required', amount_total: 0 });
  const paid = await call(harness, 'POST', `/sandbox/checkout/${checkout.body.sessionId}/pay`, { body: card === undefined ? {} : { card } });
  expect(paid.status, JSON.stringify(paid.body)).toBe(200);
  expect(paid.body.status).toBe('complete');
  await settle(harness);
  return { person, subscriptionId: paid.body.subscription as string };
}

describe('14-day trials of PRO (PAY-5)', () => {
  it('without a payment method: PRO while trialing, FREE (canceled) when the trial ends', async () => {
    const { person, subscriptionId } = await startTrial('trialnocard', undefined);
    const trialing = await subscriptionOf(harness, person);
    expect(trialing).toMatchObject({ id: subscriptionId, status: 'trialing', plan: 'PRO', trialEnd: expect.any(String) });
    const length = (new Date(trialing.trialEnd).getTime() / 1000 - harness.sandbox.core.globalNow()) / DAY;
    expect(Math.round(length)).toBe(14);
    expect(await planOf(harness, person)).toBe('PRO');

    await advance(harness, 10 * DAY);
    expect(await planOf(harness, person)).toBe('PRO');
    await advance(harness, 5 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'canceled' });
    expect(await planOf(harness, person)).toBe('FREE');
    expect((await notificationsOf(harness.testApp.deps.database, person.accountId)).filter((n) => n.type === 'subscription.canceled')).toHaveLength(1);
  });

  it('with a payment method: trialing, then active and paid PRO when the trial ends', async () => {
    const { person } = await startTrial('trialcard', CARD_OK);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'trialing', plan: 'PRO' });
    await advance(harness, 15 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'active', plan: 'PRO', cancelAtPeriodEnd: false });
    expect(await planOf(harness, person)).toBe('PRO');
    const notifications = await notificationsOf(harness.testApp.deps.database, person.accountId);
    expect(notifications.filter((n) => n.type === 'subscription.activated')).toHaveLength(1);
    expect(notifications.filter((n) => n.type === 'payment.succeeded').map((n) => n.data.amountPaid)).toEqual([9900]);
  });

  it('a second subscription of the same account gets no second trial', async () => {
    const { person } = await startTrial('trialonce', undefined);
    await advance(harness, 15 * DAY);
    expect(await planOf(harness, person)).toBe('FREE');
    const again = await call(harness, 'POST', '/api/billing/checkout', { person, body: { plan: 'PRO' } });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    const session = await harness.testApp.deps.stripe.retrieveCheckoutSession(again.body.sessionId);
    expect(session).toMatchObject({ payment_method_collection: 'always', amount_total: 9900 });
  });
});
