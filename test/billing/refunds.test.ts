import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { asSystem } from '../../src/platform/database/access.js';
import { auditEvents, countRows, eventOf, inboxRow, signatureFor } from '../webhooks/helpers.js';
import { asAdmin, buyPack, deliverOverHttp, grantRemaining, PACK, paymentBySession, setDeliveryMode, spend, spendAllBut, startBillingWorld, type BillingWorld } from './helpers.js';
import { call } from './lifecycle-helpers.js';

/**
 * PAY-7 end to end over real HTTP: a credit pack bought through POST /api/billing/checkout
 * and the sandbox's hosted page (the checkout webhook grants 100 credits), spent through
 * the credits API, refunded through POST /api/admin/refunds, the sandbox's signed
 * charge.refunded webhook taking back the unspent credits through the ledger.
 */

let world: BillingWorld;

beforeAll(async () => {
  world = await startBillingWorld();
});
afterAll(async () => {
  await world?.close();
});

async function refund(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  return asAdmin(world, 'POST', '/api/admin/refunds', { body, headers });
}

async function stripeRefundsOf(chargeId: string) {
  return (await world.testApp.deps.stripe.listRefunds({ charge: chargeId, limit: 100 })).data;
}

async function ledgerReversals(accountId: string): Promise<number[]> {
  const { rows } = await asSystem(world.testApp.deps.database, (tx) =>
    tx.query<{ amount: number }>(`SELECT amount FROM credit_ledger WHERE account_id = $1 AND kind = 'refund_reversal' ORDER BY id`, [accountId]),
  );
  return rows.map((row) => Number(row.amount));
}

