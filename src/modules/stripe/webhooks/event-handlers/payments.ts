import type Stripe from 'stripe';
import { recordAudit } from '../../../audit/audit.service.js';
import { findPaymentForUpdate, savePayment, type PaymentStatus } from '../billing-state.repository.js';
import { lockStripeObject } from '../inbox.repository.js';
import { stripeIdOf } from '../stripe-conventions.js';
import { reverseRefundedCredits, syncRefundRows } from './refund-reversal.js';
import { applyEntitledPlan, auditPlanChange, stripeTimeOf, syncSubscription } from './subscriptions.js';
import { processed, refused, type EventHandler, type HandlerDependencies, type HandlerResult } from './types.js';

/**
 * Invoices and charges (WH-9), recorded in `payments` for the paid lifecycle to build on
 * (renewals, failed payments, refunds, reconciliation): invoice.paid,
 * invoice.payment_failed, invoice.payment_action_required, charge.succeeded,
 * charge.failed, charge.refunded, charge.dispute.created. Each re-fetches its object
 * (WH-5) under a lock on the payment intent, and mergePayment keeps a payment from
 * moving backwards. None of them grants credits; a refund of a credit
 * pack takes back its unspent credits (PAY-7, refund-reversal.ts); a dispute alerts.
 *
 * The invoice events of a subscription also re-fetch and store that subscription
 * (syncSubscription: a failed renewal makes it past_due at Stripe, PAY-6) and queue the
 * payment notifications: payment.failed with the payment_failed email,
 * payment.action_required with the payment_action_required email (its hosted invoice
 * link), payment.succeeded without one. A failed payment never upgrades: the plan only
 * ever follows the stored subscriptions (entitledPlanOf), and a past_due one keeps its
 * plan for the grace period only.
 */

function invoiceStatus(invoice: Stripe.Invoice, eventType: string): PaymentStatus {
  if (invoice.status === 'paid') return 'succeeded';
  if (invoice.status === 'void' || invoice.status === 'uncollectible') return 'failed';
  if (eventType === 'invoice.payment_failed') return 'failed';
  if (eventType === 'invoice.payment_action_required') return 'requires_action';
  return 'pending';
}

function chargeStatus(charge: Stripe.Charge): PaymentStatus {
  if (charge.status === 'succeeded') return 'succeeded';
  if (charge.status === 'failed') return 'failed';
  return 'pending';
}

const iso = (secondsValue: number | null | undefined): string | null =>
  secondsValue === null || secondsValue === undefined ? null : new Date(secondsValue * 1000).toISOString();

export function invoiceHandler(deps: HandlerDependencies): EventHandler {
  return {
    family: 'invoice',
    async handle(context): Promise<HandlerResult> {
      const { tx, event, accountId, customerId, now } = context;
      const invoiceId = (event.data.object as Stripe.Invoice).id;
      if (!invoiceId) return refused('MALFORMED_OBJECT');
      const invoice = await deps.stripe.retrieveInvoice(invoiceId);
      if (stripeIdOf(invoice.customer) !== customerId) return refused('CUSTOMER_MISMATCH');
      const subscriptionId = stripeIdOf(invoice.parent?.subscription_details?.subscription ?? null);
      // The subscription first (its lock, then the payment's), as its own events would.
      const synced = subscriptionId !== null ? await syncSubscription(deps, context, { id: subscriptionId }) : undefined;
      if (synced?.result.status === 'refused') return synced.result;
      const invoicePayments = await deps.stripe.listInvoicePayments({ invoice: invoiceId, limit: 10 });
      const paymentIntentId =
        invoicePayments.data.map((item) => stripeIdOf(item.payment.payment_intent)).find((id): id is string => id !== null) ?? null;
      await lockStripeObject(tx, paymentIntentId ?? invoiceId);
      const stored = await findPaymentForUpdate(tx, { invoiceId, paymentIntentId });
      const status = invoiceStatus(invoice, event.type);
      const saved = await savePayment(
        tx,
        accountId,
        stored,
        {
          kind: 'subscription_invoice',
          invoiceId,
          paymentIntentId,
          subscriptionId,
          amountCents: status === 'succeeded' ? invoice.amount_paid : invoice.amount_due,
          currency: invoice.currency,
          status,
        },
        now,
      );
      const data = {
        invoiceId,
        paymentId: saved.id,
        subscriptionId,
        amountDue: invoice.amount_due,
        amountPaid: invoice.amount_paid,
        currency: invoice.currency,
        attemptCount: invoice.attempt_count,
        nextPaymentAttempt: iso(invoice.next_payment_attempt),
        hostedInvoiceUrl: invoice.hosted_invoice_url ?? null,
      };
      if (event.type === 'invoice.payment_failed') {
        await deps.notifier.emit(tx, { type: 'payment.failed', accountId, data, email: { template: 'payment_failed' } });
      } else if (event.type === 'invoice.payment_action_required') {
        await deps.notifier.emit(tx, { type: 'payment.action_required', accountId, data, email: { template: 'payment_action_required' } });
      } else if (event.type === 'invoice.paid' && invoice.amount_paid > 0) {
        // Once per invoice: Stripe sends invoice.paid once, and the inbox drops its redeliveries.
        await deps.notifier.emit(tx, { type: 'payment.succeeded', accountId, data });
      }
      // Without a subscription (or one we could not fetch) the grace period may still have run out.
      const change = synced?.result.status === 'processed' ? null : await applyEntitledPlan(deps, tx, accountId, stripeTimeOf(event, now), now);
      // Audit entries last (the chain lock is held to commit).
      await synced?.audit();
      if (change) await auditPlanChange(deps, tx, accountId, change, { invoiceId, eventId: event.id });
      return processed();
    },
  };
}

