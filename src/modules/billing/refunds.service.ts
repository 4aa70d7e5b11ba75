import { createHash } from 'node:crypto';
import Stripe from 'stripe';
import { AppError, validationError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { recordAudit } from '../audit/audit.service.js';
import type { StripeGateway } from '../stripe/gateway.js';

/**
 * PAY-7: refunds an operator asks for (POST /api/admin/refunds), full or partial.
 *
 * 1. One transaction (system context, the payment row locked): the request's key is
 *    looked up. The key is the Idempotency-Key header, or without one a natural key made
 *    from the request itself (payment, amount, reason), so a retried request without the
 *    header is the same refund; an operator who really wants a second, identical partial
 *    refund sends a new Idempotency-Key. A known key with another body is 422; a known key
 *    whose refund Stripe already answered returns that same answer. A new key is checked
 *    (404 unknown payment, 409 nothing left to refund, 400 `amount` beyond what is left)
 *    and recorded as a `refunds` row in status `requested`, audited
 *    `payment.refund_requested` with the operator as actor.
 * 2. Outside any transaction, gateway.createRefund(<refund row id>, ...): the row id is the
 *    operation id, so its Idempotency-Key (bulwark-refund.create-<id>) is the same on
 *    every attempt and Stripe makes one refund however often the request is retried
 *    (PAY-9). A network failure leaves the row `requested` (503; a retry sends it again).
 *    A refusal by Stripe marks it `rejected` (409, audited payment.refund_rejected).
 * 3. One transaction: the Stripe refund id and status are stored, audited
 *    `payment.refund_submitted`.
 *
 * The refund's effect on the payment (amount_refunded, the credits of a credit pack) is
 * applied by charge.refunded (event-handlers/payments.ts, refund-reversal.ts) when Stripe
 * tells us, exactly once, whoever made the refund (this route, or Stripe's dashboard).
 */

export const STRIPE_REFUND_REASONS = ['duplicate', 'fraudulent', 'requested_by_customer'] as const;
export type StripeRefundReason = (typeof STRIPE_REFUND_REASONS)[number];

export interface RefundRequest {
  readonly paymentId: string;
  /** Cents; absent for a full refund (of what is left). */
  readonly amount?: number;
  readonly reason: string;
  /** The Idempotency-Key header. */
  readonly idempotencyKey?: string;
}

export interface RefundActor {
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip?: string | null;
}

export interface RefundView {
  readonly id: string;
  readonly paymentId: string;
  readonly accountId: string;
  readonly amount: number;
  readonly currency: string;
  readonly full: boolean;
  readonly reason: string;
  readonly status: string;
  readonly stripeRefundId: string | null;
  readonly createdAt: string;
}

interface RefundRow {
  id: string;
  account_id: string;
  payment_id: string;
  idempotency_key: string;
  request_hash: string;
  requested_amount_cents: number | null;
  amount_cents: number;
  currency: string;
  reason: string;
  stripe_reason: StripeRefundReason | null;
  status: string;
  stripe_refund_id: string | null;
  error_code: string | null;
  created_at: Date;
}

interface PaymentForRefund {
  id: string;
  account_id: string;
  status: string;
  amount_cents: number;
  amount_refunded_cents: number;
  currency: string;
  stripe_payment_intent_id: string | null;
  stripe_charge_id: string | null;
}

/** Refunds still counting against what is left: recorded, or accepted by Stripe. */
const OUTSTANDING = ['requested', 'pending', 'requires_action', 'succeeded'];
const KEY = /^[A-Za-z0-9_.:-]{1,200}$/;

export function refundView(row: RefundRow): RefundView {
  return {
    id: row.id,
    paymentId: row.payment_id,
    accountId: row.account_id,
    amount: Number(row.amount_cents),
    currency: row.currency,
    full: row.requested_amount_cents === null,
    reason: row.reason,
    status: row.status,
    stripeRefundId: row.stripe_refund_id,
    createdAt: row.created_at.toISOString(),
  };
}

/** Stripe's reason when the operator's text is one of Stripe's; free text stays ours only. */
export function stripeReasonOf(reason: string): StripeRefundReason | null {
  const normalised = reason.trim().toLowerCase().replace(/[\s-]+/g, '_');
  return (STRIPE_REFUND_REASONS as readonly string[]).includes(normalised) ? (normalised as StripeRefundReason) : null;
}

export function refundRequestHash(request: Pick<RefundRequest, 'paymentId' | 'amount' | 'reason'>): string {
  return createHash('sha256').update(JSON.stringify([request.paymentId, request.amount ?? null, request.reason]), 'utf8').digest('hex');
}

function stripeErrorCode(error: Stripe.errors.StripeError): string {
  const code = (error.code ?? error.type).replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64);
  return code.length > 0 ? code : 'stripe_error';
}

