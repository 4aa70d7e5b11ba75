import { listAll } from '../stripe/stripe-lists.js';
import type { Logger } from 'pino';
import Stripe from 'stripe';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database, type Queryable } from '../../platform/database/database.js';
import { clampPageLimit } from '../../platform/http/pagination.js';
import { newId } from '../../platform/ids.js';
import type { Alerter } from '../audit/alerts.js';
import { recordAudit } from '../audit/audit.service.js';
import type { ExemptionLookup } from '../plans/exemptions.js';
import type { PaymentRow, SubscriptionRow } from '../stripe/webhooks/billing-state.repository.js';
import { decideCreditPackGrant } from '../stripe/webhooks/event-handlers/checkout.js';
import { createEventHandlers } from '../stripe/webhooks/event-handlers/index.js';
import { reversalTarget } from '../stripe/webhooks/event-handlers/refund-reversal.js';
import type { EventHandler, HandlerDependencies } from '../stripe/webhooks/event-handlers/types.js';
import { actForAccount } from '../stripe/webhooks/inbox.repository.js';
import { failureCode } from '../stripe/webhooks/webhook-processor.js';
import { CREDIT_PACK_METADATA_KEY, planIdOfPrice, stripeIdOf } from '../stripe/webhooks/stripe-conventions.js';

/**
 * PAY-8: reconciliation of the local billing state with Stripe, Stripe being the source
 * of truth.
 *
 * For every account with a Stripe customer (owner and test accounts excluded: OWN-1) it
 * lists, through the gateway, the customer's checkout sessions, charges and
 * subscriptions, and compares them with `payments` and `subscriptions`:
 *
 * | kind                     | found when                                                        | repaired by                         |
 * |--------------------------|-------------------------------------------------------------------|-------------------------------------|
 * | payment_missing          | a paid credit-pack session, or a succeeded charge, has no payment | checkout handler / charge handler   |
 * | credit_grant_missing     | a paid credit-pack payment that should have granted, has no grant | checkout handler                    |
 * | payment_status_mismatch  | Stripe's charge succeeded, the local payment is not               | charge handler                      |
 * | refund_missing           | Stripe refunded more of the charge than recorded locally          | charge handler (charge.refunded)    |
 * | credit_reversal_missing  | a refunded credit pack whose credits were not all taken back      | charge handler (charge.refunded)    |
 * | subscription_missing     | a Stripe subscription of the customer is not stored               | subscription handler                |
 * | subscription_mismatch    | status, plan or cancel-at-period-end differ                       | subscription handler                |
 * | subscription_not_at_stripe | a stored subscription Stripe no longer lists for the customer   | reported only                       |
 *
 * A repair runs the webhook event handler of the object (the same code, not a copy) with
 * a synthetic event `evt_reconcile_...` naming it, acting for the account, in one
 * transaction with its audit entry `reconciliation.repaired` (written last). The handlers
 * re-fetch the object from Stripe under the object's lock and are exactly-once by their
 * own rules (one grant per payment, the reversal's cumulative columns), so a repair that
 * races a late webhook does nothing twice. Every discrepancy is written to
 * reconciliation_discrepancies under its run (reconciliation_runs); a run with any
 * discrepancy raises a critical alert (AUD-3). One run at a time (a unique index over
 * running runs): the scheduled job (`billing.reconciliation`, once per interval across
 * instances: OPS-5), POST /api/admin/reconciliation/run and `bulwark reconcile`.
 */

export type ReconciliationTrigger = 'schedule' | 'admin' | 'cli';
export type Resolution = 'repaired' | 'failed' | 'reported';

export interface ReconciliationActor {
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip?: string | null;
}

export type DiscrepancyValues = Readonly<Record<string, string | number | boolean | null>>;

export interface DiscrepancyView {
  readonly kind: string;
  readonly objectType: string;
  readonly objectId: string;
  readonly accountId: string | null;
  readonly local: DiscrepancyValues | null;
  readonly stripe: DiscrepancyValues | null;
  readonly resolution: Resolution;
  readonly errorCode: string | null;
}

