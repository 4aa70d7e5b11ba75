import type { Queryable } from '../../../platform/database/database.js';
import { newId } from '../../../platform/ids.js';

/**
 * SQL of the local billing state the webhook handlers keep from Stripe (migration 0014):
 * `payments` and `subscriptions`. Callers run inside the event's transaction, acting for
 * the account, after locking the Stripe object (lockStripeObject) they are about to write.
 */

export type PaymentKind = 'credit_pack' | 'subscription_invoice' | 'charge';
export type PaymentStatus = 'pending' | 'requires_action' | 'succeeded' | 'failed';

export interface PaymentRow {
  id: string;
  account_id: string;
  kind: PaymentKind;
  stripe_payment_intent_id: string | null;
  stripe_charge_id: string | null;
  stripe_checkout_session_id: string | null;
  stripe_invoice_id: string | null;
  stripe_subscription_id: string | null;
  credit_pack_id: string | null;
  amount_cents: number;
  currency: string;
  status: PaymentStatus;
  amount_refunded_cents: number;
  credits_granted: number;
  credit_grant_id: string | null;
  disputed_at: Date | null;
  /** Credits taken back from the grant after refunds, and those that could not be (spent): migration 0020. */
  credits_reversed: number;
  credits_reversal_shortfall: number;
}

/** What one event tells about a payment; absent fields keep what is stored. */
export interface PaymentFacts {
  readonly kind?: Exclude<PaymentKind, 'charge'>;
  readonly paymentIntentId?: string | null;
  readonly chargeId?: string | null;
  readonly checkoutSessionId?: string | null;
  readonly invoiceId?: string | null;
  readonly subscriptionId?: string | null;
  readonly creditPackId?: string | null;
  readonly amountCents: number;
  readonly currency: string;
  readonly status: PaymentStatus;
  readonly amountRefundedCents?: number;
  readonly disputedAt?: Date;
}

export type PaymentValues = Omit<PaymentRow, 'id' | 'account_id' | 'credits_granted' | 'credit_grant_id' | 'credits_reversed' | 'credits_reversal_shortfall'>;

/**
 * Merges what an event says into what is stored, so that late or out-of-order events
 * never move a payment backwards (WH-5): a succeeded payment stays succeeded (a refund is
 * the refunded amount, not a status), the refunded amount only grows, the charge id
 * follows the charge that succeeded, and a known kind is never forgotten. Pure.
 */
export function mergePayment(stored: PaymentValues | undefined, facts: PaymentFacts): PaymentValues {
  const succeeded = stored?.status === 'succeeded';
  const status = succeeded ? 'succeeded' : facts.status;
  const takeCharge = facts.chargeId !== undefined && facts.chargeId !== null && (!succeeded || facts.status === 'succeeded' || stored?.stripe_charge_id === null);
  const amountCents = succeeded && stored ? stored.amount_cents : facts.amountCents;
  const refunded = Math.min(amountCents, Math.max(stored?.amount_refunded_cents ?? 0, facts.amountRefundedCents ?? 0));
  return {
    kind: facts.kind ?? stored?.kind ?? 'charge',
    stripe_payment_intent_id: facts.paymentIntentId ?? stored?.stripe_payment_intent_id ?? null,
    stripe_charge_id: takeCharge ? (facts.chargeId as string) : (stored?.stripe_charge_id ?? null),
    stripe_checkout_session_id: facts.checkoutSessionId ?? stored?.stripe_checkout_session_id ?? null,
    stripe_invoice_id: facts.invoiceId ?? stored?.stripe_invoice_id ?? null,
    stripe_subscription_id: facts.subscriptionId ?? stored?.stripe_subscription_id ?? null,
    credit_pack_id: facts.creditPackId ?? stored?.credit_pack_id ?? null,
    amount_cents: amountCents,
    currency: succeeded && stored ? stored.currency : facts.currency.toLowerCase(),
    status,
    amount_refunded_cents: refunded,
    disputed_at: stored?.disputed_at ?? facts.disputedAt ?? null,
  };
}

/** The payment any of these Stripe ids belongs to, locked for update. */
export async function findPaymentForUpdate(
  tx: Queryable,
  ids: { readonly paymentIntentId?: string | null; readonly chargeId?: string | null; readonly checkoutSessionId?: string | null; readonly invoiceId?: string | null },
): Promise<PaymentRow | undefined> {
  const { rows } = await tx.query<PaymentRow>(
    `SELECT * FROM payments
     WHERE stripe_payment_intent_id = $1 OR stripe_charge_id = $2 OR stripe_checkout_session_id = $3 OR stripe_invoice_id = $4
     ORDER BY created_at, id LIMIT 1 FOR UPDATE`,
    [ids.paymentIntentId ?? null, ids.chargeId ?? null, ids.checkoutSessionId ?? null, ids.invoiceId ?? null],
  );
  return rows[0];
}