export function chargeHandler(deps: HandlerDependencies): EventHandler {
  return {
    family: 'charge',
    async handle({ tx, event, accountId, customerId, now }): Promise<HandlerResult> {
      const charge = await deps.stripe.retrieveCharge((event.data.object as Stripe.Charge).id);
      if (stripeIdOf(charge.customer) !== customerId) return refused('CUSTOMER_MISMATCH');
      const paymentIntentId = stripeIdOf(charge.payment_intent);
      await lockStripeObject(tx, paymentIntentId ?? charge.id);
      const stored = await findPaymentForUpdate(tx, { paymentIntentId, chargeId: charge.id });
      const saved = await savePayment(
        tx,
        accountId,
        stored,
        { paymentIntentId, chargeId: charge.id, amountCents: charge.amount, currency: charge.currency, status: chargeStatus(charge), amountRefundedCents: charge.amount_refunded },
        now,
      );
      const newlyRefunded = saved.amount_refunded_cents > (stored?.amount_refunded_cents ?? 0);
      // PAY-7: the credits of a refunded pack, once however often this is delivered (refund-reversal.ts).
      const reversal = saved.amount_refunded_cents > 0 ? await reverseRefundedCredits(tx, saved, now) : undefined;
      if (newlyRefunded) {
        const refunds = await deps.stripe.listRefunds({ charge: charge.id, limit: 100 });
        await syncRefundRows(tx, saved.id, refunds.data, now);
        await deps.notifier.emit(tx, {
          type: 'payment.refunded',
          accountId,
          data: {
            paymentId: saved.id,
            amount: saved.amount_cents,
            amountRefunded: saved.amount_refunded_cents,
            currency: saved.currency,
            fullyRefunded: saved.amount_refunded_cents >= saved.amount_cents,
            creditsReversed: reversal?.totalReversed ?? saved.credits_reversed,
          },
        });
      }
      // Audit entries last (the chain lock is held to commit).
      if (newlyRefunded) {
        await recordAudit(
          tx,
          {
            event: 'payment.refunded',
            actorType: 'system',
            subjectType: 'payment',
            subjectId: saved.id,
            accountId,
            metadata: { eventId: event.id, chargeId: charge.id, amountRefunded: saved.amount_refunded_cents, amount: saved.amount_cents, currency: saved.currency },
          },
          deps.clock,
        );
      }
      if (reversal) {
        await recordAudit(
          tx,
          {
            event: 'credits.refund_reversed',
            actorType: 'system',
            subjectType: 'credit_grant',
            subjectId: reversal.grantId,
            accountId,
            metadata: {
              eventId: event.id,
              paymentId: saved.id,
              chargeId: charge.id,
              amount: saved.amount_cents,
              amountRefunded: saved.amount_refunded_cents,
              creditsGranted: saved.credits_granted,
              target: reversal.target,
              taken: reversal.taken,
              shortfall: reversal.shortfall,
              totalReversed: reversal.totalReversed,
              totalShortfall: reversal.totalShortfall,
            },
          },
          deps.clock,
        );
      }
      return processed();
    },
  };
}

/**
 * charge.dispute.created: the dispute names a charge, not a customer, so its account is
 * the one of the payment recorded for that charge (unknown charges are ignored by the
 * processor). The charge is re-fetched for its amounts.
 */
export function disputeHandler(deps: HandlerDependencies): EventHandler {
  return {
    family: 'charge',
    async handle({ tx, event, accountId, now }): Promise<HandlerResult> {
      const dispute = event.data.object as Stripe.Dispute;
      const chargeId = stripeIdOf(dispute.charge);
      if (chargeId === null) return refused('MALFORMED_OBJECT');
      const charge = await deps.stripe.retrieveCharge(chargeId);
      const paymentIntentId = stripeIdOf(charge.payment_intent);
      await lockStripeObject(tx, paymentIntentId ?? charge.id);
      const stored = await findPaymentForUpdate(tx, { paymentIntentId, chargeId });
      if (!stored || stored.account_id !== accountId) return refused('CUSTOMER_MISMATCH');
      const saved = await savePayment(
        tx,
        accountId,
        stored,
        { paymentIntentId, chargeId, amountCents: charge.amount, currency: charge.currency, status: chargeStatus(charge), amountRefundedCents: charge.amount_refunded, disputedAt: now },
        now,
      );
      // Once per dispute event: the inbox never runs a handler twice for one event id (WH-3).
      await deps.notifier.emit(tx, {
        type: 'payment.disputed',
        accountId,
        data: { paymentId: saved.id, disputeId: dispute.id, amount: dispute.amount, currency: dispute.currency, reason: dispute.reason },
      });
      await recordAudit(
        tx,
        {
          event: 'payment.disputed',
          actorType: 'system',
          subjectType: 'payment',
          subjectId: saved.id,
          accountId,
          metadata: { eventId: event.id, disputeId: dispute.id, chargeId, amount: dispute.amount, currency: dispute.currency, reason: dispute.reason },
        },
        deps.clock,
      );
      // AUD-3: a dispute pages the operator (after commit: never for an effect that rolled back).
      const alert = (): void =>
        deps.alerter.alert('payment_disputed', `Stripe dispute ${dispute.id} opened on a payment`, {
          accountId,
          paymentId: saved.id,
          disputeId: dispute.id,
          chargeId,
          amount: dispute.amount,
          currency: dispute.currency,
          reason: dispute.reason,
        });
      return { ...processed(), afterCommit: alert };
    },
  };
}
