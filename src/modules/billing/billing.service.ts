import { createHash, randomBytes } from 'node:crypto';
import type Stripe from 'stripe';
import { AppError, validationError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import type { Alerter } from '../audit/alerts.js';
import { recordAudit } from '../audit/audit.service.js';
import type { PlanCatalogue } from '../plans/plan-catalogue.js';
import type { CreditPack, Plan } from '../plans/plan-features.js';
import type { ExemptionLookup } from '../plans/exemptions.js';
import type { StripeGateway } from '../stripe/gateway.js';
import { currentSubscriptionOf, LIVE_STATUSES, type SubscriptionRow } from '../stripe/webhooks/billing-state.repository.js';
import {
  ACCOUNT_METADATA_KEY,
  CREDIT_PACK_METADATA_KEY,
  PLAN_METADATA_KEY,
  PLAN_PRODUCT_PREFIX,
  planIdOfPrice,
} from '../stripe/webhooks/stripe-conventions.js';

/**
 * The paid subscription lifecycle, the requesting half (PAY-2..5, OWN-1): checkout
 * sessions, cancel and resume at the period end, plan changes with proration. Every call
 * to Stripe goes through the gateway with a durable operation id (its Idempotency-Key).
 * Nothing here changes a plan: the subscription's webhooks do (PAY-3), see
 * stripe/webhooks/event-handlers/subscriptions.ts.
 */

/** Products of credit packs have our own id too: `bulwark_pack_<PACK ID>`. */
export const CREDIT_PACK_PRODUCT_PREFIX = 'bulwark_pack_';

export interface BillingActor {
  readonly accountId: string;
  /** The person asking (checkout names the customer's email after them); null for keys and services. */
  readonly userId: string | null;
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip: string | null;
}

export interface CheckoutRequest {
  readonly plan?: string | undefined;
  readonly creditPack?: string | undefined;
}

export interface SubscriptionView {
  readonly id: string;
  readonly status: string;
  readonly plan: string | null;
  readonly currentPeriodEnd: string | null;
  readonly cancelAtPeriodEnd: boolean;
  readonly trialEnd: string | null;
}

export interface BillingServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly stripe: StripeGateway;
  readonly plans: PlanCatalogue;
  readonly exemptions: ExemptionLookup;
  readonly alerter: Alerter;
  /** Trial days per plan id, at an account's first subscription (BILLING_TRIAL_DAYS). */
  readonly trialDays: Readonly<Record<string, number>>;
  readonly successUrl: string;
  readonly cancelUrl: string;
}

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());
const isoSeconds = (value: number | null | undefined): string | null =>
  value === null || value === undefined ? null : new Date(value * 1000).toISOString();

export function subscriptionViewOfRow(row: SubscriptionRow): SubscriptionView {
  return {
    id: row.id,
    status: row.status,
    plan: row.plan_id,
    currentPeriodEnd: iso(row.current_period_end),
    cancelAtPeriodEnd: row.cancel_at_period_end,
    trialEnd: iso(row.trial_end),
  };
}

/** The same view of Stripe's answer (the local row follows by webhook). */
export function subscriptionViewOfStripe(subscription: Stripe.Subscription): SubscriptionView {
  const item = subscription.items.data[0];
  return {
    id: subscription.id,
    status: subscription.status,
    plan: item ? planIdOfPrice(item.price) : null,
    currentPeriodEnd: isoSeconds(item?.current_period_end),
    cancelAtPeriodEnd: subscription.cancel_at_period_end,
    trialEnd: isoSeconds(subscription.trial_end),
  };
}

export const OWNER_EXEMPT_MESSAGE = 'Owner and test accounts cannot be charged';

export class BillingService {
  constructor(private readonly options: BillingServiceOptions) {}

  /** The account's current subscription as stored from Stripe's webhooks, or null. */
  async currentSubscription(accountId: string): Promise<SubscriptionView | null> {
    const row = await forAccount(this.options.database, accountId, (tx) => currentSubscriptionOf(tx, accountId));
    return row ? subscriptionViewOfRow(row) : null;
  }

