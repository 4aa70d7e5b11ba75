import type { Queryable } from '../../platform/database/database.js';
import type { LegacyKind, LegacyPayment, LegacySubscription } from './legacy-records.js';

/** SQL of the legacy import (migration 0017) and of the rows it writes that no other module writes this way. */

export interface ImportedRecordRow {
  kind: LegacyKind;
  legacy_id: string;
  target_id: string;
  account_id: string;
  record_sha256: string | null;
  run_id: string;
  imported_at: Date;
}

/** The record of `kind` with this legacy id, if an earlier (or concurrent, committed) run imported it. */
export async function findImported(tx: Queryable, kind: LegacyKind, legacyId: string): Promise<ImportedRecordRow | undefined> {
  const { rows } = await tx.query<ImportedRecordRow>('SELECT * FROM legacy_import_records WHERE kind = $1 AND legacy_id = $2', [kind, legacyId]);
  return rows[0];
}

/** An imported user with the role and status their row has now: what a member's owner_id or a subscription's user_id points at. */
export async function findImportedUser(
  tx: Queryable,
  legacyId: string,
): Promise<{ account_id: string; role: string; account_status: string; stripe_customer_id: string | null } | undefined> {
  const { rows } = await tx.query<{ account_id: string; role: string; account_status: string; stripe_customer_id: string | null }>(
    `SELECT m.account_id, u.role, a.status AS account_status, a.stripe_customer_id
       FROM legacy_import_records m
       JOIN users u ON u.id = m.target_id
       JOIN accounts a ON a.id = m.account_id
      WHERE m.kind = 'user' AND m.legacy_id = $1`,
    [legacyId],
  );
  return rows[0];
}

/**
 * Claims the legacy record for this run, in the transaction that writes what it became.
 * False when another run has it already: a concurrent run's claim waits for that run's
 * transaction and then loses, so each record is imported once (OPS-9).
 */
export async function claimImport(
  tx: Queryable,
  row: { kind: LegacyKind; legacyId: string; targetId: string; accountId: string; fingerprint: string; runId: string; at: Date },
): Promise<boolean> {
  const { rows } = await tx.query(
    `INSERT INTO legacy_import_records (kind, legacy_id, target_id, account_id, record_sha256, run_id, imported_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (kind, legacy_id) DO NOTHING
     RETURNING legacy_id`,
    [row.kind, row.legacyId, row.targetId, row.accountId, row.fingerprint, row.runId, row.at],
  );
  return rows.length === 1;
}

export async function setStripeCustomer(tx: Queryable, accountId: string, customerId: string): Promise<void> {
  await tx.query('UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1', [accountId, customerId]);
}

/**
 * A legacy subscription as a row of `subscriptions` (0014's columns, as the webhook
 * handlers keep them): a plain INSERT, so an id Stripe's events already wrote is a unique
 * violation and never overwritten. `synced_at` is when the import took the state in.
 */
export async function insertLegacySubscription(tx: Queryable, accountId: string, customerId: string, record: LegacySubscription, now: Date): Promise<void> {
  await tx.query(
    `INSERT INTO subscriptions (id, account_id, stripe_customer_id, status, plan_id, stripe_price_id, current_period_start, current_period_end,
       cancel_at_period_end, cancel_at, canceled_at, ended_at, trial_end, stripe_created_at, last_event_id, last_event_created_at,
       synced_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL, NULL, $15, $15, $15)`,
    [
      record.stripeSubscriptionId,
      accountId,
      customerId,
      record.status,
      record.plan,
      record.stripePriceId,
      record.currentPeriodStart,
      record.currentPeriodEnd,
      record.cancelAtPeriodEnd,
      record.cancelAt,
      record.canceledAt,
      record.endedAt,
      record.trialEnd,
      record.createdAt,
      now,
    ],
  );
}

/**
 * A legacy payment as a row of `payments`: history only. It carries no credit grant (the
 * legacy balance arrives as the owner's credits), so credits_granted is 0.
 */
export async function insertLegacyPayment(tx: Queryable, paymentId: string, accountId: string, record: LegacyPayment, now: Date): Promise<void> {
  await tx.query(
    `INSERT INTO payments (id, account_id, kind, stripe_payment_intent_id, stripe_charge_id, stripe_checkout_session_id, stripe_invoice_id,
       stripe_subscription_id, credit_pack_id, amount_cents, currency, status, amount_refunded_cents, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
    [
      paymentId,
      accountId,
      record.paymentKind,
      record.stripePaymentIntentId,
      record.stripeChargeId,
      record.stripeCheckoutSessionId,
      record.stripeInvoiceId,
      record.stripeSubscriptionId,
      record.creditPackId,
      record.amountCents,
      record.currency,
      record.status,
      record.amountRefundedCents,
      record.createdAt,
      now,
    ],
  );
}
