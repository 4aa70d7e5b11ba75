import Stripe from 'stripe';
import type { Logger } from 'pino';
import { AppError, validationError } from '../../../errors/app-error.js';
import type { Clock } from '../../../platform/clock.js';
import { asSystem } from '../../../platform/database/access.js';
import type { Database } from '../../../platform/database/database.js';
import { clampPageLimit } from '../../../platform/http/pagination.js';
import type { Metrics } from '../../../platform/observability/metrics.js';
import type { Alerter } from '../../audit/alerts.js';
import { recordAudit } from '../../audit/audit.service.js';
import type { StripeGateway } from '../gateway.js';
import { findEvent, listDeadEvents, type InboxRow } from './inbox.repository.js';
import type { ProcessResult, ReplayActor, WebhookProcessor } from './webhook-processor.js';
import { verifyWebhook, type RejectionReason } from './webhook-verification.js';

/**
 * The webhook intake (POST /api/webhooks/stripe) and the operator's dead-letter routes.
 * A refused delivery (400) writes nothing but a metric and an audit entry, and raises a
 * webhook-signature alert (AUD-3) at most once a minute per instance.
 */

const REJECTION_MESSAGES: Record<RejectionReason, string> = {
  missing_signature: 'Missing Stripe-Signature header',
  bad_signature: 'Webhook signature verification failed',
  stale_timestamp: 'Webhook timestamp is outside the 300 s tolerance',
  future_timestamp: 'Webhook timestamp is outside the 300 s tolerance',
  missing_body: 'Webhook body is empty',
  malformed_event: 'Webhook body is not a Stripe event',
};

const ALERT_INTERVAL_MS = 60_000;
const EVENT_ID = /^evt_[A-Za-z0-9_]{1,250}$/;

export interface DeadLetterView {
  readonly eventId: string;
  readonly type: string;
  readonly createdAt: string;
  readonly livemode: boolean;
  readonly accountId: string | null;
  readonly status: string;
  readonly attempts: number;
  readonly lastErrorCode: string | null;
  readonly receivedAt: string;
  readonly updatedAt: string;
}

