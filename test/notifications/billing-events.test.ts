import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook } from '../../sdk/src/webhooks.js';
import { advance, call, CARD_FAILS, newPerson, settle, startBillingHarness, subscribe, type BillingHarness } from '../billing/lifecycle-helpers.js';
import { WebhookReceiver } from './helpers.js';

/**
 * OUT-1 end to end: real billing events (a sandbox checkout paid on the hosted page, a
 * renewal that fails) reach an endpoint the operator configured over HTTP, a real node
 * HTTP receiver, signed so that the documented verification accepts them.
 */

let harness: BillingHarness;
let hooks: WebhookReceiver;

beforeAll(async () => {
  harness = await startBillingHarness({ BILLING_TRIAL_DAYS: 'PRO=0' });
  hooks = await new WebhookReceiver([200]).start();
});
afterAll(async () => {
  await hooks?.close();
  await harness?.close();
});

interface Delivered {
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  readonly payload: { id: string; type: string; timestamp: string; data: Record<string, unknown> };
}

function deliveredTo(accountId: string): Delivered[] {
  return hooks.received
    .map((request) => ({ headers: request.headers, body: request.body, payload: JSON.parse(request.body) as Delivered['payload'] }))
    .filter((request) => request.payload.data.accountId === accountId);
}

describe('billing events to an outgoing webhook endpoint (OUT-1)', () => {
  it('subscription.activated after a sandbox checkout and payment.failed after a failing renewal arrive once each, validly signed', async () => {
    const admin = { authorization: `Bearer ${harness.testApp.config.secrets.adminApiToken}` };
    const created = await call(harness, 'POST', '/api/admin/webhook-endpoints', {
      headers: admin,
      body: { url: hooks.url, eventTypes: ['subscription.activated', 'payment.failed'] },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const secret = created.body.secret as string;

    const person = await newPerson(harness, 'outgoing');
    const { subscriptionId, customerId } = await subscribe(harness, person, { plan: 'PRO' });
    expect(await harness.testApp.deps.notifications.deliverDue()).toMatchObject({ retrying: 0, dead: 0 });
    const activated = deliveredTo(person.accountId);
    expect(activated.map((request) => request.payload.type)).toEqual(['subscription.activated']);
    const [first] = activated;
    expect(first?.payload).toMatchObject({ type: 'subscription.activated', data: { accountId: person.accountId, subscriptionId, plan: 'PRO', status: 'active' } });
    expect(first?.headers['webhook-id']).toBe(first?.payload.id);
    expect(await verifyWebhook(secret, first!.headers, first!.body)).toBe(true);
    expect(await verifyWebhook(secret, first!.headers, first!.body.replace(subscriptionId, 'sub_someoneelse'))).toBe(false);

    // The card fails from now on: the renewal at the period's end fails, payment.failed goes out too.
    const { currentPeriodEnd } = (await call(harness, 'GET', '/api/billing/subscription', { person })).body.subscription as { currentPeriodEnd: string };
    const swapped = await call(harness, 'POST', `/sandbox/customers/${customerId}/payment-method`, { body: { card: CARD_FAILS } });
    expect(swapped.status, JSON.stringify(swapped.body)).toBe(200);
    await settle(harness);
    // An hour past the period's end: the renewal's attempt, not yet Stripe's first retry (a day later).
    await advance(harness, Math.ceil(new Date(currentPeriodEnd).getTime() / 1000 - harness.sandbox.core.globalNow()) + 3600);
    await harness.testApp.deps.notifications.deliverDue();
    const all = deliveredTo(person.accountId);
    expect(all.map((request) => request.payload.type)).toEqual(['subscription.activated', 'payment.failed']);
    const failed = all[1]!;
    expect(failed.payload.data).toMatchObject({ accountId: person.accountId, subscriptionId, amountDue: 9900, currency: 'usd' });
    expect(await verifyWebhook(secret, failed.headers, failed.body)).toBe(true);
    // Each event once: a later run of the worker sends nothing more.
    await harness.testApp.deps.notifications.deliverDue();
    expect(deliveredTo(person.accountId)).toHaveLength(2);
  });
});
