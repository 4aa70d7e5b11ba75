import type Stripe from 'stripe';
import type { SandboxCore } from './core.js';
import { changedFields } from './core.js';
import { chargeObject, paymentIntentObject, paymentMethodObject, refundObject, type CardFacts, type Metadata } from './objects.js';
import { pageParams } from './resources.js';
import { invalidParam, invalidState, missingParam } from './sandbox-errors.js';
import { chargeAttempt, testCard, type CardAttempt, type CardBehaviour } from './test-cards.js';
import type { Params } from './wire-format.js';

/** Payment methods, payment intents, charges and refunds. */

function cardFacts(card: { brand: string; last4: string; funding?: string }, created: number): CardFacts {
  const year = new Date(created * 1000).getUTCFullYear();
  return { brand: card.brand, last4: card.last4, funding: card.funding ?? 'credit', expMonth: 12, expYear: year + 4 };
}

/** A card payment method from a test card number; only its behaviour and last four digits are kept. */
export function createCardPaymentMethod(
  core: SandboxCore,
  cardNumber: string,
  owner: { customer: string | null; email: string | null; name: string | null },
  param = 'card',
): Stripe.PaymentMethod {
  const card = testCard(cardNumber, param);
  const created = core.now(owner.customer);
  const method = paymentMethodObject({
    id: core.store.newId('payment_method'),
    created,
    customer: null,
    card: cardFacts(card, created),
    email: owner.email,
    name: owner.name,
  });
  core.store.insert('payment_method', method);
  core.store.data.internal.cards[method.id] = { behaviour: card.behaviour, last4: card.last4, brand: card.brand };
  if (owner.customer) attachPaymentMethod(core, method, owner.customer);
  return method;
}

export function attachPaymentMethod(core: SandboxCore, method: Stripe.PaymentMethod, customerId: string): void {
  if (method.customer === customerId) return;
  method.customer = customerId;
  core.emit('payment_method.attached', method, undefined, customerId);
}

export function cardBehaviour(core: SandboxCore, paymentMethodId: string): CardBehaviour {
  const card = core.store.data.internal.cards[paymentMethodId];
  if (!card) throw invalidParam('payment_method', `No such PaymentMethod: '${paymentMethodId}'`, 'resource_missing');
  return card.behaviour as CardBehaviour;
}

/** The payment method Stripe would charge for a subscription: the subscription's, then the customer's default. */
export function defaultPaymentMethod(core: SandboxCore, customerId: string, subscription?: Stripe.Subscription): string | null {
  const own = subscription?.default_payment_method;
  if (own) return typeof own === 'string' ? own : own.id;
  const customer = core.store.find<Stripe.Customer>('customer', customerId);
  const fallback = customer?.invoice_settings.default_payment_method;
  if (fallback) return typeof fallback === 'string' ? fallback : fallback.id;
  return null;
}

export interface PaymentAttempt {
  readonly outcome: CardAttempt['outcome'] | 'no_payment_method';
  readonly paymentIntent: Stripe.PaymentIntent;
  readonly charge: Stripe.Charge | null;
  readonly declineCode?: string;
  readonly message?: string;
}

export function newPaymentIntent(
  core: SandboxCore,
  input: { customer: string | null; amount: number; currency: string; description: string | null; metadata: Metadata; setupFutureUsage?: Stripe.PaymentIntent.SetupFutureUsage | null },
): Stripe.PaymentIntent {
  const intent = paymentIntentObject({
    id: core.store.newId('payment_intent'),
    created: core.now(input.customer),
    amount: input.amount,
    currency: input.currency,
    customer: input.customer,
    description: input.description,
    metadata: input.metadata,
    setupFutureUsage: input.setupFutureUsage ?? null,
  });
  core.store.insert('payment_intent', intent);
  core.emit('payment_intent.created', intent, undefined, input.customer);
  return intent;
}

