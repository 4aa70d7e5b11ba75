import type { Logger } from 'pino';
import type { Clock } from '../../../platform/clock.js';
import type { Database } from '../../../platform/database/database.js';
import type { Metrics } from '../../../platform/observability/metrics.js';
import type { Alerter } from '../../audit/alerts.js';
import type { CreditsService } from '../../credits/credits.service.js';
import type { ExemptionLookup } from '../../plans/exemptions.js';
import { listCreditPacks } from '../../plans/plans.repository.js';
import type { Notifier } from '../../notifications/notifier.js';
import type { StripeGateway } from '../gateway.js';
import { createEventHandlers } from './event-handlers/index.js';
import type { BillingCatalogue } from './event-handlers/types.js';
import { WebhookProcessor } from './webhook-processor.js';
import { WebhookService } from './webhook.service.js';

export interface WebhookModuleOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly stripe: StripeGateway;
  readonly credits: CreditsService;
  readonly notifier: Notifier;
  readonly exemptions: ExemptionLookup;
  readonly alerter: Alerter;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly webhookSecrets: readonly string[];
  readonly maxAttempts: number;
  /** PAST_DUE_GRACE_DAYS (PAY-6). */
  readonly pastDueGraceDays: number;
}

/** The plan catalogue as the handlers read it, in the caller's transaction (also used by reconciliation). */
export const billingCatalogue: BillingCatalogue = {
  creditPack: async (tx, packId) => (await listCreditPacks(tx)).find((pack) => pack.id === packId),
  hasPlan: async (tx, planId) => (await tx.query('SELECT 1 FROM plans WHERE id = $1', [planId])).rows.length === 1,
};

/** The webhook intake, its processor and handlers, wired from the app's dependencies. */
export function createWebhookService(options: WebhookModuleOptions): WebhookService {
  const { database, clock, stripe } = options;
  const handlers = createEventHandlers({
    stripe,
    credits: options.credits,
    notifier: options.notifier,
    alerter: options.alerter,
    clock,
    pastDueGraceDays: options.pastDueGraceDays,
    catalogue: billingCatalogue,
  });
  const processor = new WebhookProcessor({
    database,
    clock,
    handlers,
    exemptions: options.exemptions,
    alerter: options.alerter,
    metrics: options.metrics,
    logger: options.logger,
    maxAttempts: options.maxAttempts,
  });
  return new WebhookService({
    database,
    clock,
    stripe,
    secrets: options.webhookSecrets,
    processor,
    metrics: options.metrics,
    alerter: options.alerter,
    logger: options.logger,
  });
}