/** Inserts or updates the payment with the merged values (mergePayment). */
export async function savePayment(tx: Queryable, accountId: string, stored: PaymentRow | undefined, facts: PaymentFacts, now: Date): Promise<PaymentRow> {
  const values = mergePayment(stored, facts);
  const columns = [
    values.kind,
    values.stripe_payment_intent_id,
    values.stripe_charge_id,
    values.stripe_checkout_session_id,
    values.stripe_invoice_id,
    values.stripe_subscription_id,
    values.credit_pack_id,
    values.amount_cents,
    values.currency,
    values.status,
    values.amount_refunded_cents,
    values.disputed_at,
    now,
  ];
  if (stored) {
    const { rows } = await tx.query<PaymentRow>(
      `UPDATE payments SET kind = $2, stripe_payment_intent_id = $3, stripe_charge_id = $4, stripe_checkout_session_id = $5,
         stripe_invoice_id = $6, stripe_subscription_id = $7, credit_pack_id = $8, amount_cents = $9, currency = $10, status = $11,
         amount_refunded_cents = $12, disputed_at = $13, updated_at = $14
       WHERE id = $1 RETURNING *`,
      [stored.id, ...columns],
    );
    return rows[0] as PaymentRow;
  }
  const { rows } = await tx.query<PaymentRow>(
    `INSERT INTO payments (id, account_id, kind, stripe_payment_intent_id, stripe_charge_id, stripe_checkout_session_id, stripe_invoice_id,
       stripe_subscription_id, credit_pack_id, amount_cents, currency, status, amount_refunded_cents, disputed_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) RETURNING *`,
    [newId('payment'), accountId, ...columns],
  );
  return rows[0] as PaymentRow;
}

/** Ties a credit pack payment to its one grant (the unique credit_grant_id makes a second impossible). */
export async function setPaymentGrant(tx: Queryable, paymentId: string, grantId: string, credits: number, now: Date): Promise<void> {
  await tx.query(`UPDATE payments SET credit_grant_id = $2, credits_granted = $3, updated_at = $4 WHERE id = $1 AND credit_grant_id IS NULL`, [
    paymentId,
    grantId,
    credits,
    now,
  ]);
}

export type SubscriptionStatus = 'incomplete' | 'incomplete_expired' | 'trialing' | 'active' | 'past_due' | 'canceled' | 'unpaid' | 'paused';

/** Statuses that give the subscription's plan; any other gives FREE (PAY-3: only a confirmed payment upgrades). */
export const ENTITLED_STATUSES: readonly SubscriptionStatus[] = ['active', 'trialing', 'past_due'];

export interface SubscriptionRow {
  id: string;
  account_id: string;
  stripe_customer_id: string;
  status: SubscriptionStatus;
  plan_id: string | null;
  stripe_price_id: string | null;
  current_period_start: Date | null;
  current_period_end: Date | null;
  cancel_at_period_end: boolean;
  cancel_at: Date | null;
  canceled_at: Date | null;
  ended_at: Date | null;
  trial_end: Date | null;
  stripe_created_at: Date;
  last_event_id: string | null;
  last_event_created_at: Date | null;
  synced_at: Date;
  /** Migration 0021: when this spell of past_due began (Stripe's time), NULL when not past_due. */
  past_due_since: Date | null;
  /** Migration 0021: when it first became active or trialing. */
  activated_at: Date | null;
  /** Migration 0021: how many change requests (cancel, resume, plan change) we sent for it. */
  change_requests: number;
}

export type SubscriptionState = Omit<SubscriptionRow, 'account_id' | 'synced_at' | 'past_due_since' | 'activated_at' | 'change_requests'>;

export async function findSubscription(tx: Queryable, subscriptionId: string): Promise<SubscriptionRow | undefined> {
  const { rows } = await tx.query<SubscriptionRow>('SELECT * FROM subscriptions WHERE id = $1', [subscriptionId]);
  return rows[0];
}

/**
 * Stores the subscription as just fetched from Stripe. The guard is a second line behind
 * the handler's lock-then-fetch: it never turns an ended subscription (canceled,
 * incomplete_expired) back into a live one, and never moves the current period
 * backwards. Answers the stored row, or undefined when the guard kept the newer state.
 */