/**
 * One attempt to pay a payment intent with a card, with the events Stripe sends: success
 * (charge.succeeded, payment_intent.succeeded), decline (charge.failed,
 * payment_intent.payment_failed) or authentication needed (payment_intent.requires_action).
 */
export function attemptPayment(
  core: SandboxCore,
  intent: Stripe.PaymentIntent,
  paymentMethodId: string | null,
  options: { onSession: boolean; email?: string | null; name?: string | null },
): PaymentAttempt {
  const customer = typeof intent.customer === 'string' ? intent.customer : (intent.customer?.id ?? null);
  if (intent.status === 'succeeded') throw invalidState('This PaymentIntent has already succeeded.');
  if (paymentMethodId === null) {
    intent.last_payment_error = {
      type: 'invalid_request_error',
      code: 'payment_method_missing',
      message: 'There is no payment method to charge.',
    } as Stripe.PaymentIntent.LastPaymentError;
    return { outcome: 'no_payment_method', paymentIntent: intent, charge: null, message: 'There is no payment method to charge.' };
  }
  const behaviour = cardBehaviour(core, paymentMethodId);
  const method = core.store.get<Stripe.PaymentMethod>('payment_method', paymentMethodId, 'payment_method');
  const attempt = chargeAttempt(behaviour, options.onSession);
  const before = structuredClone(intent);
  intent.payment_method = paymentMethodId;
  if (attempt.outcome === 'requires_action') {
    intent.status = 'requires_action';
    intent.next_action = { type: 'use_stripe_sdk', use_stripe_sdk: {} } as Stripe.PaymentIntent.NextAction;
    core.emit('payment_intent.requires_action', intent, changedFields(before, intent), customer);
    return { outcome: 'requires_action', paymentIntent: intent, charge: null };
  }
  const card = method.card;
  const created = core.now(customer);
  const succeeded = attempt.outcome === 'succeeded';
  const charge = chargeObject({
    id: core.store.newId('charge'),
    created,
    amount: intent.amount,
    currency: intent.currency,
    customer,
    description: intent.description,
    metadata: intent.metadata,
    paymentIntent: intent.id,
    paymentMethod: paymentMethodId,
    card: cardFacts({ brand: card?.brand ?? 'visa', last4: card?.last4 ?? '0000', funding: card?.funding ?? 'credit' }, created),
    email: options.email ?? method.billing_details.email,
    name: options.name ?? method.billing_details.name,
    outcome: succeeded
      ? { paid: true, failureCode: null, failureMessage: null, declineCode: null }
      : { paid: false, failureCode: 'card_declined', failureMessage: attempt.message ?? 'Your card was declined.', declineCode: attempt.declineCode ?? 'generic_decline' },
  });
  core.store.insert('charge', charge);
  intent.latest_charge = charge.id;
  intent.next_action = null;
  if (succeeded) {
    intent.status = 'succeeded';
    intent.amount_received = intent.amount;
    intent.last_payment_error = null;
    core.emit('charge.succeeded', charge, undefined, customer);
    core.emit('payment_intent.succeeded', intent, changedFields(before, intent), customer);
    return { outcome: 'succeeded', paymentIntent: intent, charge };
  }
  intent.status = 'requires_payment_method';
  intent.last_payment_error = {
    type: 'card_error',
    code: 'card_declined',
    decline_code: attempt.declineCode ?? 'generic_decline',
    message: attempt.message ?? 'Your card was declined.',
    charge: charge.id,
    payment_method: structuredClone(method),
  } as Stripe.PaymentIntent.LastPaymentError;
  core.emit('charge.failed', charge, undefined, customer);
  core.emit('payment_intent.payment_failed', intent, changedFields(before, intent), customer);
  return { outcome: 'declined', paymentIntent: intent, charge, declineCode: attempt.declineCode ?? 'generic_decline', message: attempt.message ?? 'Your card was declined.' };
}

// --- lists -------------------------------------------------------------------

