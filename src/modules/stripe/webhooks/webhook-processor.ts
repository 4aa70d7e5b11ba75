import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import Stripe from 'stripe';
import { AppError } from '../../../errors/app-error.js';
import type { Clock } from '../../../platform/clock.js';
import { asSystem } from '../../../platform/database/access.js';
import { sqlStateOf, type Database } from '../../../platform/database/database.js';
import type { Metrics } from '../../../platform/observability/metrics.js';
import type { Alerter } from '../../audit/alerts.js';
import { recordAudit } from '../../audit/audit.service.js';
import type { ExemptionLookup } from '../../plans/exemptions.js';
import { referenceOf } from './event-handlers/index.js';
import type { EventHandler, HandlerResult } from './event-handlers/types.js';
import {
  actForAccount,
  claimDelivery,
  claimReplay,
  finishEvent,
  lookupEvent,
  recordFailure,
  recordReplayFailure,
  TERMINAL_STATUSES,
  type InboxEvent,
} from './inbox.repository.js';

/**
 * Processing of one verified Stripe event (WH-3, WH-4, WH-5, WH-8, OWN-1).
 *
 * 1. One statement: the event's inbox status and the account owning its
 *    customer. An event already processed, ignored, refused or dead is a duplicate: 200,
 *    no effect, no call to Stripe.
 * 2. One transaction: claim the event row (INSERT ... ON CONFLICT; a concurrent delivery
 *    of the same event waits on the key, then sees the committed row and is a duplicate),
 *    then, acting for the account, the handler re-fetches the Stripe object and applies
 *    it; the row's final status commits with the effect, or neither does.
 * 3. If anything throws, the transaction (claim included) rolls back, the attempt is
 *    counted in its own transaction, and the answer is 5xx so Stripe retries; the attempt
 *    that reaches WEBHOOK_MAX_ATTEMPTS marks the event dead (the dead-letter list) and is
 *    answered 200, so Stripe stops. An operator replays a dead event once it can succeed.
 *
 * Events of unhandled types and of unknown customers are recorded as `ignored`; events of
 * owner and test accounts as `refused`, with an alert and an audit entry (OWN-1).
 */

export type ProcessOutcome = 'processed' | 'ignored' | 'refused' | 'duplicate' | 'failed' | 'dead_lettered';

export interface ProcessResult {
  readonly outcome: ProcessOutcome;
  /** Why (ignored, refused, failed: an UPPER_SNAKE code). */
  readonly reason?: string;
}

export interface ReplayActor {
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip?: string | null;
}

export interface WebhookProcessorOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly handlers: ReadonlyMap<string, EventHandler>;
  readonly exemptions: ExemptionLookup;
  readonly alerter: Alerter;
  readonly metrics: Metrics;
  readonly logger: Pick<Logger, 'error' | 'warn'>;
  /** WEBHOOK_MAX_ATTEMPTS. */
  readonly maxAttempts: number;
}

type Mode = { readonly kind: 'delivery'; readonly inbox: InboxEvent } | { readonly kind: 'replay'; readonly actor: ReplayActor };

const CODE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** A failure as an UPPER_SNAKE code for the inbox: never the error's message, which may carry data. */
export function failureCode(error: unknown): string {
  if (error instanceof AppError) return error.code;
  if (error instanceof Stripe.errors.StripeError) {
    const code = error.type.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
    return CODE.test(code) ? code : 'STRIPE_ERROR';
  }
  const state = sqlStateOf(error);
  if (state !== undefined && /^[0-9A-Z]{5}$/.test(state)) return `DATABASE_${state}`;
  return 'HANDLER_ERROR';
}

export function inboxEventOf(event: Stripe.Event, payloadSha256: string): InboxEvent {
  return { id: event.id, type: event.type, createdSeconds: event.created, livemode: event.livemode, payloadSha256 };
}

export class WebhookProcessor {
  constructor(private readonly options: WebhookProcessorOptions) {}

  /** A delivery from Stripe (POST /api/webhooks/stripe). */
  async deliver(event: Stripe.Event, payloadSha256: string): Promise<ProcessResult> {
    return this.observe(event, () => this.run(event, { kind: 'delivery', inbox: inboxEventOf(event, payloadSha256) }));
  }

  /**
   * An operator's replay of a dead event, fetched again from Stripe. 409 when the event is
   * not in the dead-letter list (never seen, or no longer dead: replayed already).
   */
  async replay(event: Stripe.Event, actor: ReplayActor): Promise<ProcessResult> {
    return this.observe(event, () => this.run(event, { kind: 'replay', actor }));
  }

