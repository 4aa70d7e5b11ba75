import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BulwarkClient } from '../../sdk/src/index.js';
import { asSystem } from '../../src/platform/database/access.js';
import { auditEvents, countRows, inboxRow } from '../webhooks/helpers.js';
import {
  accountRow,
  advance,
  call,
  CARD_FAILS,
  DAY,
  emailsTo,
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
 * The paid lifecycle end to end over real HTTP (PAY-3..6): checkout through the route,
 * payment on the sandbox's hosted page, the sandbox's signed webhooks into the app, time
 * moved with the sandbox's clock. Trials are off here (BILLING_TRIAL_DAYS=PRO=0); see
 * trials.test.ts for them.
 */

let harness: BillingHarness;

beforeAll(async () => {
  harness = await startBillingHarness({ BILLING_TRIAL_DAYS: 'PRO=0', PAST_DUE_GRACE_DAYS: '7' });
});
afterAll(async () => {
  await harness?.close();
});

const database = () => harness.testApp.deps.database;

async function paymentsOf(accountId: string): Promise<Array<{ status: string; amount_cents: number; stripe_invoice_id: string | null }>> {
  const { rows } = await asSystem(database(), (tx) =>
    tx.query<{ status: string; amount_cents: number; stripe_invoice_id: string | null }>(
      `SELECT status, amount_cents::int AS amount_cents, stripe_invoice_id FROM payments WHERE account_id = $1 AND kind = 'subscription_invoice' ORDER BY created_at, id`,
      [accountId],
    ),
  );
  return rows;
}

describe('renewal, failed payments, grace and Stripe giving up (PAY-5, PAY-6)', () => {
  it('PRO with 4242; a month on: renewed, still PRO; failing card: past_due, payment_failed email, PRO in the grace, FREE after it and when Stripe gives up', async () => {
    const person = await newPerson(harness, 'renewal');
    expect(await planOf(harness, person)).toBe('FREE');
    const { customerId, subscriptionId } = await subscribe(harness, person, { plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    const first = await subscriptionOf(harness, person);
    expect(first).toMatchObject({ id: subscriptionId, status: 'active', plan: 'PRO', cancelAtPeriodEnd: false, trialEnd: null });
    expect((await call(harness, 'GET', '/api/account', { person })).body.subscription).toEqual(first);
    // The SDK reads the same with an account key.
    const key = await call(harness, 'POST', '/api/keys', { person, body: { label: 'sdk' } });
    expect(key.status).toBe(201);
    expect(await new BulwarkClient({ baseUrl: harness.url, apiKey: key.body.secret }).subscription()).toEqual(first);
    expect((await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.activated')).toHaveLength(1);

    // One month on: the renewal is paid from the card, the period moves, still PRO.
    await advance(harness, 31 * DAY);
    const renewed = await subscriptionOf(harness, person);
    expect(renewed).toMatchObject({ status: 'active', plan: 'PRO' });
    expect(new Date(renewed.currentPeriodEnd).getTime()).toBeGreaterThan(new Date(first.currentPeriodEnd).getTime());
    expect((await paymentsOf(person.accountId)).filter((payment) => payment.status === 'succeeded')).toHaveLength(2);
    expect(await planOf(harness, person)).toBe('PRO');

    // The card now fails every charge: the next renewal fails, the subscription is past_due.
    const swapped = await call(harness, 'POST', `/sandbox/customers/${customerId}/payment-method`, { body: { card: CARD_FAILS } });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    await settle(harness);
    await advance(harness, 31 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    const failed = (await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'payment.failed');
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed[0]?.emails).toEqual(['payment_failed']);
    expect(failed[0]?.data).toMatchObject({ subscriptionId, currency: 'usd', amountDue: 9900 });
    expect((await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.past_due')).toHaveLength(1);
    // The email itself, in the development outbox as an .eml file, once the worker ran.
    const failedEmails = await emailsTo(harness, person, 'payment_failed');
    expect(failedEmails.length).toBeGreaterThanOrEqual(1);
    expect(failedEmails[0]?.subject.length).toBeGreaterThan(0);
    const { rows } = await asSystem(database(), (tx) =>
      tx.query<{ past_due_since: Date | null }>('SELECT past_due_since FROM subscriptions WHERE id = $1', [subscriptionId]),
    );
    expect(rows[0]?.past_due_since).toBeInstanceOf(Date);
    // A failed payment keeps the plan in the grace period, and never upgrades anything.
    expect(await planOf(harness, person)).toBe('PRO');

    // Three days later (retries on days 1 and 3 failed): still in the 7-day grace.
    await advance(harness, 3 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'past_due' });
    expect(await planOf(harness, person)).toBe('PRO');

    // Day 10 (retries on days 7 and 9 failed): Stripe still retries, but the grace is over: FREE.
    await advance(harness, 7 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'past_due' });
    expect(await planOf(harness, person)).toBe('FREE');

    // Past Stripe's last retry (day 14): canceled, FREE, with the cancellation queued. (The plan
    // was already FREE from the 7-day grace; the next describe has a grace longer than the retries.)
    await advance(harness, 6 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'canceled' });
    expect(await planOf(harness, person)).toBe('FREE');
    const canceled = (await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.canceled');
    expect(canceled).toHaveLength(1);
    expect(canceled[0]).toMatchObject({ emails: ['subscription_canceled'], data: { reason: 'payment_failed' } });
    expect(await emailsTo(harness, person, 'subscription_canceled')).toHaveLength(1);
    expect(await accountRow(database(), person.accountId)).toMatchObject({ status: 'active', plan: 'FREE' });
    const planChanges = (await auditEvents(database(), 'account.updated')).filter((entry) => entry.account_id === person.accountId);
    expect(planChanges.map((entry) => (entry.metadata.changes as { plan: { to: string } }).plan.to)).toEqual(['PRO', 'FREE']);
  });
});

describe('a grace period longer than Stripe\'s retries (PAST_DUE_GRACE_DAYS=30, PAY-6)', () => {
  // Its own app: the grace is read from the environment at start, like the service's.
  let longGrace: BillingHarness;
  beforeAll(async () => {
    longGrace = await startBillingHarness({ BILLING_TRIAL_DAYS: 'PRO=0', PAST_DUE_GRACE_DAYS: '30' });
  });
  afterAll(async () => {
    await longGrace?.close();
  });

  it('keeps PRO while Stripe retries (well past 7 days), and only Stripe giving up after its last retry moves the account to FREE', async () => {
    expect(longGrace.testApp.config.billing.pastDueGraceDays).toBe(30);
    const db = longGrace.testApp.deps.database;
    const person = await newPerson(longGrace, 'longgrace');
    const { customerId, subscriptionId } = await subscribe(longGrace, person, { plan: 'PRO' });
    const swapped = await call(longGrace, 'POST', `/sandbox/customers/${customerId}/payment-method`, { body: { card: CARD_FAILS } });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    await settle(longGrace);

    // The first renewal fails: past_due, and the grace announced is the configured 30 days.
    await advance(longGrace, 31 * DAY);
    expect(await subscriptionOf(longGrace, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    const { rows } = await asSystem(db, (tx) => tx.query<{ past_due_since: Date }>('SELECT past_due_since FROM subscriptions WHERE id = $1', [subscriptionId]));
    const pastDueSince = rows[0]?.past_due_since as Date;
    expect(pastDueSince).toBeInstanceOf(Date);
    const pastDue = (await notificationsOf(db, person.accountId)).filter((n) => n.type === 'subscription.past_due');
    expect(pastDue).toHaveLength(1);
    expect(pastDue[0]?.data.graceEndsAt).toBe(new Date(pastDueSince.getTime() + 30 * DAY * 1000).toISOString());
    expect(await planOf(longGrace, person)).toBe('PRO');

    // Day 10 (retries on days 1, 3, 5, 7 and 9 failed, each with its webhook): a 7-day grace
    // would be over; this one is not.
    await advance(longGrace, 10 * DAY);
    expect(await subscriptionOf(longGrace, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    expect(await planOf(longGrace, person)).toBe('PRO');

    // Day 13 (the retry on day 11 failed too): Stripe has one try left, still PRO.
    await advance(longGrace, 3 * DAY);
    expect(await subscriptionOf(longGrace, person)).toMatchObject({ status: 'past_due', plan: 'PRO' });
    expect(await planOf(longGrace, person)).toBe('PRO');
    expect(await accountRow(db, person.accountId)).toMatchObject({ plan: 'PRO' });
    expect((await notificationsOf(db, person.accountId)).filter((n) => n.type === 'payment.failed').length).toBeGreaterThanOrEqual(7);

    // Day 15: the last retry (day 14) failed and Stripe canceled the subscription, 16 days inside
    // the grace. Its webhooks held back for a moment: Stripe has given up, but until we hear it
    // the account keeps PRO (nothing else ends this grace yet).
    longGrace.sandbox.setWebhookUrl(undefined);
    try {
      const moved = await call(longGrace, 'POST', '/sandbox/clock/advance', { body: { seconds: 2 * DAY } });
      expect(moved.status, JSON.stringify(moved.body)).toBe(200);
      const atStripe = await longGrace.testApp.deps.stripe.retrieveSubscription(subscriptionId);
      expect(atStripe).toMatchObject({ status: 'canceled', cancellation_details: { reason: 'payment_failed' } });
      expect(await planOf(longGrace, person)).toBe('PRO');
    } finally {
      longGrace.sandbox.setWebhookUrl(`${longGrace.url}/api/webhooks/stripe`);
    }
    // The webhooks arrive: FREE, with the subscription's status.
    await settle(longGrace);
    expect(await subscriptionOf(longGrace, person)).toMatchObject({ id: subscriptionId, status: 'canceled', plan: 'PRO' });
    expect(await planOf(longGrace, person)).toBe('FREE');
    const canceled = (await notificationsOf(db, person.accountId)).filter((n) => n.type === 'subscription.canceled');
    expect(canceled).toHaveLength(1);
    expect(canceled[0]).toMatchObject({ emails: ['subscription_canceled'], data: { reason: 'payment_failed', status: 'canceled' } });
    // The move to FREE came from a Stripe webhook (not the grace job), while the grace still had 16 days to run.
    const planChanges = (await auditEvents(db, 'account.updated')).filter((entry) => entry.account_id === person.accountId);
    expect(planChanges.map((entry) => (entry.metadata.changes as { plan: { to: string } }).plan.to)).toEqual(['PRO', 'FREE']);
    const downgrade = planChanges[1]?.metadata as { via: string; subscriptionId: string; eventId: string };
    expect(downgrade).toMatchObject({ via: 'stripe' });
    expect(downgrade.subscriptionId).toBe(subscriptionId);
    // The last attempt's invoice.payment_failed (its handler re-reads the subscription, canceled by then) or the subscription's deletion.
    expect(await inboxRow(db, downgrade.eventId)).toMatchObject({ status: 'processed', account_id: person.accountId, type: expect.stringMatching(/^(invoice\.payment_failed|customer\.subscription\.deleted)$/) });
    expect(longGrace.sandbox.core.globalNow() * 1000).toBeLessThan(pastDueSince.getTime() + 30 * DAY * 1000);
    expect(await accountRow(db, person.accountId)).toMatchObject({ status: 'active', plan: 'FREE' });
  });
});

describe('payments that need the customer (PAY-6)', () => {
  it('a renewal that needs authentication queues payment.action_required with its email and the hosted invoice link; the plan is kept', async () => {
    const person = await newPerson(harness, 'action');
    const { customerId } = await subscribe(harness, person, { plan: 'PRO' });
    const swapped = await call(harness, 'POST', `/sandbox/customers/${customerId}/payment-method`, { body: { card: '4000 0027 6000 3184' } });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    // No settle here: the card swap's own subscription.updated (of today) may arrive after the
    // renewal failed; re-reading the past_due state then must not date the grace back to today.
    await advance(harness, 31 * DAY);
    const action = (await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'payment.action_required');
    expect(action.length).toBeGreaterThanOrEqual(1);
    expect(action[0]).toMatchObject({ emails: ['payment_action_required'], data: { hostedInvoiceUrl: expect.stringMatching(/^http/), amountDue: 9900 } });
    // The email carries the hosted invoice link.
    const actionEmails = await emailsTo(harness, person, 'payment_action_required');
    expect(actionEmails.length).toBeGreaterThanOrEqual(1);
    expect(actionEmails[0]?.text).toContain(String(action[0]?.data.hostedInvoiceUrl));
    expect(await planOf(harness, person)).toBe('PRO');
  });
});

describe('cancel at the period end and resume (PAY-4)', () => {
  it('keeps PRO until the period ends, then FREE with status canceled, the account and its data intact, the emails queued', async () => {
    const person = await newPerson(harness, 'cancel');
    const { subscriptionId } = await subscribe(harness, person, { plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    const credits = await call(harness, 'GET', '/api/credits', { person });
    expect(credits.status).toBe(200);

    const canceled = await call(harness, 'POST', '/api/billing/cancel', { person });
    expect(canceled.status, JSON.stringify(canceled.body)).toBe(200);
    expect(canceled.body).toEqual({
      subscription: expect.objectContaining({ id: subscriptionId, status: 'active', cancelAtPeriodEnd: true, currentPeriodEnd: expect.any(String) }),
    });
    // Repeating it answers the same and sends nothing more to Stripe.
    const again = await call(harness, 'POST', '/api/billing/cancel', { person });
    expect(again.status).toBe(200);
    expect(again.body.subscription).toMatchObject({ cancelAtPeriodEnd: true, currentPeriodEnd: canceled.body.subscription.currentPeriodEnd });
    await settle(harness);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'active', cancelAtPeriodEnd: true, plan: 'PRO' });
    const scheduled = (await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.cancel_scheduled');
    expect(scheduled).toHaveLength(1);
    expect(scheduled[0]).toMatchObject({ emails: ['subscription_canceled'], data: { subscriptionId, endsAt: canceled.body.subscription.currentPeriodEnd } });
    expect((await auditEvents(database(), 'subscription.cancel_requested')).filter((entry) => entry.account_id === person.accountId)).toHaveLength(1);

    // Before the end: still PRO.
    await advance(harness, 10 * DAY);
    expect(await planOf(harness, person)).toBe('PRO');

    // After it: canceled, FREE; the account, its user, its credits are all still there.
    const periodEnd = new Date(canceled.body.subscription.currentPeriodEnd).getTime() / 1000;
    await advance(harness, Math.ceil(periodEnd - harness.sandbox.core.globalNow()) + DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'canceled', plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('FREE');
    const me = await call(harness, 'GET', '/auth/me', { person });
    expect(me.status).toBe(200);
    expect(me.body.account).toMatchObject({ id: person.accountId, status: 'active' });
    expect((await call(harness, 'GET', '/api/credits', { person })).body.balance).toBe(credits.body.balance);
    const ended = (await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.canceled');
    expect(ended).toHaveLength(1);
    expect(ended[0]?.emails).toEqual(['subscription_canceled']);
    // Two emails in the outbox: the cancellation scheduled, then the end of the subscription.
    expect(await emailsTo(harness, person, 'subscription_canceled')).toHaveLength(2);

    // Nothing left to cancel or resume.
    expect(await call(harness, 'POST', '/api/billing/cancel', { person })).toMatchObject({ status: 409, body: { error: { code: 'CONFLICT' } } });
    expect(await call(harness, 'POST', '/api/billing/resume', { person })).toMatchObject({ status: 409, body: { error: { code: 'CONFLICT' } } });
  });

  it('resume before the end keeps PRO through the renewal; resuming twice is a 409', async () => {
    const person = await newPerson(harness, 'resume');
    await subscribe(harness, person, { plan: 'PRO' });
    expect((await call(harness, 'POST', '/api/billing/cancel', { person })).status).toBe(200);
    await settle(harness);
    const resumed = await call(harness, 'POST', '/api/billing/resume', { person });
    expect(resumed.status, JSON.stringify(resumed.body)).toBe(200);
    expect(resumed.body.subscription).toMatchObject({ status: 'active', cancelAtPeriodEnd: false });
    const twice = await call(harness, 'POST', '/api/billing/resume', { person });
    expect(twice.status).toBe(409);
    expect(twice.body.error).toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/nothing to resume/) });
    await settle(harness);
    expect((await notificationsOf(database(), person.accountId)).map((n) => n.type)).toEqual(
      expect.arrayContaining(['subscription.activated', 'subscription.cancel_scheduled', 'subscription.resumed']),
    );
    await advance(harness, 35 * DAY);
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'active', cancelAtPeriodEnd: false, plan: 'PRO' });
    expect(await planOf(harness, person)).toBe('PRO');
    expect((await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.canceled')).toHaveLength(0);
  });

  it('with every event delivered twice and in reverse order: one notification per transition, the same end state', async () => {
    const person = await newPerson(harness, 'chaos');
    const mode = (body: Record<string, boolean>) => call(harness, 'POST', '/sandbox/webhooks/mode', { body });
    expect((await mode({ duplicate: true, outOfOrder: true })).status).toBe(200);
    try {
      await subscribe(harness, person, { plan: 'PRO' });
      expect(await planOf(harness, person)).toBe('PRO');
      expect((await call(harness, 'POST', '/api/billing/cancel', { person })).status).toBe(200);
      await settle(harness);
      await advance(harness, 40 * DAY);
    } finally {
      await mode({ duplicate: false, outOfOrder: false });
    }
    expect(await subscriptionOf(harness, person)).toMatchObject({ status: 'canceled' });
    expect(await planOf(harness, person)).toBe('FREE');
    const types = (await notificationsOf(database(), person.accountId)).map((n) => n.type);
    expect(types.filter((type) => type === 'subscription.activated')).toHaveLength(1);
    expect(types.filter((type) => type === 'subscription.cancel_scheduled')).toHaveLength(1);
    expect(types.filter((type) => type === 'subscription.canceled')).toHaveLength(1);
    expect(types.filter((type) => type === 'payment.succeeded')).toHaveLength(1);
  });

  it('answers 404 to cancel and resume without a subscription, and null for the subscription', async () => {
    const person = await newPerson(harness, 'nosub');
    expect(await subscriptionOf(harness, person)).toBeNull();
    const cancel = await call(harness, 'POST', '/api/billing/cancel', { person });
    expect(cancel).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND', message: 'The account has no subscription to cancel' } } });
    expect((await call(harness, 'POST', '/api/billing/resume', { person })).status).toBe(404);
    expect((await call(harness, 'POST', '/api/billing/cancel', { person, body: { now: true } })).status).toBe(400);
  });
});

describe('plan changes with proration (PAY-5)', () => {
  it('STARTER to PRO: the item price changes at Stripe, the plan follows by webhook, the next invoice carries the proration', async () => {
    const person = await newPerson(harness, 'upgrade');
    await subscribe(harness, person, { plan: 'STARTER' });
    expect(await planOf(harness, person)).toBe('STARTER');
    const same = await call(harness, 'POST', '/api/billing/change-plan', { person, body: { plan: 'STARTER' } });
    expect(same.status).toBe(409);
    const changed = await call(harness, 'POST', '/api/billing/change-plan', { person, body: { plan: 'PRO' } });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    expect(changed.body.subscription).toMatchObject({ status: 'active', plan: 'PRO' });
    await settle(harness);
    expect(await planOf(harness, person)).toBe('PRO');
    expect((await notificationsOf(database(), person.accountId)).filter((n) => n.type === 'subscription.updated')).toHaveLength(1);
    await advance(harness, 31 * DAY);
    const invoices = await paymentsOf(person.accountId);
    expect(invoices.map((invoice) => invoice.status)).toEqual(['succeeded', 'succeeded']);
    // PRO's 9900 plus the prorated difference for (almost) the whole first month: more than PRO alone, at most PRO + (PRO - STARTER).
    const renewal = invoices[1]?.amount_cents ?? 0;
    expect(renewal).toBeGreaterThan(9900);
    expect(renewal).toBeLessThanOrEqual(9900 + (9900 - 1900));
    expect(await planOf(harness, person)).toBe('PRO');
    const validation = await call(harness, 'POST', '/api/billing/change-plan', { person, body: { plan: 'FREE' } });
    expect(validation).toMatchObject({ status: 400, body: { error: { code: 'VALIDATION_FAILED', message: expect.stringMatching(/^plan: /) } } });
  });

  it('a plan checkout while a subscription is live is a 409 (change the plan instead)', async () => {
    const person = await newPerson(harness, 'twice');
    await subscribe(harness, person, { plan: 'STARTER' });
    const second = await call(harness, 'POST', '/api/billing/checkout', { person, body: { plan: 'PRO' } });
    expect(second.status).toBe(409);
    expect(await countRows(database(), `SELECT count(*)::int AS count FROM subscriptions WHERE account_id = $1`, [person.accountId])).toBe(1);
  });
});