export function listPaymentIntents(core: SandboxCore, params: Params) {
  const customer = params.string('customer');
  return core.store.page<Stripe.PaymentIntent>('payment_intent', '/v1/payment_intents', pageParams(params), (intent) => customer === undefined || intent.customer === customer);
}

export function listCharges(core: SandboxCore, params: Params) {
  const customer = params.string('customer');
  const paymentIntent = params.string('payment_intent');
  return core.store.page<Stripe.Charge>('charge', '/v1/charges', pageParams(params), (charge) =>
    (customer === undefined || charge.customer === customer) && (paymentIntent === undefined || charge.payment_intent === paymentIntent),
  );
}

export function listPaymentMethods(core: SandboxCore, params: Params) {
  const customer = params.string('customer');
  return core.store.page<Stripe.PaymentMethod>('payment_method', '/v1/payment_methods', pageParams(params), (method) => customer === undefined || method.customer === customer);
}

// --- refunds -----------------------------------------------------------------

const REFUND_REASONS = ['duplicate', 'fraudulent', 'requested_by_customer'] as const;

/** A full refund, or a partial one with `amount`; never more than what is left of the charge. */
export function createRefund(core: SandboxCore, params: Params): Stripe.Refund {
  const chargeId = params.string('charge');
  const intentId = params.string('payment_intent');
  if (chargeId === undefined && intentId === undefined) throw missingParam('charge');
  let charge: Stripe.Charge;
  if (chargeId !== undefined) {
    charge = core.store.get<Stripe.Charge>('charge', chargeId, 'charge');
  } else {
    const intent = core.store.get<Stripe.PaymentIntent>('payment_intent', intentId as string, 'payment_intent');
    const latest = typeof intent.latest_charge === 'string' ? intent.latest_charge : intent.latest_charge?.id;
    if (intent.status !== 'succeeded' || !latest) throw invalidState(`PaymentIntent ${intent.id} does not have a successful charge to refund.`, 'payment_intent');
    charge = core.store.get<Stripe.Charge>('charge', latest, 'payment_intent');
  }
  if (!charge.paid) throw invalidState(`Charge ${charge.id} has not succeeded; there is nothing to refund.`, 'charge');
  const remaining = charge.amount - charge.amount_refunded;
  if (remaining === 0) throw invalidState(`Charge ${charge.id} has already been refunded.`, 'charge');
  const amount = params.integer('amount', { min: 1, max: 99_999_999 }) ?? remaining;
  if (amount > remaining) {
    throw invalidParam('amount', `Refund amount (${amount}) is greater than unrefunded amount on charge (${remaining})`);
  }
  const customer = typeof charge.customer === 'string' ? charge.customer : (charge.customer?.id ?? null);
  const refund = refundObject({
    id: core.store.newId('refund'),
    created: core.now(customer),
    amount,
    currency: charge.currency,
    charge: charge.id,
    customer,
    paymentIntent: typeof charge.payment_intent === 'string' ? charge.payment_intent : (charge.payment_intent?.id ?? null),
    paymentMethod: charge.payment_method,
    reason: params.enumValue('reason', REFUND_REASONS) ?? null,
    metadata: params.metadata() ?? {},
  });
  core.store.insert('refund', refund);
  const before = structuredClone(charge);
  charge.amount_refunded += amount;
  charge.refunded = charge.amount_refunded === charge.amount;
  charge.refunds = { object: 'list', data: core.store.all<Stripe.Refund>('refund', (item) => item.charge === charge.id), has_more: false, url: `/v1/charges/${charge.id}/refunds` };
  core.emit('refund.created', refund, undefined, customer);
  core.emit('charge.refunded', charge, changedFields(before, charge), customer);
  return refund;
}

export function listRefunds(core: SandboxCore, params: Params) {
  const charge = params.string('charge');
  const paymentIntent = params.string('payment_intent');
  return core.store.page<Stripe.Refund>('refund', '/v1/refunds', pageParams(params), (refund) =>
    (charge === undefined || refund.charge === charge) && (paymentIntent === undefined || refund.payment_intent === paymentIntent),
  );
}