  /**
   * PAY-2: a hosted checkout session for a plan (subscription mode, with the plan's trial at
   * the account's first subscription, promotion codes allowed) or a credit pack (payment
   * mode), for the caller's own account and its one Stripe customer. OWN-1: owner and test
   * accounts are refused before any call to Stripe.
   */
  async createCheckout(actor: BillingActor, request: CheckoutRequest, idempotencyKey?: string): Promise<{ url: string; sessionId: string }> {
    const hasPlan = request.plan !== undefined;
    const hasPack = request.creditPack !== undefined;
    if (hasPlan && hasPack) throw validationError([{ field: 'plan', message: 'give either plan or creditPack, not both' }]);
    if (!hasPlan && !hasPack) throw validationError([{ field: 'plan', message: 'is required (or creditPack)' }]);
    await this.refuseExempt(actor, hasPlan ? 'checkout.plan' : 'checkout.credit_pack');

    const plan = hasPlan ? await this.sellablePlan(request.plan as string) : undefined;
    const pack = hasPack ? await this.creditPack(request.creditPack as string) : undefined;
    const { database, stripe } = this.options;
    const history = await forAccount(database, actor.accountId, async (tx) => ({
      current: await currentSubscriptionOf(tx, actor.accountId),
      email: actor.userId ? await emailOf(tx, actor.userId) : null,
    }));
    // An `incomplete` one (its first payment failed at checkout) does not block a new checkout: Stripe expires it.
    if (plan && history.current && history.current.status !== 'incomplete' && LIVE_STATUSES.includes(history.current.status)) {
      throw new AppError('CONFLICT', 'The account has a subscription already; change its plan with POST /api/billing/change-plan');
    }
    const customerId = await this.ensureCustomer(actor.accountId, history.email);
    // PAY-9: with the request's Idempotency-Key the operation is that request, whatever
    // happens to its first attempt (a retry after our answer was lost, or after this process
    // died before keeping it, gets the same session from Stripe); without one every request
    // is an operation of its own.
    const operationId = `${actor.accountId}.${
      idempotencyKey === undefined ? randomBytes(12).toString('base64url') : `k${createHash('sha256').update(idempotencyKey).digest('base64url').slice(0, 32)}`
    }`;
    const common = {
      customer: customerId,
      client_reference_id: actor.accountId,
      success_url: this.options.successUrl,
      cancel_url: this.options.cancelUrl,
    } as const;
    let session: Stripe.Checkout.Session;
    let trialDays = 0;
    if (plan) {
      const price = await this.planPrice(plan);
      // A trial only at the account's first subscription.
      trialDays = history.current ? 0 : (this.options.trialDays[plan.id] ?? 0);
      const metadata = { [ACCOUNT_METADATA_KEY]: actor.accountId, [PLAN_METADATA_KEY]: plan.id };
      session = await stripe.createCheckoutSession(operationId, {
        ...common,
        mode: 'subscription',
        line_items: [{ price: price.id, quantity: 1 }],
        allow_promotion_codes: true,
        metadata,
        subscription_data: {
          metadata,
          ...(trialDays > 0 ? { trial_period_days: trialDays, trial_settings: { end_behavior: { missing_payment_method: 'cancel' } } } : {}),
        },
        // PAY-5: a trial starts without a card; without one by its end it is canceled (FREE).
        payment_method_collection: trialDays > 0 ? 'if_required' : 'always',
      });
    } else {
      const creditPack = pack as CreditPack;
      const price = await this.packPrice(creditPack);
      session = await stripe.createCheckoutSession(operationId, {
        ...common,
        mode: 'payment',
        line_items: [{ price: price.id, quantity: 1 }],
        // What the checkout webhook handler reads (event-handlers/checkout.ts).
        metadata: { [CREDIT_PACK_METADATA_KEY]: creditPack.id, [ACCOUNT_METADATA_KEY]: actor.accountId },
      });
    }
    if (!session.url) throw new AppError('SERVICE_UNAVAILABLE', 'The payment provider gave no checkout page');
    await forAccount(database, actor.accountId, (tx) =>
      recordAudit(
        tx,
        {
          event: 'billing.checkout_created',
          actorType: actor.actorType,
          actorId: actor.actorId,
          ip: actor.ip,
          subjectType: 'checkout_session',
          subjectId: session.id,
          accountId: actor.accountId,
          metadata: {
            mode: session.mode,
            plan: plan?.id ?? null,
            creditPack: pack?.id ?? null,
            amount: plan?.priceCents ?? pack?.priceCents ?? null,
            currency: plan?.currency ?? pack?.currency ?? null,
            trialDays,
            customerId,
          },
        },
        this.options.clock,
      ),
    );
    return { url: session.url, sessionId: session.id };
  }