export interface RefundsServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly stripe: StripeGateway;
}

/** An audit entry about a refund of a payment, by the operator (or the CLI) who asked for it. */
function auditRefund(
  tx: Queryable,
  clock: Clock,
  actor: RefundActor,
  event: string,
  subject: { readonly paymentId: string; readonly accountId: string },
  metadata: Record<string, unknown>,
): Promise<unknown> {
  return recordAudit(
    tx,
    { event, actorType: actor.actorType, actorId: actor.actorId, ip: actor.ip ?? null, subjectType: 'payment', subjectId: subject.paymentId, accountId: subject.accountId, metadata },
    clock,
  );
}

export class RefundsService {
  constructor(private readonly options: RefundsServiceOptions) {}

  async refund(request: RefundRequest, actor: RefundActor): Promise<RefundView> {
    if (request.idempotencyKey !== undefined && !KEY.test(request.idempotencyKey)) {
      throw validationError([{ field: 'headers.idempotency-key', message: 'must be 1 to 200 characters of letters, digits, _ . : -' }]);
    }
    const hash = refundRequestHash(request);
    const key = request.idempotencyKey !== undefined ? `key:${request.idempotencyKey}` : `auto:${hash}`;
    const recorded = await asSystem(this.options.database, (tx) => this.record(tx, request, key, hash, actor));
    if (recorded.stripe_refund_id !== null || recorded.status === 'rejected') return this.answer(recorded);
    return this.submit(recorded, actor);
  }

  /** Step 1: the refunds row for this key (found or created), under the payment's row lock. */
  private async record(tx: Queryable, request: RefundRequest, key: string, hash: string, actor: RefundActor): Promise<RefundRow> {
    const { clock } = this.options;
    const { rows: payments } = await tx.query<PaymentForRefund>(
      `SELECT id, account_id, status, amount_cents, amount_refunded_cents, currency, stripe_payment_intent_id, stripe_charge_id
       FROM payments WHERE id = $1 FOR UPDATE`,
      [request.paymentId],
    );
    const payment = payments[0];
    const { rows: existing } = await tx.query<RefundRow>('SELECT * FROM refunds WHERE idempotency_key = $1', [key]);
    const found = existing[0];
    if (found) {
      if (found.request_hash !== hash) throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This Idempotency-Key was used with another request');
      return found;
    }
    if (!payment) throw new AppError('NOT_FOUND', 'Payment not found');
    if (payment.status !== 'succeeded' || (payment.stripe_payment_intent_id === null && payment.stripe_charge_id === null)) {
      throw new AppError('CONFLICT', 'Only a succeeded payment can be refunded');
    }
    const { rows: sums } = await tx.query<{ outstanding: number }>(
      `SELECT coalesce(sum(amount_cents), 0)::bigint AS outstanding FROM refunds WHERE payment_id = $1 AND status = ANY($2::text[])`,
      [payment.id, OUTSTANDING],
    );
    const alreadyRefunded = Math.max(Number(payment.amount_refunded_cents), Number(sums[0]?.outstanding ?? 0));
    const refundable = Number(payment.amount_cents) - alreadyRefunded;
    if (refundable <= 0) throw new AppError('CONFLICT', 'Nothing is left to refund on this payment');
    if (request.amount !== undefined && request.amount > refundable) {
      throw validationError([{ field: 'amount', message: `must be at most ${refundable} (cents left to refund on this payment)` }]);
    }
    const now = clock.now();
    const { rows } = await tx.query<RefundRow>(
      `INSERT INTO refunds (id, account_id, payment_id, idempotency_key, request_hash, requested_amount_cents, amount_cents, currency, reason,
         stripe_reason, status, actor_type, actor_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'requested', $11, $12, $13, $13) RETURNING *`,
      [
        newId('refund'),
        payment.account_id,
        payment.id,
        key,
        hash,
        request.amount ?? null,
        request.amount ?? refundable,
        payment.currency,
        request.reason,
        stripeReasonOf(request.reason),
        actor.actorType,
        actor.actorId,
        now,
      ],
    );
    const row = rows[0] as RefundRow;
    await auditRefund(tx, clock, actor, 'payment.refund_requested', { paymentId: payment.id, accountId: payment.account_id }, {
          refundId: row.id,
          amount: Number(row.amount_cents),
          full: request.amount === undefined,
          currency: row.currency,
          paymentAmount: Number(payment.amount_cents),
          alreadyRefunded,
          reason: row.stripe_reason ?? 'other',
        });
    return row;
  }

