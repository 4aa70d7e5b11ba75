import Stripe from 'stripe';
import { describe, expect, it } from 'vitest';
import { AppError } from '../../../errors/app-error.js';
import { mergePayment, type PaymentValues } from './billing-state.repository.js';
import { decideCreditPackGrant } from './event-handlers/checkout.js';
import { referenceOf } from './event-handlers/index.js';
import { planIdOfPrice } from './stripe-conventions.js';
import { failureCode } from './webhook-processor.js';
import { signedTimestamp } from './webhook-verification.js';

const PACK = { id: 'pack_100', name: '100 credits', credits: 100, priceCents: 1000, currency: 'usd', updatedAt: '2026-01-01T00:00:00.000Z' };

describe('decideCreditPackGrant (WH-6)', () => {
  it('grants the pack only for exactly its price in its currency', () => {
    expect(decideCreditPackGrant(PACK, { amountTotal: 1000, currency: 'usd' })).toEqual({ grant: true, credits: 100 });
    expect(decideCreditPackGrant(PACK, { amountTotal: 1000, currency: 'USD' })).toEqual({ grant: true, credits: 100 });
    expect(decideCreditPackGrant(PACK, { amountTotal: 100, currency: 'usd' })).toEqual({ grant: false, reason: 'AMOUNT_MISMATCH' });
    expect(decideCreditPackGrant(PACK, { amountTotal: 1001, currency: 'usd' })).toEqual({ grant: false, reason: 'AMOUNT_MISMATCH' });
    expect(decideCreditPackGrant(PACK, { amountTotal: 1000.5, currency: 'usd' })).toEqual({ grant: false, reason: 'AMOUNT_MISMATCH' });
    expect(decideCreditPackGrant(PACK, { amountTotal: null, currency: 'usd' })).toEqual({ grant: false, reason: 'AMOUNT_MISMATCH' });
    expect(decideCreditPackGrant(PACK, { amountTotal: 1000, currency: 'eur' })).toEqual({ grant: false, reason: 'CURRENCY_MISMATCH' });
    expect(decideCreditPackGrant(PACK, { amountTotal: 1000, currency: null })).toEqual({ grant: false, reason: 'CURRENCY_MISMATCH' });
    expect(decideCreditPackGrant(undefined, { amountTotal: 1000, currency: 'usd' })).toEqual({ grant: false, reason: 'UNKNOWN_PACK' });
  });
});

describe('mergePayment (WH-5: a payment never moves backwards)', () => {
  const succeeded = mergePayment(undefined, { paymentIntentId: 'pi_1', chargeId: 'ch_2', amountCents: 1000, currency: 'USD', status: 'succeeded' });

  it('keeps a succeeded payment succeeded when a late failure of an earlier charge arrives', () => {
    const late = mergePayment(succeeded, { paymentIntentId: 'pi_1', chargeId: 'ch_1', amountCents: 1000, currency: 'usd', status: 'failed' });
    expect(late).toMatchObject({ status: 'succeeded', stripe_charge_id: 'ch_2', currency: 'usd', kind: 'charge' });
  });

  it('only ever raises the refunded amount, never beyond the amount', () => {
    const refunded = mergePayment(succeeded, { chargeId: 'ch_2', amountCents: 1000, currency: 'usd', status: 'succeeded', amountRefundedCents: 400 });
    expect(refunded.amount_refunded_cents).toBe(400);
    const stale: PaymentValues = mergePayment(refunded, { chargeId: 'ch_2', amountCents: 1000, currency: 'usd', status: 'succeeded', amountRefundedCents: 0 });
    expect(stale.amount_refunded_cents).toBe(400);
    expect(mergePayment(refunded, { chargeId: 'ch_2', amountCents: 1000, currency: 'usd', status: 'succeeded', amountRefundedCents: 5000 }).amount_refunded_cents).toBe(1000);
  });

  it('learns the kind and ids from later events and forgets none', () => {
    const pack = mergePayment(succeeded, { kind: 'credit_pack', checkoutSessionId: 'cs_1', creditPackId: 'pack_100', amountCents: 1000, currency: 'usd', status: 'succeeded' });
    expect(pack).toMatchObject({ kind: 'credit_pack', stripe_checkout_session_id: 'cs_1', stripe_payment_intent_id: 'pi_1', stripe_charge_id: 'ch_2', credit_pack_id: 'pack_100' });
    expect(mergePayment(pack, { chargeId: 'ch_2', amountCents: 1000, currency: 'usd', status: 'succeeded', disputedAt: new Date(0) })).toMatchObject({ kind: 'credit_pack', disputed_at: new Date(0) });
  });

  it('lets a pending or failed payment succeed later', () => {
    const failed = mergePayment(undefined, { paymentIntentId: 'pi_9', chargeId: 'ch_8', amountCents: 500, currency: 'usd', status: 'failed' });
    expect(mergePayment(failed, { paymentIntentId: 'pi_9', chargeId: 'ch_9', amountCents: 500, currency: 'usd', status: 'succeeded' })).toMatchObject({ status: 'succeeded', stripe_charge_id: 'ch_9' });
  });
});

describe('signature header and identifiers', () => {
  it('reads the last t= of a header, like the stripe library', () => {
    expect(signedTimestamp('t=100,v1=abc')).toBe(100);
    expect(signedTimestamp('v1=abc,t=100,t=200')).toBe(200);
    expect(signedTimestamp('v1=abc')).toBeUndefined();
    expect(signedTimestamp('t=soon,v1=abc')).toBeUndefined();
  });

  it('names failures by code only, never by message', () => {
    expect(failureCode(new Stripe.errors.StripeConnectionError({ message: 'connection to cus_secret dropped' }))).toBe('STRIPE_CONNECTION_ERROR');
    expect(failureCode(new AppError('NOT_FOUND', 'Not found'))).toBe('NOT_FOUND');
    expect(failureCode(Object.assign(new Error('duplicate key value (email)=(a@b.c)'), { code: '23505' }))).toBe('DATABASE_23505');
    expect(failureCode(new Error('something with personal data'))).toBe('HANDLER_ERROR');
  });

  it('recognises our plan prices by product id or metadata, nothing else', () => {
    const price = (product: string, metadata: Record<string, string> = {}) => ({ product, metadata }) as unknown as Stripe.Price;
    expect(planIdOfPrice(price('bulwark_plan_PRO'))).toBe('PRO');
    expect(planIdOfPrice(price('prod_other', { bulwark_plan: 'STARTER' }))).toBe('STARTER');
    expect(planIdOfPrice(price('prod_other'))).toBeNull();
    expect(planIdOfPrice(price('bulwark_plan_pro; DROP'))).toBeNull();
  });

  it('takes the account reference from the customer, or from the charge of a dispute', () => {
    const event = (object: Record<string, unknown>) => ({ data: { object } }) as unknown as Stripe.Event;
    expect(referenceOf(event({ object: 'charge', customer: 'cus_1' }))).toEqual({ customerId: 'cus_1', chargeId: null });
    expect(referenceOf(event({ object: 'subscription', customer: { id: 'cus_2' } }))).toEqual({ customerId: 'cus_2', chargeId: null });
    expect(referenceOf(event({ object: 'dispute', charge: 'ch_1' }))).toEqual({ customerId: null, chargeId: 'ch_1' });
    expect(referenceOf(event({ object: 'checkout.session', customer: null }))).toEqual({ customerId: null, chargeId: null });
  });
});
