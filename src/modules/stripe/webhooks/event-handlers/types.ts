import type Stripe from 'stripe';
import type { Clock } from '../../../../platform/clock.js';
import type { Queryable, Transaction } from '../../../../platform/database/database.js';
import type { Alerter } from '../../../audit/alerts.js';
import type { CreditsService } from '../../../credits/credits.service.js';
import type { Notifier } from '../../../notifications/notifier.js';
import type { CreditPack } from '../../../plans/plan-features.js';
import type { StripeGateway } from '../../gateway.js';
import type { FinalStatus } from '../inbox.repository.js';

/** What a handler runs with: the event's transaction, already acting for the event's account. */
export interface HandlerContext {
  readonly tx: Transaction;
  readonly event: Stripe.Event;
  readonly accountId: string;
  /** The Stripe customer the event named (null for events that name only a charge, such as disputes). */
  readonly customerId: string | null;
  readonly now: Date;
}

export interface HandlerResult {
  readonly status: FinalStatus;
  /** An UPPER_SNAKE code saying why (ignored, refused, or a processed event without effect). */
  readonly reason?: string;
  /** Runs once the event's transaction has committed (alerts: never for an effect that rolled back). */
  readonly afterCommit?: () => void;
}

/** Charge, invoice, subscription and checkout events are refused for owner and test accounts (OWN-1). */
export type EventFamily = 'checkout' | 'subscription' | 'invoice' | 'charge';

export interface EventHandler {
  readonly family: EventFamily;
  handle(context: HandlerContext): Promise<HandlerResult>;
}

/**
 * What the handlers need from the plan catalogue, read in the event's own transaction
 * (the price in force when the grant commits; and on PGlite's single connection a read
 * outside the open transaction would wait for it forever).
 */
export interface BillingCatalogue {
  creditPack(tx: Queryable, packId: string): Promise<CreditPack | undefined>;
  /** True when the plan exists in the catalogue. */
  hasPlan(tx: Queryable, planId: string): Promise<boolean>;
}

export interface HandlerDependencies {
  readonly stripe: StripeGateway;
  readonly credits: CreditsService;
  /** Emails and outgoing webhooks, queued in the event's transaction. */
  readonly notifier: Notifier;
  readonly alerter: Alerter;
  readonly catalogue: BillingCatalogue;
  readonly clock: Clock;
  /** PAST_DUE_GRACE_DAYS (PAY-6): how long a past_due subscription keeps its plan. */
  readonly pastDueGraceDays: number;
}

export const processed = (reason?: string): HandlerResult => (reason ? { status: 'processed', reason } : { status: 'processed' });
export const ignored = (reason: string): HandlerResult => ({ status: 'ignored', reason });
export const refused = (reason: string): HandlerResult => ({ status: 'refused', reason });