describe('a full refund of a credit pack (PAY-7)', () => {
  it('takes back the 70 unspent of 100 credits, records the shortfall of 30, keeps the ledger identity, once however often it is asked or delivered', async () => {
    const { person, accountId, sessionId } = await buyPack(world);
    const bought = await paymentBySession(world, sessionId);
    expect(bought).toMatchObject({ status: 'succeeded', credits_granted: 100, amount_cents: PACK.priceCents });
    const grantId = bought?.credit_grant_id as string;
    // The account's own FREE credits (they expire first, so they would be spent first) go first; then 30 of the pack's.
    const allowance = await spendAllBut(world, person, grantId);
    expect((await call(world, 'GET', '/api/credits', { person })).body).toMatchObject({ balance: 100, held: 0 });
    await spend(world, person, 30);
    expect(await grantRemaining(world, grantId)).toBe(70);
    expect((await call(world, 'GET', '/api/credits', { person })).body).toMatchObject({ balance: 70, held: 0 });
    const spent = await call(world, 'GET', '/api/credits/ledger', { person });
    expect((spent.body.items as Array<{ kind: string; amount: number }>).filter((entry) => entry.kind === 'spend').map((entry) => entry.amount)).toEqual(allowance > 0 ? [-30, -allowance] : [-30]);

    // Every webhook of the refund delivered twice.
    await setDeliveryMode(world, { duplicate: true });
    let first;
    try {
      first = await refund({ paymentId: bought?.id, reason: 'requested_by_customer' });
      expect(first.status, JSON.stringify(first.body)).toBe(201);
      expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    } finally {
      await setDeliveryMode(world, { duplicate: false });
    }
    const answer = first.body.refund as { id: string; amount: number; full: boolean; status: string; stripeRefundId: string; paymentId: string };
    expect(answer).toMatchObject({ paymentId: bought?.id, amount: 1000, full: true, status: 'succeeded' });
    expect(answer.stripeRefundId).toMatch(/^re_/);

    const after = await paymentBySession(world, sessionId);
    expect(after).toMatchObject({ amount_refunded_cents: 1000, credits_reversed: 70, credits_reversal_shortfall: 30 });
    expect(await grantRemaining(world, grantId)).toBe(0);
    expect(await ledgerReversals(accountId)).toEqual([-70]);
    expect((await call(world, 'GET', '/api/credits', { person })).body).toMatchObject({ balance: 0, held: 0 });
    const verification = await verifyCreditLedger(world.testApp.deps.database, { accountId });
    expect(verification).toMatchObject({ valid: true, checked: 1 });

    // Audited: the operator's request (admin actor), the refund, the reversal with its shortfall.
    const { rows: requested } = await asSystem(world.testApp.deps.database, (tx) =>
      tx.query<{ actor_type: string; metadata: Record<string, unknown> }>(`SELECT actor_type, metadata FROM audit_log WHERE event = 'payment.refund_requested' AND subject_id = $1`, [bought?.id]),
    );
    expect(requested).toHaveLength(1);
    expect(requested[0]).toMatchObject({ actor_type: 'admin', metadata: { refundId: answer.id, amount: 1000, full: true, reason: 'requested_by_customer' } });
    expect((await auditEvents(world.testApp.deps.database, 'payment.refund_submitted')).filter((entry) => entry.account_id === accountId)).toHaveLength(1);
    expect((await auditEvents(world.testApp.deps.database, 'payment.refunded')).filter((entry) => entry.account_id === accountId)).toHaveLength(1);
    const reversed = (await auditEvents(world.testApp.deps.database, 'credits.refund_reversed')).filter((entry) => entry.account_id === accountId);
    expect(reversed).toHaveLength(1);
    expect(reversed[0]?.metadata).toMatchObject({ paymentId: bought?.id, target: 100, taken: 70, shortfall: 30, totalReversed: 70, totalShortfall: 30 });
    expect(await countRows(world.testApp.deps.database, `SELECT count(*) FROM notifications WHERE account_id = $1 AND type = 'payment.refunded'`, [accountId])).toBe(1);

    // The same request again (a retry without a key): the same refund, no second one at Stripe.
    const again = await refund({ paymentId: bought?.id, reason: 'requested_by_customer' });
    expect(again.status).toBe(201);
    expect(again.body.refund.id).toBe(answer.id);
    // Another request for the same payment: nothing is left to refund.
    const another = await refund({ paymentId: bought?.id, reason: 'duplicate' }, { 'idempotency-key': `other_${accountId}` });
    expect(another.status).toBe(409);
    expect(another.body.error.code).toBe('CONFLICT');
    expect(await stripeRefundsOf(after?.stripe_charge_id as string)).toHaveLength(1);

    // charge.refunded once more, as a new event (what a second Stripe event for the same refund would be): nothing more is taken.
    const events = await world.testApp.deps.stripe.listEvents({ type: 'charge.refunded', limit: 100 });
    const original = events.data.find((event) => (event.data.object as { id: string }).id === after?.stripe_charge_id);
    expect(original).toBeDefined();
    const copy = eventOf('charge.refunded', original?.data.object as unknown as Record<string, unknown>, { createdSeconds: Math.floor(Date.now() / 1000) });
    const payload = JSON.stringify(copy);
    const delivered = await deliverOverHttp(world, payload, signatureFor(payload, world.secret, Math.floor(Date.now() / 1000)));
    expect(delivered.status).toBe(200);
    expect(await inboxRow(world.testApp.deps.database, copy.id)).toMatchObject({ status: 'processed' });
    // And the original event id again: a duplicate.
    const originalPayload = JSON.stringify(original);
    const duplicate = await deliverOverHttp(world, originalPayload, signatureFor(originalPayload, world.secret, Math.floor(Date.now() / 1000)));
    expect(duplicate.body.outcome).toBe('duplicate');
    expect(await ledgerReversals(accountId)).toEqual([-70]);
    expect(await paymentBySession(world, sessionId)).toMatchObject({ credits_reversed: 70, credits_reversal_shortfall: 30 });
    expect((await verifyCreditLedger(world.testApp.deps.database)).valid).toBe(true);
  });

  it('answers a retried request with the same Idempotency-Key the same, and 422 for the key with another body', async () => {
    const { sessionId } = await buyPack(world);
    const payment = await paymentBySession(world, sessionId);
    const key = `retry_${payment?.id}`;
    const first = await refund({ paymentId: payment?.id, amount: 100, reason: 'Customer asked by phone' }, { 'idempotency-key': key });
    expect(first.status).toBe(201);
    const second = await refund({ paymentId: payment?.id, amount: 100, reason: 'Customer asked by phone' }, { 'idempotency-key': key });
    expect(second.status).toBe(201);
    expect(second.body).toEqual(first.body);
    const reused = await refund({ paymentId: payment?.id, amount: 200, reason: 'Customer asked by phone' }, { 'idempotency-key': key });
    expect(reused.status).toBe(422);
    expect(reused.body.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    const refunds = await stripeRefundsOf(payment?.stripe_charge_id as string);
    expect(refunds).toHaveLength(1);
    // Free text is ours only; Stripe gets no reason for it.
    expect(refunds[0]).toMatchObject({ amount: 100, reason: null });
  });
});

describe('partial refunds (PAY-7)', () => {
  it('take back credits in proportion, cumulatively, never more than the grant has left', async () => {
    const { person, accountId, sessionId } = await buyPack(world);
    const payment = await paymentBySession(world, sessionId);
    const grantId = payment?.credit_grant_id as string;
    await spendAllBut(world, person, grantId);
    await spend(world, person, 10);

    // 25% refunded: 25 credits back.
    expect((await refund({ paymentId: payment?.id, amount: 250, reason: 'requested_by_customer' })).status).toBe(201);
    expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    expect(await paymentBySession(world, sessionId)).toMatchObject({ amount_refunded_cents: 250, credits_reversed: 25, credits_reversal_shortfall: 0 });
    expect(await grantRemaining(world, grantId)).toBe(65);

    // 33.3% more (583 of 1000 in all): floor(58.3) = 58 in all, 33 more.
    expect((await refund({ paymentId: payment?.id, amount: 333, reason: 'requested_by_customer' })).status).toBe(201);
    expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    expect(await paymentBySession(world, sessionId)).toMatchObject({ amount_refunded_cents: 583, credits_reversed: 58, credits_reversal_shortfall: 0 });
    expect(await grantRemaining(world, grantId)).toBe(32);

    // The rest (no amount: a full refund of what is left, 417): all 100 due; 32 are left, 10 were spent.
    const rest = await refund({ paymentId: payment?.id, reason: 'requested_by_customer' });
    expect(rest.body.refund.amount).toBe(417);
    expect(await world.sandbox.delivery.settle(10_000)).toBe(true);
    expect(await paymentBySession(world, sessionId)).toMatchObject({ amount_refunded_cents: 1000, credits_reversed: 90, credits_reversal_shortfall: 10 });
    expect(await grantRemaining(world, grantId)).toBe(0);
    expect(await ledgerReversals(accountId)).toEqual([-25, -33, -32]);
    expect((await verifyCreditLedger(world.testApp.deps.database, { accountId })).valid).toBe(true);
    expect(await countRows(world.testApp.deps.database, `SELECT count(*) FROM notifications WHERE account_id = $1 AND type = 'payment.refunded'`, [accountId])).toBe(3);
  });
});

describe('refund request validation (HTTP-5)', () => {
  it.each([
    ['zero', 0],
    ['negative', -5],
    ['fractional', 1.5],
    ['a string', '100'],
    ['a boolean', true],
    ['too big for the payment', 1001],
  ])('refuses an amount that is %s with 400 naming the field, changing nothing', async (_label, amount) => {
    const { sessionId } = await buyPack(world);
    const payment = await paymentBySession(world, sessionId);
    const response = await refund({ paymentId: payment?.id, amount, reason: 'requested_by_customer' });
    expect(response.status).toBe(400);
    const { error } = response.body as { error: { code: string; message: string; details: Array<{ field: string }> } };
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.details[0]?.field).toBe('amount');
    expect(await countRows(world.testApp.deps.database, 'SELECT count(*) FROM refunds WHERE payment_id = $1', [payment?.id])).toBe(0);
    expect(await stripeRefundsOf(payment?.stripe_charge_id as string)).toHaveLength(0);
  });

  it('names a missing reason, an unknown property and a malformed payment id; 404 for an unknown payment; 401 without the admin token', async () => {
    const { sessionId } = await buyPack(world);
    const payment = await paymentBySession(world, sessionId);
    const fieldOf = async (body: Record<string, unknown>) => {
      const response = await refund(body);
      expect(response.status).toBe(400);
      return (response.body as { error: { details: Array<{ field: string }> } }).error.details[0]?.field;
    };
    expect(await fieldOf({ paymentId: payment?.id })).toBe('reason');
    expect(await fieldOf({ paymentId: payment?.id, reason: 'duplicate', extra: 1 })).toBe('extra');
    expect(await fieldOf({ paymentId: 'not a payment', reason: 'duplicate' })).toBe('paymentId');
    expect(await fieldOf({ paymentId: payment?.id, reason: '' })).toBe('reason');
    const unknown = await refund({ paymentId: 'pay_doesnotexist', reason: 'duplicate' });
    expect(unknown.status).toBe(404);
    const anonymous = await call(world, 'POST', '/api/admin/refunds', { body: { paymentId: payment?.id, reason: 'duplicate' } });
    expect(anonymous.status).toBe(401);
    expect(await countRows(world.testApp.deps.database, 'SELECT count(*) FROM refunds WHERE payment_id = $1', [payment?.id])).toBe(0);
  });
});

