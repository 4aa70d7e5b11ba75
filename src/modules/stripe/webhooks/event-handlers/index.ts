import type Stripe from 'stripe';
import { stripeIdOf } from '../stripe-conventions.js';
import { checkoutHandler } from './checkout.js';
import { chargeHandler, disputeHandler, invoiceHandler } from './payments.js';
import { subscriptionHandler } from './subscriptions.js';
import type { EventHandler, HandlerDependencies } from './types.js';

/** The handled event types (WH-9), each with its handler. Any other type is recorded as ignored. */
export function createEventHandlers(deps: HandlerDependencies): ReadonlyMap<string, EventHandler> {
  const checkout = checkoutHandler(deps);
  const subscription = subscriptionHandler(deps);
  const invoice = invoiceHandler(deps);
  const charge = chargeHandler(deps);
  return new Map<string, EventHandler>([
    ['checkout.session.completed', checkout],
    ['checkout.session.async_payment_succeeded', checkout],
    ['checkout.session.async_payment_failed', checkout],
    ['customer.subscription.created', subscription],
    ['customer.subscription.updated', subscription],
    ['customer.subscription.deleted', subscription],
    ['invoice.paid', invoice],
    ['invoice.payment_failed', invoice],
    ['invoice.payment_action_required', invoice],
    ['charge.succeeded', charge],
    ['charge.failed', charge],
    ['charge.refunded', charge],
    ['charge.dispute.created', disputeHandler(deps)],
  ]);
}

/** Who an event is about, read from the (verified) event itself: its Stripe customer, or for disputes its charge. */
export interface AccountReference {
  readonly customerId: string | null;
  readonly chargeId: string | null;
}

export function referenceOf(event: Stripe.Event): AccountReference {
  const object = event.data.object as { object?: string; customer?: string | { id: string } | null; charge?: string | { id: string } | null };
  if (object.object === 'dispute') return { customerId: null, chargeId: stripeIdOf(object.charge ?? null) };
  return { customerId: stripeIdOf(object.customer ?? null), chargeId: null };
}