  /** PAY-4: cancel at the period end; access stays until then. Repeating it answers the same. */
  async cancel(actor: BillingActor): Promise<{ subscription: SubscriptionView }> {
    const local = await this.liveSubscription(actor.accountId, 'cancel');
    const atStripe = await this.options.stripe.retrieveSubscription(local.id);
    if (!LIVE_STATUSES.includes(atStripe.status as SubscriptionRow['status'])) throw new AppError('CONFLICT', 'The subscription has ended already');
    if (atStripe.cancel_at_period_end) return { subscription: subscriptionViewOfStripe(atStripe) };
    const updated = await this.change(actor, local.id, 'cancel', { cancel_at_period_end: true }, {});
    return { subscription: subscriptionViewOfStripe(updated) };
  }

  /** PAY-4: undo a scheduled cancellation before the period ends; 409 when none is scheduled. */
  async resume(actor: BillingActor): Promise<{ subscription: SubscriptionView }> {
    const local = await this.liveSubscription(actor.accountId, 'resume');
    const atStripe = await this.options.stripe.retrieveSubscription(local.id);
    if (!LIVE_STATUSES.includes(atStripe.status as SubscriptionRow['status'])) throw new AppError('CONFLICT', 'The subscription has ended already; start a new one with checkout');
    if (!atStripe.cancel_at_period_end) throw new AppError('CONFLICT', 'The subscription is not set to cancel; there is nothing to resume');
    const updated = await this.change(actor, local.id, 'resume', { cancel_at_period_end: false }, {});
    return { subscription: subscriptionViewOfStripe(updated) };
  }

  /**
   * PAY-5: another plan for the subscription's item, prorated (create_prorations: the
   * difference is on the next invoice). The local plan follows from the webhook.
   */
  async changePlan(actor: BillingActor, planId: string): Promise<{ subscription: SubscriptionView }> {
    await this.refuseExempt(actor, 'change_plan');
    const plan = await this.sellablePlan(planId);
    const local = await this.liveSubscription(actor.accountId, 'change');
    const atStripe = await this.options.stripe.retrieveSubscription(local.id);
    const item = atStripe.items.data[0];
    if (!item || !LIVE_STATUSES.includes(atStripe.status as SubscriptionRow['status'])) throw new AppError('CONFLICT', 'The subscription has ended already');
    if (planIdOfPrice(item.price) === plan.id) throw new AppError('CONFLICT', `The subscription is on ${plan.id} already`);
    const price = await this.planPrice(plan);
    const updated = await this.change(
      actor,
      local.id,
      'change_plan',
      { items: [{ id: item.id, price: price.id }], proration_behavior: 'create_prorations' },
      { from: planIdOfPrice(item.price), to: plan.id },
    );
    return { subscription: subscriptionViewOfStripe(updated) };
  }

  /** One change request at Stripe, numbered durably on the subscription row (its operation id), then audited. */
  private async change(
    actor: BillingActor,
    subscriptionId: string,
    kind: 'cancel' | 'resume' | 'change_plan',
    params: Stripe.SubscriptionUpdateParams,
    details: Readonly<Record<string, string | null>>,
  ): Promise<Stripe.Subscription> {
    const { database, stripe, clock } = this.options;
    const number = await forAccount(database, actor.accountId, async (tx) => {
      const { rows } = await tx.query<{ change_requests: number }>(
        'UPDATE subscriptions SET change_requests = change_requests + 1 WHERE id = $1 AND account_id = $2 RETURNING change_requests',
        [subscriptionId, actor.accountId],
      );
      const row = rows[0];
      if (!row) throw new AppError('NOT_FOUND', 'The account has no subscription');
      return row.change_requests;
    });
    const updated = await stripe.updateSubscription(`${subscriptionId}.${kind}.${number}`, subscriptionId, params);
    await forAccount(database, actor.accountId, (tx) =>
      recordAudit(
        tx,
        {
          event: `subscription.${kind}_requested`,
          actorType: actor.actorType,
          actorId: actor.actorId,
          ip: actor.ip,
          subjectType: 'subscription',
          subjectId: subscriptionId,
          accountId: actor.accountId,
          metadata: { request: number, status: updated.status, cancelAtPeriodEnd: updated.cancel_at_period_end, ...details },
        },
        clock,
      ),
    );
    return updated;
  }

  private async liveSubscription(accountId: string, action: 'cancel' | 'resume' | 'change'): Promise<SubscriptionRow> {
    const row = await forAccount(this.options.database, accountId, (tx) => currentSubscriptionOf(tx, accountId));
    if (!row) throw new AppError('NOT_FOUND', `The account has no subscription to ${action}`);
    if (!LIVE_STATUSES.includes(row.status)) throw new AppError('CONFLICT', `The subscription has ended (${row.status}); there is nothing to ${action}`);
    return row;
  }

