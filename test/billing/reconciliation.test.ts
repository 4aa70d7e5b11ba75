import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { asSystem } from '../../src/platform/database/access.js';
import { auditEvents, countRows, purchasedCredits } from '../webhooks/helpers.js';
import { asAdmin, buyPack, checkout, PACK, paymentBySession, payOnly, startBillingWorld, type BillingWorld } from './helpers.js';
import { call, newPerson, subscribe } from './lifecycle-helpers.js';

/**
 * PAY-8 end to end over real HTTP: purchases through POST /api/billing/checkout and the
 * sandbox's hosted page; drift between the local billing state and the sandbox is made on
 * purpose by holding the sandbox's webhooks back (no webhook URL): a subscription
 * canceled at Stripe whose webhook never reached us, and a credit pack bought whose
 * payment (and grant) is missing locally. POST /api/admin/reconciliation/run reports both,
 * repairs both from Stripe through the webhook handlers, audits and alerts; a second run
 * finds nothing; the held webhooks delivered afterwards change nothing more.
 */

interface Report {
  id: string;
  trigger: string;
  status: string;
  customersChecked: number;
  discrepancies: number;
  repaired: number;
  failed: number;
  summary: Record<string, number>;
  items: Array<{ kind: string; objectType: string; objectId: string; accountId: string; resolution: string; local: Record<string, unknown> | null; stripe: Record<string, unknown> | null }>;
}

let world: BillingWorld;

beforeAll(async () => {
  // No trial: the subscription is active (and charged) at checkout.
  world = await startBillingWorld({ BILLING_TRIAL_DAYS: 'PRO=0' });
});
afterAll(async () => {
  await world?.close();
});

async function runNow() {
  return asAdmin(world, 'POST', '/api/admin/reconciliation/run');
}

async function accountState(accountId: string) {
  const { rows } = await asSystem(world.testApp.deps.database, (tx) =>
    tx.query<{ plan: string; status: string | null }>(
      `SELECT a.plan, (SELECT s.status FROM subscriptions s WHERE s.account_id = a.id ORDER BY s.created_at DESC LIMIT 1) AS status FROM accounts a WHERE a.id = $1`,
      [accountId],
    ),
  );
  return rows[0];
}

