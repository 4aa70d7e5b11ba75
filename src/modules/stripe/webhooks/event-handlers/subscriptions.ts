import Stripe from 'stripe';
import { updateAccount } from '../../../accounts/accounts.repository.js';
import { recordAudit } from '../../../audit/audit.service.js';
import { FALLBACK_PLAN_ID } from '../../../plans/plan-features.js';
import { entitledPlanOf, findSubscription, saveSubscription, type SubscriptionState, type SubscriptionStatus } from '../billing-state.repository.js';
import { lockStripeObject } from '../inbox.repository.js';
import { planIdOfPrice, stripeIdOf } from '../stripe-conventions.js';
import { ignored, processed, refused, type EventHandler, type HandlerDependencies, type HandlerResult } from './types.js';

/**
 * customer.subscription.created / updated / deleted (PAY-3, WH-5): the subscription is
 * locked (an advisory lock on its id), then re-fetched from Stripe, then stored; the
 * account's plan follows from all of its stored subscriptions (entitledPlanOf), FREE when
 * none is active, trialing or past_due. Because every handler of one subscription fetches
 * under the same lock, a state fetched earlier can never be written after one fetched
 * later, whatever order the events arrive in; and since each handler applies Stripe's
 * current state, not the event's, a late `updated (active)` after `deleted` re-reads the
 * canceled subscription and leaves the account on FREE.
 */

const SUBSCRIPTION_STATUSES: ReadonlySet<string> = new Set<SubscriptionStatus>([
  'incomplete',
  'incomplete_expired',
  'trialing',
  'active',
  'past_due',
  'canceled',
  'unpaid',
  'paused',
]);

const seconds = (value: number | null | undefined): Date | null => (value === null || value === undefined ? null : new Date(value * 1000));

async function fetchSubscription(deps: HandlerDependencies, fromEvent: Stripe.Subscription, eventType: string): Promise<Stripe.Subscription | undefined> {
  try {
    return await deps.stripe.retrieveSubscription(fromEvent.id);
  } catch (error) {
    if (!(error instanceof Stripe.errors.StripeInvalidRequestError) || error.code !== 'resource_missing') throw error;
    // Gone at Stripe (a deleted test customer, say): only an ending can still be trusted.
    return eventType === 'customer.subscription.deleted' ? fromEvent : undefined;
  }
}

export function subscriptionHandler(deps: HandlerDependencies): EventHandler {
  return {
    family: 'subscription',
    async handle({ tx, event, accountId, customerId, now }): Promise<HandlerResult> {
      const fromEvent = event.data.object as Stripe.Subscription;
      await lockStripeObject(tx, fromEvent.id);
      const subscription = await fetchSubscription(deps, fromEvent, event.type);
      if (!subscription) return ignored('STRIPE_OBJECT_MISSING');
      const stripeCustomerId = stripeIdOf(subscription.customer);
      if (stripeCustomerId === null || stripeCustomerId !== customerId) return refused('CUSTOMER_MISMATCH');
      if (!SUBSCRIPTION_STATUSES.has(subscription.status)) return ignored('UNKNOWN_STATUS');
      const item = subscription.items.data[0];
      const candidate = item ? planIdOfPrice(item.price) : null;
      const planId = candidate !== null && (await deps.catalogue.hasPlan(tx, candidate)) ? candidate : null;
      const state: SubscriptionState = {
        id: subscription.id,
        stripe_customer_id: stripeCustomerId,
        status: subscription.status as SubscriptionStatus,
        plan_id: planId,
        stripe_price_id: item?.price.id ?? null,
        current_period_start: seconds(item?.current_period_start),
        current_period_end: seconds(item?.current_period_end),
        cancel_at_period_end: subscription.cancel_at_period_end,
        cancel_at: seconds(subscription.cancel_at),
        canceled_at: seconds(subscription.canceled_at),
        ended_at: seconds(subscription.ended_at),
        trial_end: seconds(subscription.trial_end),
        stripe_created_at: new Date(subscription.created * 1000),
        last_event_id: event.id,
        last_event_created_at: new Date(event.created * 1000),
      };
      const before = await findSubscription(tx, subscription.id);
      const saved = await saveSubscription(tx, accountId, state, now);
      if (!saved) return processed('OLDER_STATE');

      const { rows } = await tx.query<{ plan: string }>('SELECT plan FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
      const currentPlan = rows[0]?.plan;
      if (currentPlan === undefined) return ignored('UNKNOWN_ACCOUNT');
      const plan = (await entitledPlanOf(tx, accountId)) ?? FALLBACK_PLAN_ID;
      if (plan !== currentPlan) await updateAccount(tx, accountId, { plan }, now);

      // Audit entries last (the chain lock is held to commit).
      if (!before || before.status !== saved.status || before.plan_id !== saved.plan_id || before.cancel_at_period_end !== saved.cancel_at_period_end) {
        await recordAudit(
          tx,
          {
            event: before ? 'subscription.updated' : 'subscription.created',
            actorType: 'system',
            subjectType: 'subscription',
            subjectId: subscription.id,
            accountId,
            metadata: {
              eventId: event.id,
              status: { from: before?.status ?? null, to: saved.status },
              plan: { from: before?.plan_id ?? null, to: saved.plan_id },
              cancelAtPeriodEnd: saved.cancel_at_period_end,
            },
          },
          deps.clock,
        );
      }
      if (plan !== currentPlan) {
        await recordAudit(
          tx,
          {
            event: 'account.updated',
            actorType: 'system',
            subjectType: 'account',
            subjectId: accountId,
            accountId,
            metadata: { changes: { plan: { from: currentPlan, to: plan } }, via: 'stripe', subscriptionId: subscription.id, eventId: event.id },
          },
          deps.clock,
        );
      }
      return processed();
    },
  };
}