  /** OWN-1: refused, audited and alerted before any call to Stripe. */
  private async refuseExempt(actor: BillingActor, attempt: string): Promise<void> {
    const exemption = this.options.exemptions.exemptionOf(actor.accountId);
    if (!exemption) return;
    await forAccount(this.options.database, actor.accountId, (tx) =>
      recordAudit(
        tx,
        {
          event: 'billing.owner_charge_attempt',
          actorType: actor.actorType,
          actorId: actor.actorId,
          ip: actor.ip,
          subjectType: 'account',
          subjectId: actor.accountId,
          accountId: actor.accountId,
          metadata: { attempt, exemptKind: exemption.kind },
        },
        this.options.clock,
      ),
    );
    this.options.alerter.alert('owner_charge_attempt', `A ${attempt} for an ${exemption.kind} account was refused`, {
      accountId: actor.accountId,
      attempt,
      exemptKind: exemption.kind,
    });
    throw new AppError('OWNER_EXEMPT', OWNER_EXEMPT_MESSAGE);
  }

  private async sellablePlan(planId: string): Promise<Plan> {
    const plan = await this.options.plans.find(planId);
    if (!plan) throw validationError([{ field: 'plan', message: 'is not a plan of the catalogue' }]);
    if (!Number.isSafeInteger(plan.priceCents) || plan.priceCents <= 0) throw validationError([{ field: 'plan', message: 'is not sold through checkout' }]);
    return plan;
  }

  private async creditPack(packId: string): Promise<CreditPack> {
    const pack = (await this.options.plans.snapshot()).creditPacks.find((candidate) => candidate.id === packId);
    if (!pack) throw validationError([{ field: 'creditPack', message: 'is not a credit pack of the catalogue' }]);
    return pack;
  }

  /**
   * The account's one Stripe customer. The account row is locked while it is created, so
   * concurrent first checkouts wait for the first; and the operation id is the account id,
   * so even a lost answer and a retry make one customer at Stripe.
   */
  private async ensureCustomer(accountId: string, email: string | null): Promise<string> {
    const { database, stripe, clock } = this.options;
    return forAccount(database, accountId, async (tx) => {
      const { rows } = await tx.query<{ stripe_customer_id: string | null }>('SELECT stripe_customer_id FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
      const row = rows[0];
      if (!row) throw new AppError('NOT_FOUND', 'Not found');
      if (row.stripe_customer_id) return row.stripe_customer_id;
      const customer = await stripe.createCustomer(accountId, {
        ...(email ? { email } : {}),
        metadata: { [ACCOUNT_METADATA_KEY]: accountId },
      });
      await tx.query('UPDATE accounts SET stripe_customer_id = $2, updated_at = $3 WHERE id = $1', [accountId, customer.id, clock.now()]);
      await recordAudit(
        tx,
        { event: 'billing.customer_created', actorType: 'system', subjectType: 'account', subjectId: accountId, accountId, metadata: { customerId: customer.id } },
        clock,
      );
      return customer.id;
    });
  }

  private async planPrice(plan: Plan): Promise<Stripe.Price> {
    const { stripe } = this.options;
    const product = await stripe.ensureProduct({ id: `${PLAN_PRODUCT_PREFIX}${plan.id}`, name: plan.name, metadata: { [PLAN_METADATA_KEY]: plan.id } });
    return stripe.ensurePrice({
      lookupKey: `${PLAN_PRODUCT_PREFIX}${plan.id}_${plan.interval}`,
      productId: product.id,
      unitAmount: plan.priceCents,
      currency: plan.currency,
      recurring: { interval: plan.interval },
      nickname: plan.name,
      metadata: { [PLAN_METADATA_KEY]: plan.id },
    });
  }

  private async packPrice(pack: CreditPack): Promise<Stripe.Price> {
    const { stripe } = this.options;
    const product = await stripe.ensureProduct({ id: `${CREDIT_PACK_PRODUCT_PREFIX}${pack.id}`, name: pack.name, metadata: { [CREDIT_PACK_METADATA_KEY]: pack.id } });
    return stripe.ensurePrice({
      lookupKey: `${CREDIT_PACK_PRODUCT_PREFIX}${pack.id}_${pack.currency.toLowerCase()}`,
      productId: product.id,
      unitAmount: pack.priceCents,
      currency: pack.currency,
      nickname: pack.name,
      metadata: { [CREDIT_PACK_METADATA_KEY]: pack.id },
    });
  }
}

async function emailOf(tx: Queryable, userId: string): Promise<string | null> {
  const { rows } = await tx.query<{ email: string | null }>('SELECT email FROM users WHERE id = $1', [userId]);
  return rows[0]?.email ?? null;
}