export interface ReconciliationReport {
  readonly id: string;
  readonly trigger: ReconciliationTrigger;
  readonly status: 'running' | 'succeeded' | 'failed';
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly customersChecked: number;
  /** How many discrepancies were found, repaired, and could not be repaired (failed). */
  readonly discrepancies: number;
  readonly repaired: number;
  readonly failed: number;
  readonly errorCode: string | null;
  /** Discrepancies by kind. */
  readonly summary: Readonly<Record<string, number>>;
  readonly items: DiscrepancyView[];
}

export interface ReconciliationServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  readonly alerter: Alerter;
  readonly exemptions: ExemptionLookup;
  /** What the webhook handlers run with (stripe, credits, notifier, alerter, catalogue, clock). */
  readonly handlers: HandlerDependencies;
  /** A run still `running` after this long is taken for dead (its instance stopped): default 1 hour. */
  readonly staleAfterMs?: number;
}

interface RunRow {
  id: string;
  trigger: ReconciliationTrigger;
  status: 'running' | 'succeeded' | 'failed';
  customers_checked: number;
  discrepancies: number;
  repaired: number;
  repair_failed: number;
  error_code: string | null;
  started_at: Date;
  finished_at: Date | null;
}

interface DiscrepancyRow {
  run_id: string;
  kind: string;
  object_type: string;
  object_id: string;
  account_id: string | null;
  local_value: DiscrepancyValues | null;
  stripe_value: DiscrepancyValues | null;
  resolution: Resolution;
  error_code: string | null;
}

interface Found {
  readonly kind: string;
  readonly objectType: 'subscription' | 'payment' | 'checkout_session' | 'charge';
  readonly objectId: string;
  readonly local: DiscrepancyValues | null;
  readonly stripe: DiscrepancyValues | null;
  /** The handler to run and the event type it is given; absent: reported only. */
  readonly repair?: { readonly handler: EventHandler; readonly eventType: string; readonly object: { id: string } };
}

interface Customer {
  readonly accountId: string;
  readonly customerId: string;
}

const MAX_ITEMS_PER_LIST = 1_000;
const listAllPages = <T extends { id: string }>(page: (startingAfter: string | undefined) => Promise<Stripe.ApiList<T>>) => listAll(page, MAX_ITEMS_PER_LIST);
const MAX_ITEMS_PER_REPORT = 200;