  /** Steps 2 and 3: the Stripe call (same operation id on every attempt), then its answer stored. */
  private async submit(row: RefundRow, actor: RefundActor): Promise<RefundView> {
    const { database, clock, stripe } = this.options;
    const payment = await asSystem(database, async (tx) => {
      const { rows } = await tx.query<PaymentForRefund>('SELECT * FROM payments WHERE id = $1', [row.payment_id]);
      return rows[0] as PaymentForRefund;
    });
    let refund: Stripe.Refund;
    try {
      refund = await stripe.createRefund(row.id, {
        ...(payment.stripe_payment_intent_id !== null ? { payment_intent: payment.stripe_payment_intent_id } : { charge: payment.stripe_charge_id as string }),
        // A full refund is sent as the amount resolved when it was asked, so a retry never refunds more.
        amount: Number(row.amount_cents),
        ...(row.stripe_reason !== null ? { reason: row.stripe_reason } : {}),
        metadata: { bulwark_refund_id: row.id, bulwark_payment_id: row.payment_id },
      });
    } catch (error) {
      if (error instanceof Stripe.errors.StripeInvalidRequestError || error instanceof Stripe.errors.StripeCardError) {
        const code = stripeErrorCode(error);
        await asSystem(database, async (tx) => {
          await tx.query(`UPDATE refunds SET status = 'rejected', error_code = $2, updated_at = $3 WHERE id = $1 AND status = 'requested'`, [row.id, code, clock.now()]);
          await auditRefund(tx, clock, actor, 'payment.refund_rejected', { paymentId: row.payment_id, accountId: row.account_id }, { refundId: row.id, amount: Number(row.amount_cents), stripeError: code });
        });
        throw new AppError('CONFLICT', 'Stripe refused the refund (nothing was refunded)');
      }
      // Network trouble or Stripe unavailable: the row stays `requested`; a retry sends the same operation.
      throw new AppError('SERVICE_UNAVAILABLE', 'Stripe could not be reached; retry the request (it will not refund twice)');
    }
    const stored = await asSystem(database, async (tx) => {
      // Only the first attempt to get Stripe's answer stores it and audits it (concurrent retries of one key).
      const { rows } = await tx.query<RefundRow>(
        `UPDATE refunds SET stripe_refund_id = $2, status = $3, updated_at = $4 WHERE id = $1 AND stripe_refund_id IS NULL RETURNING *`,
        [row.id, refund.id, refund.status ?? 'pending', clock.now()],
      );
      const updated = rows[0];
      if (!updated) return (await tx.query<RefundRow>('SELECT * FROM refunds WHERE id = $1', [row.id])).rows[0] as RefundRow;
      await auditRefund(tx, clock, actor, 'payment.refund_submitted', { paymentId: row.payment_id, accountId: row.account_id }, { refundId: row.id, stripeRefundId: refund.id, status: updated.status, amount: refund.amount, currency: refund.currency });
      return updated;
    });
    return refundView(stored);
  }

  private answer(row: RefundRow): RefundView {
    if (row.status === 'rejected') throw new AppError('CONFLICT', 'Stripe refused the refund (nothing was refunded)');
    return refundView(row);
  }

  /** The refunds of one payment, newest first (operator views). */
  async listForPayment(paymentId: string): Promise<RefundView[]> {
    const { rows } = await asSystem(this.options.database, (tx) =>
      tx.query<RefundRow>('SELECT * FROM refunds WHERE payment_id = $1 ORDER BY created_at DESC, id DESC', [paymentId]),
    );
    return rows.map(refundView);
  }
}
