import Stripe from 'stripe';
import { updateAccount } from '../../../accounts/accounts.repository.js';
import { recordAudit } from '../../../audit/audit.service.js';
import { FALLBACK_PLAN_ID } from '../../../plans/plan-features.js';
import {
  ENTITLED_STATUSES,
  entitledPlanOf,
  findSubscription,
  markLifecycle,
  saveSubscription,
  type SubscriptionRow,
  type SubscriptionState,
  type SubscriptionStatus,
} from '../billing-state.repository.js';
import { lockStripeObject } from '../inbox.repository.js';
import { planIdOfPrice, stripeIdOf } from '../stripe-conventions.js';
import { ignored, processed, refused, type EventHandler, type HandlerContext, type HandlerDependencies, type HandlerResult } from './types.js';

/**
 * customer.subscription.created / updated / deleted (PAY-3, WH-5): the subscription is
 * locked (an advisory lock on its id), then re-fetched from Stripe, then stored; the
 * account's plan follows from all of its stored subscriptions (entitledPlanOf), FREE when
 * none is active, trialing or past_due. Because every handler of one subscription fetches
 * under the same lock, a state fetched earlier can never be written after one fetched
 * later, whatever order the events arrive in; and since each handler applies Stripe's
 * current state, not the event's, a late `updated (active)` after `deleted` re-reads the
 * canceled subscription and leaves the account on FREE.
 *
 * The lifecycle (PAY-4..6) follows from the stored state before and after: the first
 * active/trialing state emits subscription.activated; cancel_at_period_end turning on
 * emits subscription.cancel_scheduled (with the subscription_canceled email), turning off
 * subscription.resumed; the end emits subscription.canceled (with the email); entering
 * past_due starts the grace period (past_due_since, Stripe's time) and emits
 * subscription.past_due. A past_due subscription keeps its plan until the grace period
 * is over (entitledPlanOf with the grace), then the account is on FREE; the billing
 * module's past-due job applies the end of a grace period no event arrives for.
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

async function fetchSubscription(deps: HandlerDependencies, fromEvent: Pick<Stripe.Subscription, 'id'>, eventType: string): Promise<Stripe.Subscription | undefined> {
  try {
    return await deps.stripe.retrieveSubscription(fromEvent.id);
  } catch (error) {
    if (!(error instanceof Stripe.errors.StripeInvalidRequestError) || error.code !== 'resource_missing') throw error;
    // Gone at Stripe (a deleted test customer, say): only an ending can still be trusted.
    return eventType === 'customer.subscription.deleted' && 'object' in fromEvent ? (fromEvent as Stripe.Subscription) : undefined;
  }
}

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

/** Stripe's time as far as we know it: the event's, or ours when that is later (PAY-6 grace). */
export function stripeTimeOf(event: Stripe.Event, now: Date): Date {
  return new Date(Math.max(now.getTime(), event.created * 1000));
}

/**
 * The account's plan from its subscriptions (with the past_due grace), locked and updated
 * when it changed. Answers the change (audit it with auditPlanChange, last), or null when
 * the plan stays, or undefined when the account does not exist.
 */