/** A Stripe event around `object`, for a handler that re-fetches the object anyway. Never stored in the inbox. */
function syntheticEvent(type: string, object: { id: string }, sequence: number, runId: string, now: Date): Stripe.Event {
  return {
    id: `evt_reconcile_${runId.slice(4).replace(/[^A-Za-z0-9]/g, '')}_${sequence}`,
    object: 'event',
    api_version: Stripe.API_VERSION,
    created: Math.floor(now.getTime() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 0,
    request: { id: null, idempotency_key: null },
    type,
  } as unknown as Stripe.Event;
}

function reportOf(run: RunRow, rows: readonly DiscrepancyRow[]): ReconciliationReport {
  const summary: Record<string, number> = {};
  for (const row of rows) summary[row.kind] = (summary[row.kind] ?? 0) + 1;
  return {
    id: run.id,
    trigger: run.trigger,
    status: run.status,
    startedAt: run.started_at.toISOString(),
    finishedAt: run.finished_at?.toISOString() ?? null,
    customersChecked: run.customers_checked,
    discrepancies: run.discrepancies,
    repaired: run.repaired,
    failed: run.repair_failed,
    errorCode: run.error_code,
    summary,
    items: rows.slice(0, MAX_ITEMS_PER_REPORT).map((row) => ({
      kind: row.kind,
      objectType: row.object_type,
      objectId: row.object_id,
      accountId: row.account_id,
      local: row.local_value,
      stripe: row.stripe_value,
      resolution: row.resolution,
      errorCode: row.error_code,
    })),
  };
}

export class ReconciliationService {
  private readonly handlers: ReadonlyMap<string, EventHandler>;

  constructor(private readonly options: ReconciliationServiceOptions) {
    this.handlers = createEventHandlers(options.handlers);
  }

  private handler(type: string): EventHandler {
    const handler = this.handlers.get(type);
    if (!handler) throw new Error(`no handler for ${type}`);
    return handler;
  }

  /** Runs one reconciliation now and answers its report. 409 while another run is in progress. */
  async run(trigger: ReconciliationTrigger, actor: ReconciliationActor): Promise<ReconciliationReport> {
    const { database, clock, logger, alerter } = this.options;
    const runId = await this.claim(trigger);
    const counts = { customers: 0, discrepancies: 0, repaired: 0, failed: 0 };
    let sequence = 0;
    try {
      const customers = await this.customers();
      for (const customer of customers) {
        const found = await this.compare(customer);
        counts.customers += 1;
        for (const item of found) {
          sequence += 1;
          const outcome = await this.resolve(runId, customer, item, sequence, actor);
          counts.discrepancies += 1;
          if (outcome.resolution === 'repaired') counts.repaired += 1;
          if (outcome.resolution === 'failed') counts.failed += 1;
        }
      }
    } catch (error) {
      const code = failureCode(error);
      logger.error({ err: error, runId, code }, 'reconciliation run failed');
      await asSystem(database, (tx) =>
        tx.query(
          `UPDATE reconciliation_runs SET status = 'failed', error_code = $2, finished_at = $3, customers_checked = $4, discrepancies = $5, repaired = $6, repair_failed = $7 WHERE id = $1`,
          [runId, code, clock.now(), counts.customers, counts.discrepancies, counts.repaired, counts.failed],
        ),
      );
      alerter.alert('reconciliation_discrepancy', 'reconciliation with Stripe failed before it finished', { runId, errorCode: code, ...counts });
      throw error;
    }
    await asSystem(database, (tx) =>
      tx.query(
        `UPDATE reconciliation_runs SET status = 'succeeded', finished_at = $2, customers_checked = $3, discrepancies = $4, repaired = $5, repair_failed = $6 WHERE id = $1`,
        [runId, clock.now(), counts.customers, counts.discrepancies, counts.repaired, counts.failed],
      ),
    );
    if (counts.discrepancies > 0) {
      // AUD-3: every run that found drift pages the operator.
      alerter.alert('reconciliation_discrepancy', `${counts.discrepancies} discrepancies between local billing state and Stripe (${counts.repaired} repaired)`, {
        runId,
        discrepancies: counts.discrepancies,
        repaired: counts.repaired,
        failed: counts.failed,
      });
    }
    logger.info({ runId, trigger, ...counts }, 'reconciliation finished');
    const report = await this.report(runId);
    if (!report) throw new Error('reconciliation run vanished');
    return report;
  }

  /** One run's report, or undefined. */
  async report(runId: string): Promise<ReconciliationReport | undefined> {
    return asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<RunRow>('SELECT * FROM reconciliation_runs WHERE id = $1', [runId]);
      const run = rows[0];
      if (!run) return undefined;
      return reportOf(run, await this.discrepanciesOf(tx, [run.id]).then((all) => all.get(run.id) ?? []));
    });
  }

  /** Reports, newest first: `{items, nextCursor}` (the cursor is the last run's id). */
  async list(query: { readonly limit?: number; readonly cursor?: string }): Promise<{ items: ReconciliationReport[]; nextCursor: string | null }> {
    const limit = clampPageLimit(query.limit, 20);
    return asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<RunRow>(
        `SELECT * FROM reconciliation_runs
         WHERE $1::text IS NULL OR (started_at, id) < (SELECT started_at, id FROM reconciliation_runs WHERE id = $1)
         ORDER BY started_at DESC, id DESC LIMIT $2`,
        [query.cursor ?? null, limit + 1],
      );
      const page = rows.slice(0, limit);
      const byRun = await this.discrepanciesOf(
        tx,
        page.map((run) => run.id),
      );
      return {
        items: page.map((run) => reportOf(run, byRun.get(run.id) ?? [])),
        nextCursor: rows.length > limit ? (page.at(-1)?.id ?? null) : null,
      };
    });
  }

  private async discrepanciesOf(tx: Queryable, runIds: readonly string[]): Promise<Map<string, DiscrepancyRow[]>> {
    const byRun = new Map<string, DiscrepancyRow[]>();
    if (runIds.length === 0) return byRun;
    const { rows } = await tx.query<DiscrepancyRow>(
      `SELECT run_id, kind, object_type, object_id, account_id, local_value, stripe_value, resolution, error_code
       FROM reconciliation_discrepancies WHERE run_id = ANY($1::text[]) ORDER BY run_id, id`,
      [runIds],
    );
    for (const row of rows) byRun.set(row.run_id, [...(byRun.get(row.run_id) ?? []), row]);
    return byRun;
  }

  /** The run row (status running); a run left running by a stopped instance is closed first. */
  private async claim(trigger: ReconciliationTrigger): Promise<string> {
    const { database, clock } = this.options;
    const staleBefore = new Date(clock.now().getTime() - (this.options.staleAfterMs ?? 3_600_000));
    const id = newId('reconciliationRun');
    try {
      await asSystem(database, async (tx) => {
        await tx.query(`UPDATE reconciliation_runs SET status = 'failed', error_code = 'ABANDONED', finished_at = $2 WHERE status = 'running' AND started_at < $1`, [
          staleBefore,
          clock.now(),
        ]);
        await tx.query(`INSERT INTO reconciliation_runs (id, trigger, status, started_at) VALUES ($1, $2, 'running', $3)`, [id, trigger, clock.now()]);
      });
    } catch (error) {
      if (sqlStateOf(error) === SqlState.uniqueViolation) throw new AppError('CONFLICT', 'A reconciliation is already running');
      throw error;
    }
    return id;
  }

  private async customers(): Promise<Customer[]> {
    const { rows } = await asSystem(this.options.database, (tx) =>
      tx.query<{ id: string; stripe_customer_id: string }>(
        `SELECT id, stripe_customer_id FROM accounts WHERE stripe_customer_id IS NOT NULL AND status <> 'deleted' ORDER BY id`,
      ),
    );
    // OWN-1: owner and test accounts are never charged; nothing of theirs is repaired either.
    return rows.filter((row) => !this.options.exemptions.exemptionOf(row.id)).map((row) => ({ accountId: row.id, customerId: row.stripe_customer_id }));
  }

  /** Every discrepancy of one customer, in the order they are repaired: purchases, charges, subscriptions. */
  private async compare(customer: Customer): Promise<Found[]> {
    const { stripe, catalogue } = this.options.handlers;
    const { customerId, accountId } = customer;
    const found: Found[] = [];
    const page = { customer: customerId, limit: 100 } as const;
    const [sessions, charges, subscriptions] = await Promise.all([
      listAllPages((after) => stripe.listCheckoutSessions({ ...page, ...(after ? { starting_after: after } : {}) })),
      listAllPages((after) => stripe.listCharges({ ...page, ...(after ? { starting_after: after } : {}) })),
      listAllPages((after) => stripe.listSubscriptions({ ...page, status: 'all', ...(after ? { starting_after: after } : {}) })),
    ]);
    const local = await asSystem(this.options.database, async (tx) => {
      const payments = (await tx.query<PaymentRow>('SELECT * FROM payments WHERE account_id = $1', [accountId])).rows;
      const subs = (await tx.query<SubscriptionRow>('SELECT * FROM subscriptions WHERE account_id = $1', [accountId])).rows;
      const packs = new Map<string, Awaited<ReturnType<typeof catalogue.creditPack>>>();
      for (const session of sessions) {
        const packId = session.metadata?.[CREDIT_PACK_METADATA_KEY];
        if (packId && !packs.has(packId)) packs.set(packId, await catalogue.creditPack(tx, packId));
      }
      const plans = new Map<string, boolean>();
      for (const subscription of subscriptions) {
        const item = subscription.items.data[0];
        const candidate = item ? planIdOfPrice(item.price) : null;
        if (candidate !== null && !plans.has(candidate)) plans.set(candidate, await catalogue.hasPlan(tx, candidate));
      }
      return { payments, subs, packs, plans };
    });
    const paymentOf = (ids: { paymentIntentId?: string | null; chargeId?: string | null; sessionId?: string | null }) =>
      local.payments.find(
        (payment) =>
          (ids.paymentIntentId && payment.stripe_payment_intent_id === ids.paymentIntentId) ||
          (ids.chargeId && payment.stripe_charge_id === ids.chargeId) ||
          (ids.sessionId && payment.stripe_checkout_session_id === ids.sessionId),
      );
    const handledIntents = new Set<string>();

    // Credit pack purchases: paid sessions in payment mode naming a pack.
    for (const session of sessions) {
      const packId = session.metadata?.[CREDIT_PACK_METADATA_KEY];
      if (session.mode !== 'payment' || session.payment_status !== 'paid' || !packId) continue;
      const paymentIntentId = stripeIdOf(session.payment_intent);
      const payment = paymentOf({ paymentIntentId, sessionId: session.id });
      const stripeValue = { checkoutSessionId: session.id, paymentIntentId, packId, amountTotal: session.amount_total, currency: session.currency, paymentStatus: session.payment_status };
      const repair = { handler: this.handler('checkout.session.completed'), eventType: 'checkout.session.completed', object: { id: session.id, object: 'checkout.session', mode: session.mode } };
      if (paymentIntentId) handledIntents.add(paymentIntentId);
      if (!payment) {
        found.push({ kind: 'payment_missing', objectType: 'checkout_session', objectId: session.id, local: null, stripe: stripeValue, repair });
        continue;
      }
      const decision = decideCreditPackGrant(local.packs.get(packId), { amountTotal: session.amount_total, currency: session.currency });
      if (payment.credit_grant_id === null && decision.grant) {
        found.push({
          kind: 'credit_grant_missing',
          objectType: 'checkout_session',
          objectId: session.id,
          local: { paymentId: payment.id, status: payment.status, creditsGranted: Number(payment.credits_granted) },
          stripe: { ...stripeValue, credits: decision.credits },
          repair,
        });
      }
    }

    // Charges: every succeeded charge is a payment; refunds recorded; credit packs reversed.
    for (const charge of charges) {
      if (charge.status !== 'succeeded') continue;
      const paymentIntentId = stripeIdOf(charge.payment_intent);
      const payment = paymentOf({ paymentIntentId, chargeId: charge.id });
      const stripeValue = { chargeId: charge.id, paymentIntentId, status: charge.status, amount: charge.amount, amountRefunded: charge.amount_refunded, currency: charge.currency };
      const object = { id: charge.id, object: 'charge', customer: customerId };
      if (!payment) {
        // A credit pack's charge whose purchase is being repaired above lands on that payment.
        if (paymentIntentId !== null && handledIntents.has(paymentIntentId)) continue;
        found.push({ kind: 'payment_missing', objectType: 'charge', objectId: charge.id, local: null, stripe: stripeValue, repair: { handler: this.handler('charge.succeeded'), eventType: 'charge.succeeded', object } });
        continue;
      }
      const localValue = {
        paymentId: payment.id,
        status: payment.status,
        amount: Number(payment.amount_cents),
        amountRefunded: Number(payment.amount_refunded_cents),
        creditsGranted: Number(payment.credits_granted),
        creditsReversed: Number(payment.credits_reversed),
        creditsReversalShortfall: Number(payment.credits_reversal_shortfall),
      };
      const refundRepair = { handler: this.handler('charge.refunded'), eventType: 'charge.refunded', object };
      if (payment.status !== 'succeeded') {
        found.push({ kind: 'payment_status_mismatch', objectType: 'payment', objectId: charge.id, local: localValue, stripe: stripeValue, repair: { ...refundRepair, eventType: 'charge.succeeded' } });
      } else if (Number(payment.amount_refunded_cents) < charge.amount_refunded) {
        found.push({ kind: 'refund_missing', objectType: 'payment', objectId: charge.id, local: localValue, stripe: stripeValue, repair: refundRepair });
      } else if (
        payment.credit_grant_id !== null &&
        reversalTarget(Number(payment.credits_granted), Number(payment.amount_cents), Number(payment.amount_refunded_cents)) >
          Number(payment.credits_reversed) + Number(payment.credits_reversal_shortfall)
      ) {
        found.push({ kind: 'credit_reversal_missing', objectType: 'payment', objectId: charge.id, local: localValue, stripe: stripeValue, repair: refundRepair });
      }
    }

    // Subscriptions: Stripe's list against the stored rows.
    const listed = new Set<string>();
    for (const subscription of subscriptions) {
      listed.add(subscription.id);
      const item = subscription.items.data[0];
      const candidate = item ? planIdOfPrice(item.price) : null;
      const planId = candidate !== null && local.plans.get(candidate) === true ? candidate : null;
      const stored = local.subs.find((row) => row.id === subscription.id);
      const stripeValue = { subscriptionId: subscription.id, status: subscription.status, planId, cancelAtPeriodEnd: subscription.cancel_at_period_end };
      const eventType = subscription.status === 'canceled' ? 'customer.subscription.deleted' : stored ? 'customer.subscription.updated' : 'customer.subscription.created';
      const repair = { handler: this.handler(eventType), eventType, object: { id: subscription.id, object: 'subscription', customer: customerId } };
      if (!stored) {
        found.push({ kind: 'subscription_missing', objectType: 'subscription', objectId: subscription.id, local: null, stripe: stripeValue, repair });
      } else if (stored.status !== subscription.status || stored.plan_id !== planId || stored.cancel_at_period_end !== subscription.cancel_at_period_end) {
        found.push({
          kind: 'subscription_mismatch',
          objectType: 'subscription',
          objectId: subscription.id,
          local: { subscriptionId: stored.id, status: stored.status, planId: stored.plan_id, cancelAtPeriodEnd: stored.cancel_at_period_end },
          stripe: stripeValue,
          repair,
        });
      }
    }
    for (const stored of local.subs) {
      if (listed.has(stored.id) || stored.stripe_customer_id !== customerId || stored.status === 'canceled' || stored.status === 'incomplete_expired') continue;
      found.push({
        kind: 'subscription_not_at_stripe',
        objectType: 'subscription',
        objectId: stored.id,
        local: { subscriptionId: stored.id, status: stored.status, planId: stored.plan_id },
        stripe: null,
      });
    }
    return found;
  }

  /** Repairs one discrepancy (the handler and its audit entry in one transaction), then records it. */
  private async resolve(runId: string, customer: Customer, item: Found, sequence: number, actor: ReconciliationActor): Promise<{ resolution: Resolution }> {
    const { database, clock, logger } = this.options;
    let resolution: Resolution = 'reported';
    let errorCode: string | null = null;
    if (item.repair) {
      const repair = item.repair;
      try {
        const outcome = await asSystem(database, async (tx) => {
          await actForAccount(tx, customer.accountId);
          const now = clock.now();
          const event = syntheticEvent(repair.eventType, repair.object, sequence, runId, now);
          const result = await repair.handler.handle({ tx, event, accountId: customer.accountId, customerId: customer.customerId, now });
          const repaired = result.status === 'processed' && result.reason !== 'OLDER_STATE';
          if (repaired) {
            await recordAudit(
              tx,
              {
                event: 'reconciliation.repaired',
                actorType: actor.actorType,
                actorId: actor.actorId,
                ip: actor.ip ?? null,
                subjectType: item.objectType,
                subjectId: item.objectId,
                accountId: customer.accountId,
                metadata: { runId, kind: item.kind, via: repair.eventType, eventId: event.id, local: item.local, stripe: item.stripe },
              },
              clock,
            );
          }
          return { repaired, result };
        });
        outcome.result.afterCommit?.();
        resolution = outcome.repaired ? 'repaired' : 'reported';
        errorCode = outcome.repaired ? null : (outcome.result.reason ?? outcome.result.status.toUpperCase());
      } catch (error) {
        resolution = 'failed';
        errorCode = failureCode(error);
        logger.error({ err: error, runId, kind: item.kind, objectId: item.objectId, code: errorCode }, 'reconciliation repair failed; retried on the next run');
      }
    }
    await asSystem(database, (tx) =>
      tx.query(
        `INSERT INTO reconciliation_discrepancies (run_id, kind, object_type, object_id, account_id, local_value, stripe_value, resolution, error_code, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          runId,
          item.kind,
          item.objectType,
          item.objectId,
          customer.accountId,
          item.local === null ? null : JSON.stringify(item.local),
          item.stripe === null ? null : JSON.stringify(item.stripe),
          resolution,
          errorCode === null ? null : errorCode.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 64),
          clock.now(),
        ],
      ),
    );
    return { resolution };
  }
}
