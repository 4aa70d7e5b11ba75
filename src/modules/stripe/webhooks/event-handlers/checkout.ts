import type Stripe from 'stripe';
import { recordAudit } from '../../../audit/audit.service.js';
import type { CreditPack } from '../../../plans/plan-features.js';
import { findPaymentForUpdate, savePayment, setPaymentGrant, type PaymentStatus } from '../billing-state.repository.js';
import { lockStripeObject } from '../inbox.repository.js';
import { ACCOUNT_METADATA_KEY, CREDIT_PACK_METADATA_KEY, stripeIdOf } from '../stripe-conventions.js';
import { ignored, processed, refused, type EventHandler, type HandlerDependencies, type HandlerResult } from './types.js';

/**
 * Credit pack purchases (PAY-3, WH-6): checkout.session.completed,
 * checkout.session.async_payment_succeeded and checkout.session.async_payment_failed for
 * sessions in payment mode whose metadata names a credit pack. The session is re-fetched
 * (WH-5), so the payment status is Stripe's current one, not the event's.
 *
 * Exactly once (WH-4): the payment row (locked, one per checkout session) records the
 * one grant, in the same transaction as the event row; however many events and
 * deliveries name the session, only the first that sees it paid grants.
 */

export type GrantDecision =
  | { readonly grant: true; readonly credits: number }
  | { readonly grant: false; readonly reason: 'UNKNOWN_PACK' | 'AMOUNT_MISMATCH' | 'CURRENCY_MISMATCH' };

/** WH-6: credits only when the amount paid and its currency are exactly the pack's price. Pure. */
export function decideCreditPackGrant(
  pack: CreditPack | undefined,
  paid: { readonly amountTotal: number | null; readonly currency: string | null },
): GrantDecision {
  if (!pack) return { grant: false, reason: 'UNKNOWN_PACK' };
  if (paid.amountTotal === null || !Number.isSafeInteger(paid.amountTotal) || paid.amountTotal !== pack.priceCents) {
    return { grant: false, reason: 'AMOUNT_MISMATCH' };
  }
  if (paid.currency === null || paid.currency.toLowerCase() !== pack.currency.toLowerCase()) return { grant: false, reason: 'CURRENCY_MISMATCH' };
  return { grant: true, credits: pack.credits };
}

function paymentStatusOf(session: Stripe.Checkout.Session, eventType: string): PaymentStatus {
  if (session.payment_status === 'paid' || session.payment_status === 'no_payment_required') return 'succeeded';
  return eventType === 'checkout.session.async_payment_failed' ? 'failed' : 'pending';
}

export function checkoutHandler(deps: HandlerDependencies): EventHandler {
  return {
    family: 'checkout',
    async handle({ tx, event, accountId, customerId, now }): Promise<HandlerResult> {
      const fromEvent = event.data.object as Stripe.Checkout.Session;
      // Subscription checkouts change nothing here: the subscription's own events do.
      if (fromEvent.mode !== 'payment') return ignored('NOT_A_CREDIT_PACK');
      await lockStripeObject(tx, fromEvent.id);
      const session = await deps.stripe.retrieveCheckoutSession(fromEvent.id);
      if (stripeIdOf(session.customer) !== customerId) return refused('CUSTOMER_MISMATCH');
      const packId = session.metadata?.[CREDIT_PACK_METADATA_KEY];
      if (packId === undefined || packId === '') return ignored('NOT_A_CREDIT_PACK');
      const paymentIntentId = stripeIdOf(session.payment_intent);
      const stored = await findPaymentForUpdate(tx, { checkoutSessionId: session.id, paymentIntentId });
      const payment = await savePayment(
        tx,
        accountId,
        stored,
        {
          kind: 'credit_pack',
          checkoutSessionId: session.id,
          paymentIntentId,
          creditPackId: packId.slice(0, 64),
          amountCents: session.amount_total ?? 0,
          currency: session.currency ?? 'usd',
          status: paymentStatusOf(session, event.type),
        },
        now,
      );
      if (session.payment_status !== 'paid') return processed();
      if (payment.credit_grant_id !== null) return processed('ALREADY_GRANTED');

      const pack = await deps.catalogue.creditPack(tx, packId);
      const decision = decideCreditPackGrant(pack, { amountTotal: session.amount_total, currency: session.currency });
      const namedAccount = session.metadata?.[ACCOUNT_METADATA_KEY];
      const details = {
        eventId: event.id,
        checkoutSessionId: session.id,
        paymentIntentId,
        packId,
        amountTotal: session.amount_total,
        currency: session.currency,
        // Metadata naming another account is ignored: the credits go to the customer's owner only.
        ...(namedAccount !== undefined && namedAccount !== accountId ? { metadataAccountIgnored: namedAccount } : {}),
      };
      if (!decision.grant) {
        await recordAudit(
          tx,
          {
            event: 'credits.purchase_refused',
            actorType: 'system',
            subjectType: 'payment',
            subjectId: payment.id,
            accountId,
            metadata: { ...details, reason: decision.reason, expectedAmount: pack?.priceCents ?? null, expectedCurrency: pack?.currency ?? null },
          },
          deps.clock,
        );
        return refused(decision.reason);
      }
      // Queued before the grant's audit entry (audit entries come last in the transaction).
      await deps.notifier.emit(tx, {
        type: 'credits.purchased',
        accountId,
        data: { paymentId: payment.id, creditPackId: payment.credit_pack_id, credits: decision.credits, amount: payment.amount_cents, currency: payment.currency },
      });
      const grant = await deps.credits.grantIn(
        tx,
        accountId,
        { amount: decision.credits, source: 'purchase', reference: paymentIntentId ?? session.id },
        { actorType: 'system', actorId: null },
      );
      await setPaymentGrant(tx, payment.id, grant.id, grant.amount, now);
      if (details.metadataAccountIgnored !== undefined) {
        await recordAudit(
          tx,
          { event: 'billing.metadata_account_ignored', actorType: 'system', subjectType: 'payment', subjectId: payment.id, accountId, metadata: details },
          deps.clock,
        );
      }
      return processed();
    },
  };
}