describe('disputes', () => {
  it('charge.dispute.created is recorded, queues payment.disputed and raises a critical alert once', async () => {
    const { accountId, sessionId } = await buyPack(world);
    const payment = await paymentBySession(world, sessionId);
    const dispute = eventOf(
      'charge.dispute.created',
      { id: `dp_test${Date.now()}`, object: 'dispute', charge: payment?.stripe_charge_id, amount: 1000, currency: 'usd', reason: 'fraudulent', status: 'needs_response' },
      { createdSeconds: Math.floor(Date.now() / 1000) },
    );
    const payload = JSON.stringify(dispute);
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const response = await deliverOverHttp(world, payload, signatureFor(payload, world.secret, Math.floor(Date.now() / 1000)));
      expect(response.status).toBe(200);
    }
    expect(await inboxRow(world.testApp.deps.database, dispute.id)).toMatchObject({ status: 'processed', account_id: accountId });
    expect(await countRows(world.testApp.deps.database, 'SELECT count(*) FROM payments WHERE id = $1 AND disputed_at IS NOT NULL', [payment?.id])).toBe(1);
    expect(await countRows(world.testApp.deps.database, `SELECT count(*) FROM notifications WHERE account_id = $1 AND type = 'payment.disputed'`, [accountId])).toBe(1);
    const alerts = world.testApp.logs.lines.filter((line) => line.includes('"alertKind":"payment_disputed"') && line.includes((dispute.data.object as { id: string }).id));
    expect(alerts).toHaveLength(1);
    expect(JSON.parse(alerts[0] as string)).toMatchObject({ level: 60, alert: true, severity: 'critical', paymentId: payment?.id });
  });
});