describe('reconciliation with Stripe (PAY-8)', () => {
  it('reports and repairs a subscription canceled at Stripe and a purchase missing locally; a second run finds nothing', async () => {
    const { stripe } = world.testApp.deps;
    // A PRO subscriber through the checkout route, with every webhook delivered: in step with Stripe.
    const subscriber = await newPerson(world, 'reconciled');
    const { subscriptionId } = await subscribe(world, subscriber, { plan: 'PRO' });
    expect(await accountState(subscriber.accountId)).toEqual({ plan: 'PRO', status: 'active' });

    // Drift: the webhooks stop reaching us. A credit pack is bought through the route and paid
    // on the hosted page; the subscription is canceled at Stripe (the dashboard, say).
    world.sandbox.setWebhookUrl(undefined);
    const buyer = await newPerson(world, 'unrecorded');
    const purchase = { id: await checkout(world, buyer, { creditPack: PACK.id }) };
    await payOnly(world, purchase.id);
    await stripe.cancelSubscription(`cancel_${subscriptionId}`, subscriptionId);
    expect(await paymentBySession(world, purchase.id)).toBeUndefined();
    expect(await accountState(subscriber.accountId)).toEqual({ plan: 'PRO', status: 'active' });

    const first = await runNow();
    expect(first.status).toBe(200);
    const report = first.body as Report;
    expect(report).toMatchObject({ trigger: 'admin', status: 'succeeded', customersChecked: 2, discrepancies: 2, repaired: 2, failed: 0 });
    expect(report.summary).toEqual({ payment_missing: 1, subscription_mismatch: 1 });
    const canceled = report.items.find((item) => item.kind === 'subscription_mismatch');
    expect(canceled).toMatchObject({
      objectType: 'subscription',
      objectId: subscriptionId,
      accountId: subscriber.accountId,
      resolution: 'repaired',
      local: { status: 'active', planId: 'PRO' },
      stripe: { status: 'canceled', planId: 'PRO' },
    });
    const missing = report.items.find((item) => item.kind === 'payment_missing');
    expect(missing).toMatchObject({ objectType: 'checkout_session', objectId: purchase.id, accountId: buyer.accountId, resolution: 'repaired', local: null, stripe: { amountTotal: 1000, packId: PACK.id } });

    // Repaired from Stripe: the account is back on FREE, the payment exists with its one grant.
    expect(await accountState(subscriber.accountId)).toEqual({ plan: 'FREE', status: 'canceled' });
    expect(await paymentBySession(world, purchase.id)).toMatchObject({ status: 'succeeded', amount_cents: 1000, credits_granted: 100 });
    expect(await purchasedCredits(world.testApp.deps.database, buyer.accountId)).toEqual([100]);
    expect((await verifyCreditLedger(world.testApp.deps.database)).valid).toBe(true);

    // Audited, each repair once, and alerted at critical level.
    const repairs = (await auditEvents(world.testApp.deps.database, 'reconciliation.repaired')).filter((entry) => entry.metadata.runId === report.id);
    expect(repairs.map((entry) => entry.metadata.kind).sort()).toEqual(['payment_missing', 'subscription_mismatch']);
    expect(repairs.find((entry) => entry.metadata.kind === 'subscription_mismatch')?.account_id).toBe(subscriber.accountId);
    const planChanges = (await auditEvents(world.testApp.deps.database, 'account.updated')).filter((entry) => entry.account_id === subscriber.accountId);
    expect(planChanges.at(-1)?.metadata).toMatchObject({ changes: { plan: { from: 'PRO', to: 'FREE' } } });
    const alerts = world.testApp.logs.lines.filter((line) => line.includes('"alertKind":"reconciliation_discrepancy"') && line.includes(report.id));
    expect(alerts).toHaveLength(1);
    expect(JSON.parse(alerts[0] as string)).toMatchObject({ level: 60, severity: 'critical', discrepancies: 2, repaired: 2 });

    // A second run: nothing left to repair, no alert.
    const second = (await runNow()).body as Report;
    expect(second).toMatchObject({ status: 'succeeded', discrepancies: 0, repaired: 0, items: [], summary: {} });
    expect(world.testApp.logs.lines.filter((line) => line.includes('"alertKind":"reconciliation_discrepancy"') && line.includes(second.id))).toHaveLength(0);

    // The held webhooks, delivered late, change nothing more: the grant stays one.
    world.sandbox.setWebhookUrl(`${world.appUrl}/api/webhooks/stripe`);
    expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    expect(await purchasedCredits(world.testApp.deps.database, buyer.accountId)).toEqual([100]);
    expect(await accountState(subscriber.accountId)).toEqual({ plan: 'FREE', status: 'canceled' });
    expect(((await runNow()).body as Report).discrepancies).toBe(0);

    // The reports, newest first, paginated.
    const list = await asAdmin(world, 'GET', '/api/admin/reconciliation?limit=2');
    expect(list.status).toBe(200);
    const page = list.body as { items: Report[]; nextCursor: string | null };
    expect(page.items).toHaveLength(2);
    expect(page.items[1]?.id).toBe(second.id);
    expect(page.nextCursor).toBe(second.id);
    const next = (await asAdmin(world, 'GET', `/api/admin/reconciliation?limit=2&cursor=${page.nextCursor}`)).body as { items: Report[]; nextCursor: string | null };
    expect(next.items.map((item) => item.id)).toEqual([report.id]);
    expect(next.items[0]?.items).toHaveLength(2);
    expect(next.nextCursor).toBeNull();
  });

  it('repairs a refund Stripe made without its webhook reaching us, taking back the credits once', async () => {
    const { stripe } = world.testApp.deps;
    const buyer = await buyPack(world, 'dashboardrefund');
    const purchase = { id: buyer.sessionId };
    const payment = await paymentBySession(world, purchase.id);
    expect(payment?.credits_granted).toBe(100);
    world.sandbox.setWebhookUrl(undefined);
    try {
      // A refund made at Stripe directly (the dashboard, say): half of the payment.
      await stripe.createRefund(`dashboard_${buyer.accountId}`, { payment_intent: payment?.stripe_payment_intent_id as string, amount: 500 });
      const report = (await runNow()).body as Report;
      expect(report).toMatchObject({ discrepancies: 1, repaired: 1 });
      expect(report.items[0]).toMatchObject({ kind: 'refund_missing', local: { amountRefunded: 0 }, stripe: { amountRefunded: 500 } });
      expect(await paymentBySession(world, purchase.id)).toMatchObject({ amount_refunded_cents: 500, credits_reversed: 50, credits_reversal_shortfall: 0 });
      expect(((await runNow()).body as Report).discrepancies).toBe(0);
    } finally {
      world.sandbox.setWebhookUrl(`${world.appUrl}/api/webhooks/stripe`);
    }
    expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    expect(await paymentBySession(world, purchase.id)).toMatchObject({ amount_refunded_cents: 500, credits_reversed: 50 });
    expect((await verifyCreditLedger(world.testApp.deps.database)).valid).toBe(true);
  });

  it('runs one reconciliation at a time (409) and as the scheduled job billing.reconciliation', async () => {
    const { database, scheduler } = world.testApp.deps;
    expect(scheduler.registeredJobs).toContain('billing.reconciliation');
    await asSystem(database, (tx) => tx.query(`INSERT INTO reconciliation_runs (id, trigger, status, started_at) VALUES ('rcn_heldforthetest', 'cli', 'running', now())`));
    const busy = await runNow();
    expect(busy.status).toBe(409);
    await asSystem(database, (tx) => tx.query(`UPDATE reconciliation_runs SET status = 'failed', finished_at = now() WHERE id = 'rcn_heldforthetest'`));

    const outcomes = await scheduler.tick();
    expect(outcomes['billing.reconciliation']).toBe('ran');
    expect(await countRows(database, `SELECT count(*) FROM reconciliation_runs WHERE trigger = 'schedule' AND status = 'succeeded'`)).toBe(1);
    // Once per slot: the next tick within the day does not run it again.
    expect((await scheduler.tick())['billing.reconciliation']).toBe('not-due');
  });

  it('is for operators only', async () => {
    expect((await call(world, 'GET', '/api/admin/reconciliation')).status).toBe(401);
    expect((await call(world, 'POST', '/api/admin/reconciliation/run')).status).toBe(401);
    const bad = await asAdmin(world, 'GET', '/api/admin/reconciliation?cursor=nope');
    expect(bad.status).toBe(400);
    // The dashboard posts an empty JSON object; anything in it is refused.
    const emptyBody = await asAdmin(world, 'POST', '/api/admin/reconciliation/run', { body: {} });
    expect(emptyBody.status).toBe(200);
    const junk = await asAdmin(world, 'POST', '/api/admin/reconciliation/run', { body: { all: true } });
    expect(junk.status).toBe(400);
    expect((junk.body as { error: { details: Array<{ field: string }> } }).error.details[0]?.field).toBe('all');
  });
});