export async function saveSubscription(tx: Queryable, accountId: string, state: SubscriptionState, now: Date): Promise<SubscriptionRow | undefined> {
  const { rows } = await tx.query<SubscriptionRow>(
    `INSERT INTO subscriptions (id, account_id, stripe_customer_id, status, plan_id, stripe_price_id, current_period_start, current_period_end,
       cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_end, stripe_created_at, last_event_id, last_event_created_at,
       synced_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $17)
     ON CONFLICT (id) DO UPDATE SET
       status = EXCLUDED.status, plan_id = EXCLUDED.plan_id, stripe_price_id = EXCLUDED.stripe_price_id,
       current_period_start = EXCLUDED.current_period_start, current_period_end = EXCLUDED.current_period_end,
       cancel_at_period_end = EXCLUDED.cancel_at_period_end, cancel_at = EXCLUDED.cancel_at, canceled_at = EXCLUDED.canceled_at,
       ended_at = EXCLUDED.ended_at, trial_end = EXCLUDED.trial_end,
       last_event_id = CASE WHEN subscriptions.last_event_created_at IS NULL OR EXCLUDED.last_event_created_at >= subscriptions.last_event_created_at
                            THEN EXCLUDED.last_event_id ELSE subscriptions.last_event_id END,
       last_event_created_at = GREATEST(subscriptions.last_event_created_at, EXCLUDED.last_event_created_at),
       synced_at = EXCLUDED.synced_at, updated_at = EXCLUDED.updated_at
     WHERE NOT (subscriptions.status IN ('canceled', 'incomplete_expired') AND EXCLUDED.status NOT IN ('canceled', 'incomplete_expired'))
       AND (subscriptions.current_period_start IS NULL OR EXCLUDED.current_period_start IS NULL
            OR EXCLUDED.current_period_start >= subscriptions.current_period_start)
     RETURNING *`,
    [
      state.id,
      accountId,
      state.stripe_customer_id,
      state.status,
      state.plan_id,
      state.stripe_price_id,
      state.current_period_start,
      state.current_period_end,
      state.cancel_at_period_end,
      state.cancel_at,
      state.canceled_at,
      state.ended_at,
      state.trial_end,
      state.stripe_created_at,
      state.last_event_id,
      state.last_event_created_at,
      now,
    ],
  );
  return rows[0];
}

/** PAY-6: how long a past_due subscription keeps its plan, and the time to measure it at. */
export interface GraceOptions {
  readonly at: Date;
  readonly pastDueGraceMs: number;
}

/**
 * The plan the account's subscriptions give: the plan of its newest subscription in an
 * entitled status with a plan of ours, or null when there is none (the account is then on
 * FREE). With `grace`, a past_due subscription counts only until `past_due_since` plus the
 * grace period (PAY-6); without it (legacy import) every past_due one counts.
 */
export async function entitledPlanOf(tx: Queryable, accountId: string, grace?: GraceOptions): Promise<string | null> {
  const { rows } = await tx.query<{ plan_id: string }>(
    `SELECT plan_id FROM subscriptions
     WHERE account_id = $1 AND plan_id IS NOT NULL AND status = ANY($2::text[])
       AND ($3::timestamptz IS NULL OR status <> 'past_due' OR past_due_since IS NULL OR past_due_since > $3::timestamptz)
     ORDER BY stripe_created_at DESC, id DESC LIMIT 1`,
    [accountId, ENTITLED_STATUSES, grace ? new Date(grace.at.getTime() - grace.pastDueGraceMs) : null],
  );
  return rows[0]?.plan_id ?? null;
}

/**
 * After a save: starts the past_due spell at `at` when it just began, clears it when the
 * subscription left past_due, and stamps the first activation. Answers the row and whether
 * this call activated it (so subscription.activated is emitted exactly once).
 */
export async function markLifecycle(tx: Queryable, subscriptionId: string, at: Date): Promise<{ row: SubscriptionRow; activated: boolean } | undefined> {
  const { rows } = await tx.query<SubscriptionRow & { was_activated: boolean }>(
    `UPDATE subscriptions s SET
       past_due_since = CASE WHEN s.status = 'past_due' THEN coalesce(s.past_due_since, $2) ELSE NULL END,
       activated_at = CASE WHEN s.activated_at IS NULL AND s.status IN ('active', 'trialing') THEN $2 ELSE s.activated_at END
     FROM (SELECT activated_at IS NOT NULL AS was_activated FROM subscriptions WHERE id = $1) prior
     WHERE s.id = $1
     RETURNING s.*, prior.was_activated`,
    [subscriptionId, at],
  );
  const row = rows[0];
  if (!row) return undefined;
  const { was_activated: wasActivated, ...subscription } = row;
  return { row: subscription, activated: !wasActivated && subscription.activated_at !== null };
}

/** Live statuses: the subscription can still be canceled, resumed or changed. */
export const LIVE_STATUSES: readonly SubscriptionStatus[] = ['active', 'trialing', 'past_due', 'incomplete', 'unpaid', 'paused'];

/** The account's current subscription: its newest live one, else its newest one. */
export async function currentSubscriptionOf(tx: Queryable, accountId: string): Promise<SubscriptionRow | undefined> {
  const { rows } = await tx.query<SubscriptionRow>(
    `SELECT * FROM subscriptions WHERE account_id = $1
     ORDER BY (status = ANY($2::text[])) DESC, stripe_created_at DESC, id DESC LIMIT 1`,
    [accountId, LIVE_STATUSES],
  );
  return rows[0];
}
