import type Stripe from 'stripe';
import type { Queryable } from '../../../../platform/database/database.js';
import type { PaymentRow } from '../billing-state.repository.js';

/**
 * PAY-7: a refunded credit pack takes back the unspent credits of its one grant.
 *
 * What should have been taken back so far is proportional to the refunded share of the
 * payment, rounded down: floor(credits_granted x amount_refunded / amount) (a full refund:
 * all of the pack's credits). The payment row keeps how much of that target was already
 * handled, cumulatively: `credits_reversed` (taken out of the grant) plus
 * `credits_reversal_shortfall` (could not be taken: those credits had been spent or are
 * held by a reservation). Each call handles only the difference, so a charge.refunded
 * delivered twice, a replay, or a reconciliation repair takes nothing more, and partial
 * refunds accumulate correctly. Never more than the grant's `remaining`: a grant never
 * goes below zero (the CHECK in 0009 would refuse it anyway).
 *
 * Runs inside the event's transaction, after the payment row was locked (FOR UPDATE) and
 * saved; the grant row is locked too (FOR NO KEY UPDATE, as the expiry write-off does),
 * so a concurrent reserve cannot spend what is being taken back. The ledger gets one
 * 'refund_reversal' entry of -taken, which keeps the identity of `credits verify`:
 * granted = remaining + held + spent + written off (expiry and refund_reversal).
 */

export interface CreditReversal {
  readonly grantId: string;
  /** Credits that should be taken back in total after this refund. */
  readonly target: number;
  /** Taken out of the grant now. */
  readonly taken: number;
  /** Of this call's difference, what the grant no longer had (spent or held). */
  readonly shortfall: number;
  readonly totalReversed: number;
  readonly totalShortfall: number;
}

/** The cumulative credits to take back for a refunded share of the payment. Pure; integers only. */
export function reversalTarget(creditsGranted: number, amountCents: number, amountRefundedCents: number): number {
  if (creditsGranted <= 0 || amountCents <= 0 || amountRefundedCents <= 0) return 0;
  if (amountRefundedCents >= amountCents) return creditsGranted;
  // Exact in integers: credits x cents stays far below 2^53 (credits <= 1,000,000 per grant).
  return Math.floor((creditsGranted * amountRefundedCents) / amountCents);
}

/** Splits what is still to take back into taken now and shortfall, given the grant's remaining. Pure. */
export function splitReversal(due: number, grantRemaining: number): { taken: number; shortfall: number } {
  const taken = Math.max(0, Math.min(due, grantRemaining));
  return { taken, shortfall: Math.max(0, due - taken) };
}

/**
 * Takes back what is due for `payment` (already locked and saved with the refunded
 * amount). Answers undefined when there is nothing to do: not a credit pack with a grant,
 * nothing refunded, or the due credits were handled already.
 */
export async function reverseRefundedCredits(tx: Queryable, payment: PaymentRow, now: Date): Promise<CreditReversal | undefined> {
  if (payment.credit_grant_id === null || payment.credits_granted <= 0) return undefined;
  const target = reversalTarget(Number(payment.credits_granted), Number(payment.amount_cents), Number(payment.amount_refunded_cents));
  const handled = Number(payment.credits_reversed) + Number(payment.credits_reversal_shortfall);
  const due = target - handled;
  if (due <= 0) return undefined;
  const { rows } = await tx.query<{ remaining: number }>('SELECT remaining FROM credit_grants WHERE id = $1 AND account_id = $2 FOR NO KEY UPDATE', [
    payment.credit_grant_id,
    payment.account_id,
  ]);
  const remaining = Number(rows[0]?.remaining ?? 0);
  const { taken, shortfall } = splitReversal(due, remaining);
  if (taken > 0) {
    await tx.query('UPDATE credit_grants SET remaining = remaining - $2 WHERE id = $1 AND account_id = $3', [payment.credit_grant_id, taken, payment.account_id]);
    await tx.query(
      `INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at) VALUES ($1, 'refund_reversal', $2, $3, NULL, $4)`,
      [payment.account_id, -taken, payment.credit_grant_id, now],
    );
  }
  const { rows: updated } = await tx.query<{ credits_reversed: number; credits_reversal_shortfall: number }>(
    `UPDATE payments SET credits_reversed = credits_reversed + $2, credits_reversal_shortfall = credits_reversal_shortfall + $3, updated_at = $4
     WHERE id = $1 RETURNING credits_reversed, credits_reversal_shortfall`,
    [payment.id, taken, shortfall, now],
  );
  return {
    grantId: payment.credit_grant_id,
    target,
    taken,
    shortfall,
    totalReversed: Number(updated[0]?.credits_reversed ?? taken),
    totalShortfall: Number(updated[0]?.credits_reversal_shortfall ?? shortfall),
  };
}

const REFUND_STATUSES: ReadonlySet<string> = new Set(['pending', 'requires_action', 'succeeded', 'failed', 'canceled']);

/**
 * The operator's refunds rows of this payment take Stripe's current status of their
 * refund (listed from Stripe by the caller). Only rows that already know their Stripe
 * refund id: the refund route stores it (and audits that) itself. Answers how many rows changed.
 */
export async function syncRefundRows(tx: Queryable, paymentId: string, refunds: readonly Stripe.Refund[], now: Date): Promise<number> {
  let changed = 0;
  for (const refund of refunds) {
    const status = refund.status ?? 'pending';
    if (!REFUND_STATUSES.has(status)) continue;
    const result = await tx.query(`UPDATE refunds SET status = $3, updated_at = $4 WHERE payment_id = $1 AND stripe_refund_id = $2 AND status <> $3`, [
      paymentId,
      refund.id,
      status,
      now,
    ]);
    changed += result.rowCount;
  }
  return changed;
}
