import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../src/platform/database/access.js';
import { auditEvents, inboxRow } from '../webhooks/helpers.js';
import {
  accountRow,
  advance,
  call,
  CARD_FAILS,
  DAY,
  newPerson,
  notificationsOf,
  planOf,
  settle,
  startBillingHarness,
  subscribe,
  subscriptionOf,
  type BillingHarness,
} from './lifecycle-helpers.js';

/**
 * Stripe giving up by marking the subscription unpaid (PAY-6), end to end over real HTTP:
 * the sandbox set like an account whose "Manage failed payments" setting is "mark the
 * subscription as unpaid" (afterFailedRetries), a grace period longer than Stripe's
 * retries (PAST_DUE_GRACE_DAYS=30), so that only the unpaid status can end PRO.
 */

let harness: BillingHarness;

beforeAll(async () => {
  harness = await startBillingHarness({ BILLING_TRIAL_DAYS: 'PRO=0', PAST_DUE_GRACE_DAYS: '30' }, { afterFailedRetries: 'unpaid' });
});
afterAll(async () => {
  await harness?.close();
});

const database = () => harness.testApp.deps.database;

describe('Stripe marks the subscription unpaid after its last retry (PAY-6)', () => {
  it('keeps PRO while Stripe retries; once the subscription is unpaid the account is FREE with the status unpaid, the account and its data intact', async () => {
    expect(harness.testApp.config.billing.pastDueGraceDays).toBe(30);
    const person = await newPerson(harness, 'unpaid');
    const { customerId, subscriptionId } = await subscribe(harness, person, { plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    expect(await subscriptionOf(harness, person)).toMatchObject({ id: subscriptionId, status: 'active', plan: 'PRO' });
    // Data of the account made while PRO: an account key, and the credit balance.
    const key = await call(harness, 'POST', '/api/keys', { person, body: { label: 'unpaid' } });
    expect(key.status, JSON.stringify(key.body)).toBe(201);
    const credits = await call(harness, 'GET', '/api/credits', { person });
    expect(credits.status).toBe(200);

    const swapped = await call(harness, 'POST', `/sandbox/customers/${customerId}/payment-method`, { body: { card: CARD_FAILS } });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    await settle(harness);

    // The renewal fails: past_due, PRO in the grace.
    await advance(harness, 31 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    const { rows } = await asSystem(database(), (tx) => tx.query<{ past_due_since: Date }>('SELECT past_due_since FROM subscriptions WHERE id = $1', [subscriptionId]));
    const pastDueSince = rows[0]?.past_due_since as Date;
    expect(pastDueSince).toBeInstanceOf(Date);

    // Day 10, then day 13 (retries on days 1 to 11 failed): Stripe still has a try left, still PRO.
    await advance(harness, 10 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    await advance(harness, 3 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    expect(await accountRow(database(), person.accountId)).toMatchObject({ plan: 'PRO' });

    // Day 15: the last retry (day 14) failed and Stripe marked the subscription unpaid (not canceled).
    await advance(harness, 2 * DAY);
    expect(await harness.testApp.deps.stripe.retrieveSubscription(subscriptionId)).toMatchObject({ status: 'unpaid', ended_at: null });
    expect(await subscriptionOf(harness, person)).toMatchObject({ id: subscriptionId, status: 'unpaid', plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('FREE');
    const local = await asSystem(database(), (tx) => tx.query<{ status: string }>('SELECT status FROM subscriptions WHERE id = $1', [subscriptionId]));
    expect(local.rows).toEqual([{ status: 'unpaid' }]);
    // The move to FREE came from Stripe's webhook, 16 days before the 30-day grace would have ended.
    expect(harness.sandbox.core.globalNow() * 1000).toBeLessThan(pastDueSince.getTime() + 30 * DAY * 1000);
    const planChanges = (await auditEvents(database(), 'account.updated')).filter((entry) => entry.account_id === person.accountId);
    expect(planChanges.map((entry) => (entry.metadata.changes as { plan: { to: string } }).plan.to)).toEqual(['PRO', 'FREE']);
    const downgrade = planChanges[1]?.metadata as { via: string; subscriptionId: string; eventId: string };
    expect(downgrade).toMatchObject({ via: 'stripe', subscriptionId });
    // The unpaid customer.subscription.updated, or the last attempt's invoice.payment_failed (its handler re-reads the subscription, unpaid by then).
    expect(await inboxRow(database(), downgrade.eventId)).toMatchObject({ status: 'processed', account_id: person.accountId, type: expect.stringMatching(/^(invoice\.payment_failed|customer\.subscription\.updated)$/) });

    // The account and its data are intact: active, signed in, its key and its credits.
    expect(await accountRow(database(), person.accountId)).toMatchObject({ status: 'active', plan: 'FREE', stripe_customer_id: customerId });
    const me = await call(harness, 'GET', '/auth/me', { person });
    expect(me.status).toBe(200);
    expect(me.body.account).toMatchObject({ id: person.accountId, status: 'active' });
    const byKey = await call(harness, 'GET', '/api/account', { headers: { 'x-api-key': key.body.secret } });
    expect(byKey.status, JSON.stringify(byKey.body)).toBe(200);
    expect(byKey.body.account).toMatchObject({ id: person.accountId, plan: 'FREE' });
    expect((await call(harness, 'GET', '/api/credits', { person })).body.balance).toBe(credits.body.balance);
    expect((await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.past_due')).toHaveLength(1);

    // The next renewal of an unpaid subscription is a draft Stripe never tries: still unpaid, still FREE.
    await advance(harness, 20 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ id: subscriptionId, status: 'unpaid' });
    expect(await planOf(harness, person)).toBe('FREE');
  });
});