  private async observe(event: Stripe.Event, work: () => Promise<ProcessResult>): Promise<ProcessResult> {
    const started = performance.now();
    const result = await work();
    const labels = { type: event.type, outcome: result.outcome };
    this.options.metrics.webhookEvents.inc(labels);
    this.options.metrics.webhookProcessingDuration.observe(labels, (performance.now() - started) / 1000);
    return result;
  }

  private async run(event: Stripe.Event, mode: Mode): Promise<ProcessResult> {
    const { database, clock, handlers, exemptions } = this.options;
    const replayBy = mode.kind === 'replay' ? mode.actor : undefined;
    const reference = referenceOf(event);
    const found = await lookupEvent(database, event.id, reference);
    if (replayBy) {
      if (found.status !== 'dead') throw new AppError('CONFLICT', 'The event is not in the dead-letter list');
    } else if (found.status !== null && TERMINAL_STATUSES.has(found.status)) {
      return { outcome: 'duplicate' };
    }
    const accountId = found.accountId;
    const handler = handlers.get(event.type);
    const afterCommit: Array<() => void> = [];
    try {
      const result = await asSystem(database, async (tx) => {
        const now = clock.now();
        const claimed = mode.kind === 'replay' ? await claimReplay(tx, event.id, accountId, now) : await claimDelivery(tx, mode.inbox, accountId, now);
        if (!claimed) return undefined;
        let outcome: HandlerResult;
        if (!handler) {
          outcome = { status: 'ignored', reason: 'UNHANDLED_TYPE' };
        } else if (accountId === null) {
          outcome = { status: 'ignored', reason: 'UNKNOWN_CUSTOMER' };
        } else if (exemptions.exemptionOf(accountId)) {
          // OWN-1: never act on a charge, invoice, subscription or checkout of an owner or test account.
          const kind = exemptions.exemptionOf(accountId)?.kind ?? 'owner';
          outcome = { status: 'refused', reason: 'EXEMPT_ACCOUNT' };
          await recordAudit(
            tx,
            {
              event: 'billing.owner_charge_refused',
              actorType: 'system',
              subjectType: 'stripe_event',
              subjectId: event.id,
              accountId,
              metadata: { eventId: event.id, type: event.type, exemptKind: kind, family: handler.family },
            },
            clock,
          );
          afterCommit.push(() =>
            this.options.alerter.alert('owner_charge_attempt', `Stripe ${event.type} for ${kind === 'owner' ? 'an owner' : 'a test'} account was refused`, {
              accountId,
              eventId: event.id,
              type: event.type,
              exemptKind: kind,
            }),
          );
        } else {
          await actForAccount(tx, accountId);
          outcome = await handler.handle({ tx, event, accountId, customerId: reference.customerId, now });
        }
        if (replayBy) {
          await recordAudit(
            tx,
            {
              event: 'webhook.replayed',
              actorType: replayBy.actorType,
              actorId: replayBy.actorId,
              ip: replayBy.ip ?? null,
              subjectType: 'stripe_event',
              subjectId: event.id,
              accountId,
              metadata: { eventId: event.id, type: event.type, status: outcome.status, reason: outcome.reason ?? null },
            },
            clock,
          );
        }
        await finishEvent(tx, event.id, outcome.status, outcome.reason ?? null, clock.now());
        return outcome;
      });
      if (!result) {
        if (replayBy) throw new AppError('CONFLICT', 'The event is not in the dead-letter list');
        return { outcome: 'duplicate' };
      }
      for (const action of afterCommit) action();
      result.afterCommit?.();
      return { outcome: result.status, ...(result.reason ? { reason: result.reason } : {}) };
    } catch (error) {
      if (error instanceof AppError && error.code === 'CONFLICT') throw error;
      return this.failed(event, mode, accountId, error);
    }
  }

  private async failed(event: Stripe.Event, mode: Mode, accountId: string | null, error: unknown): Promise<ProcessResult> {
    const { database, clock, maxAttempts, logger } = this.options;
    const code = failureCode(error);
    if (mode.kind === 'replay') {
      await asSystem(database, (tx) => recordReplayFailure(tx, event.id, code, clock.now()));
      logger.error({ err: error, eventId: event.id, eventType: event.type, code }, 'replay of a dead Stripe event failed; it stays in the dead-letter list');
      return { outcome: 'failed', reason: code };
    }
    const counted = await asSystem(database, (tx) => recordFailure(tx, mode.inbox, accountId, code, maxAttempts, clock.now()));
    if (!counted) return { outcome: 'duplicate' };
    const dead = counted.status === 'dead';
    logger.error(
      { err: error, eventId: event.id, eventType: event.type, code, attempts: counted.attempts, maxAttempts },
      dead ? 'Stripe event failed for the last time and was dead-lettered' : 'Stripe event processing failed; Stripe will retry',
    );
    return { outcome: dead ? 'dead_lettered' : 'failed', reason: code };
  }
}