export function deadLetterView(row: InboxRow): DeadLetterView {
  return {
    eventId: row.id,
    type: row.type,
    createdAt: row.event_created_at.toISOString(),
    livemode: row.livemode,
    accountId: row.account_id,
    status: row.status,
    attempts: row.attempts,
    lastErrorCode: row.reason,
    receivedAt: row.received_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

export interface WebhookServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly stripe: StripeGateway;
  /** STRIPE_WEBHOOK_SECRET: every secret is accepted (rotation), newest first. */
  readonly secrets: readonly string[];
  readonly processor: WebhookProcessor;
  readonly metrics: Metrics;
  readonly alerter: Alerter;
  readonly logger: Pick<Logger, 'error' | 'warn'>;
}

export interface Delivery {
  readonly rawBody: Buffer | undefined;
  readonly signature: string | string[] | undefined;
  readonly ip: string;
  readonly requestId: string;
}

export class WebhookService {
  private lastAlertAtMs = Number.NEGATIVE_INFINITY;
  private unalertedFailures = 0;

  constructor(private readonly options: WebhookServiceOptions) {}

  /**
   * Verifies and processes one delivery. Throws 400 WEBHOOK_SIGNATURE_INVALID for a bad
   * delivery and 503 when processing failed (Stripe retries); anything else is answered 200.
   */
  async receive(delivery: Delivery): Promise<ProcessResult> {
    const { metrics, clock } = this.options;
    const verification = verifyWebhook(this.options.stripe, delivery.rawBody, delivery.signature, this.options.secrets, clock.now().getTime());
    if (!verification.ok) {
      metrics.webhookRejected.inc({ reason: verification.reason });
      await this.recordRejection(verification.reason, delivery);
      throw new AppError('WEBHOOK_SIGNATURE_INVALID', REJECTION_MESSAGES[verification.reason]);
    }
    metrics.webhookReceived.inc({ type: verification.event.type });
    const result = await this.options.processor.deliver(verification.event, verification.payloadSha256);
    if (result.outcome === 'failed') throw new AppError('SERVICE_UNAVAILABLE', 'The event could not be processed now; retry later');
    return result;
  }

  /** GET /api/admin/webhooks/dead-letters: events that failed WEBHOOK_MAX_ATTEMPTS times, by event id. */
  async deadLetters(query: { readonly limit?: number; readonly cursor?: string }): Promise<{ items: DeadLetterView[]; nextCursor: string | null }> {
    const limit = clampPageLimit(query.limit);
    if (query.cursor !== undefined && !EVENT_ID.test(query.cursor)) throw validationError([{ field: 'query.cursor', message: 'is not a valid cursor' }]);
    const rows = await asSystem(this.options.database, (tx) => listDeadEvents(tx, { limit: limit + 1, afterId: query.cursor ?? null }));
    const page = rows.slice(0, limit);
    return { items: page.map(deadLetterView), nextCursor: rows.length > limit ? (page[page.length - 1]?.id ?? null) : null };
  }

  /**
   * POST /api/admin/webhooks/:eventId/replay: fetches the event again from Stripe (the
   * inbox keeps no payload, WH-7) and processes it once; 404 for an event the inbox does
   * not know, 409 when it is not dead, 503 when it fails again (it stays dead).
   */
  async replay(eventId: string, actor: ReplayActor): Promise<{ event: DeadLetterView; outcome: string }> {
    const { database, stripe } = this.options;
    const stored = await asSystem(database, (tx) => findEvent(tx, eventId));
    if (!stored) throw new AppError('NOT_FOUND', 'Not found');
    if (stored.status !== 'dead') throw new AppError('CONFLICT', 'The event is not in the dead-letter list');
    let event: Stripe.Event;
    try {
      event = await stripe.retrieveEvent(eventId);
    } catch (error) {
      if (error instanceof Stripe.errors.StripeInvalidRequestError && error.code === 'resource_missing') {
        throw new AppError('NOT_FOUND', 'Stripe no longer has this event');
      }
      this.options.logger.error({ err: error, eventId }, 'could not fetch a dead Stripe event for replay');
      throw new AppError('SERVICE_UNAVAILABLE', 'Stripe could not be reached; retry later');
    }
    if (event.id !== eventId) throw new AppError('SERVICE_UNAVAILABLE', 'Stripe answered another event');
    const result = await this.options.processor.replay(event, actor);
    if (result.outcome === 'failed') throw new AppError('SERVICE_UNAVAILABLE', 'The event failed again and stays in the dead-letter list');
    const after = await asSystem(database, (tx) => findEvent(tx, eventId));
    if (!after) throw new Error('replayed event vanished from the inbox');
    return { event: deadLetterView(after), outcome: result.outcome };
  }

  private async recordRejection(reason: RejectionReason, delivery: Delivery): Promise<void> {
    const { database, clock, alerter, logger } = this.options;
    try {
      await asSystem(database, (tx) =>
        recordAudit(
          tx,
          { event: 'webhook.signature_failed', actorType: 'anonymous', ip: delivery.ip, metadata: { reason, requestId: delivery.requestId } },
          clock,
        ),
      );
    } catch (error) {
      logger.error({ err: error, reason }, 'could not record a webhook signature failure in the audit trail');
    }
    this.unalertedFailures += 1;
    const now = clock.now().getTime();
    if (now - this.lastAlertAtMs < ALERT_INTERVAL_MS) return;
    alerter.alert('webhook_signature_failed', 'Stripe webhook deliveries failed verification', {
      reason,
      failures: this.unalertedFailures,
      ip: delivery.ip,
    });
    this.lastAlertAtMs = now;
    this.unalertedFailures = 0;
  }
}