export async function applyEntitledPlan(
  deps: Pick<HandlerDependencies, 'pastDueGraceDays'>,
  tx: HandlerContext['tx'],
  accountId: string,
  at: Date,
  now: Date,
): Promise<{ from: string; to: string } | null | undefined> {
  const { rows } = await tx.query<{ plan: string }>('SELECT plan FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
  const currentPlan = rows[0]?.plan;
  if (currentPlan === undefined) return undefined;
  const plan = (await entitledPlanOf(tx, accountId, { at, pastDueGraceMs: deps.pastDueGraceDays * 86_400_000 })) ?? FALLBACK_PLAN_ID;
  if (plan === currentPlan) return null;
  await updateAccount(tx, accountId, { plan }, now);
  return { from: currentPlan, to: plan };
}

/** The audit entry of a plan change made by applyEntitledPlan. */
export async function auditPlanChange(
  deps: Pick<HandlerDependencies, 'clock'>,
  tx: HandlerContext['tx'],
  accountId: string,
  change: { from: string; to: string },
  cause: Readonly<Record<string, string | null>>,
): Promise<void> {
  await recordAudit(
    tx,
    {
      event: 'account.updated',
      actorType: 'system',
      subjectType: 'account',
      subjectId: accountId,
      accountId,
      metadata: { changes: { plan: { from: change.from, to: change.to } }, via: 'stripe', ...cause },
    },
    deps.clock,
  );
}

/** What the notifications say about a subscription: ids, plan, status and dates only. */
function subscriptionData(row: SubscriptionRow, extra: Readonly<Record<string, string | number | boolean | null>> = {}) {
  return {
    subscriptionId: row.id,
    plan: row.plan_id,
    status: row.status,
    currentPeriodEnd: iso(row.current_period_end),
    cancelAtPeriodEnd: row.cancel_at_period_end,
    trialEnd: iso(row.trial_end),
    ...extra,
  };
}

/**
 * Re-fetches one subscription under its lock and stores it, then applies the lifecycle
 * (notifications, grace) and the account's plan. Shared by the subscription events and the
 * invoice events (a failed payment moves the subscription to past_due at Stripe). Its
 * audit entries are left to `audit()`, which the caller runs after its own last write.
 */
export async function syncSubscription(
  deps: HandlerDependencies,
  context: HandlerContext,
  reference: Pick<Stripe.Subscription, 'id'> | Stripe.Subscription,
): Promise<{ readonly result: HandlerResult; audit(): Promise<void> }> {
  const audits: Array<() => Promise<void>> = [];
  const result = await sync(deps, context, reference, audits);
  return {
    result,
    async audit() {
      for (const entry of audits) await entry();
    },
  };
}

async function sync(
  deps: HandlerDependencies,
  context: HandlerContext,
  reference: Pick<Stripe.Subscription, 'id'> | Stripe.Subscription,
  audits: Array<() => Promise<void>>,
): Promise<HandlerResult> {
  const { tx, event, accountId, customerId, now } = context;
  await lockStripeObject(tx, reference.id);
  const subscription = await fetchSubscription(deps, reference, event.type);
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
  // When a past_due spell began: not before the event, nor before the current period (a
  // failed renewal is at its start); a late event re-reading today's past_due state must
  // not date the spell back to its own time.
  const since = new Date(Math.max(event.created, item?.current_period_start ?? 0) * 1000);
  const marked = await markLifecycle(tx, subscription.id, since);
  const row = marked?.row ?? saved;

  // Notifications, queued in this transaction (MAIL-1, OUT-1).
  const ended = (status: string | undefined) => status === 'canceled' || status === 'incomplete_expired';
  if (marked?.activated) {
    await deps.notifier.emit(tx, { type: 'subscription.activated', accountId, data: subscriptionData(row) });
  }
  if (before && !ended(row.status)) {
    if (!before.cancel_at_period_end && row.cancel_at_period_end) {
      await deps.notifier.emit(tx, {
        type: 'subscription.cancel_scheduled',
        accountId,
        data: subscriptionData(row, { endsAt: iso(row.cancel_at ?? row.current_period_end) }),
        email: { template: 'subscription_canceled' },
      });
    } else if (before.cancel_at_period_end && !row.cancel_at_period_end) {
      await deps.notifier.emit(tx, { type: 'subscription.resumed', accountId, data: subscriptionData(row) });
    }
    if (before.plan_id !== row.plan_id && before.plan_id !== null) {
      await deps.notifier.emit(tx, { type: 'subscription.updated', accountId, data: subscriptionData(row, { previousPlan: before.plan_id }) });
    }
  }
  if (row.status === 'past_due' && before?.status !== 'past_due') {
    const graceEndsAt = row.past_due_since ? new Date(row.past_due_since.getTime() + deps.pastDueGraceDays * 86_400_000) : null;
    await deps.notifier.emit(tx, { type: 'subscription.past_due', accountId, data: subscriptionData(row, { graceEndsAt: iso(graceEndsAt) }) });
  }
  if (ended(row.status) && before !== undefined && !ended(before.status) && (before.activated_at !== null || ENTITLED_STATUSES.includes(before.status))) {
    await deps.notifier.emit(tx, {
      type: 'subscription.canceled',
      accountId,
      data: subscriptionData(row, { endedAt: iso(row.ended_at ?? row.canceled_at), reason: subscription.cancellation_details?.reason ?? null }),
      email: { template: 'subscription_canceled' },
    });
  }

  const change = await applyEntitledPlan(deps, tx, accountId, stripeTimeOf(event, now), now);
  if (change === undefined) return ignored('UNKNOWN_ACCOUNT');

  // Audit entries last (the chain lock is held to commit): run by the caller.
  if (!before || before.status !== saved.status || before.plan_id !== saved.plan_id || before.cancel_at_period_end !== saved.cancel_at_period_end) {
    audits.push(() => recordAudit(
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
    ).then(() => undefined));
  }
  if (change) audits.push(() => auditPlanChange(deps, tx, accountId, change, { subscriptionId: subscription.id, eventId: event.id }));
  return processed();
}

export function subscriptionHandler(deps: HandlerDependencies): EventHandler {
  return {
    family: 'subscription',
    async handle(context) {
      const synced = await syncSubscription(deps, context, context.event.data.object as Stripe.Subscription);
      await synced.audit();
      return synced.result;
    },
  };
}
