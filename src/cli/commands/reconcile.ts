import { Alerter } from '../../modules/audit/alerts.js';
import type { ReconciliationReport } from '../../modules/billing/reconciliation.service.js';
import { ReconciliationService } from '../../modules/billing/reconciliation.service.js';
import { CreditsService } from '../../modules/credits/credits.service.js';
import { NotificationQueue } from '../../modules/notifications/notifier.js';
import { Exemptions } from '../../modules/plans/exemptions.js';
import { PlanCatalogue } from '../../modules/plans/plan-catalogue.js';
import { createStripeGateway } from '../../modules/stripe/gateway.js';
import { billingCatalogue } from '../../modules/stripe/webhooks/webhooks.module.js';
import { systemClock } from '../../platform/clock.js';
import { createLogger } from '../../platform/observability/logger.js';
import { CLI_ACTOR } from '../cli-actor.js';
import { withServiceDatabase } from '../cli-database.js';
import { EXIT_FAILURE, EXIT_OK, printable, type CliCommand } from '../cli-io.js';

/** Exit code of a run that found discrepancies and repaired every one of them. */
export const EXIT_RECONCILED = 3;

/** 0 nothing to repair; 3 discrepancies found and all repaired; 1 some could not be repaired (or the run failed). */
export function reconcileExitCode(report: Pick<ReconciliationReport, 'discrepancies' | 'repaired'>): number {
  if (report.discrepancies === 0) return EXIT_OK;
  return report.repaired === report.discrepancies ? EXIT_RECONCILED : EXIT_FAILURE;
}

function describe(value: Readonly<Record<string, unknown>> | null): string {
  if (value === null) return 'missing';
  return Object.entries(value)
    .map(([key, item]) => `${key}=${printable(item === null ? 'null' : String(item))}`)
    .join(' ');
}

/**
 * `bulwark reconcile`: one reconciliation with Stripe now (PAY-8, CLI-1), the same run as
 * the daily job and POST /api/admin/reconciliation/run, audited as the command line.
 * Stripe is reached as the service reaches it (STRIPE_SECRET_KEY / STRIPE_API_URL; in
 * sandbox mode the sandbox at STRIPE_API_URL or 127.0.0.1:STRIPE_SANDBOX_PORT).
 */
export const reconcile: CliCommand = {
  name: 'reconcile',
  summary: 'Compare payments, subscriptions and credit purchases with Stripe and repair from Stripe; exit 0 clean, 3 all repaired, 1 some not repaired',
  usage: '',
  options: {},
  positionals: [0, 0],
  async run({ config, io }) {
    const report = await withServiceDatabase(config, io, async (database) => {
      const clock = systemClock;
      // Alerts and errors go to stderr as JSON lines (fatal = an alert, as in the service).
      const logger = createLogger({ ...config, log: { ...config.log, level: 'warn' } }, { write: (line: string) => io.stderr.write(line) });
      const alerter = new Alerter({ logger, clock, webhookUrl: config.alertWebhookUrl });
      const stripe = createStripeGateway(config.stripe);
      const credits = new CreditsService({ database, clock, pricing: new PlanCatalogue(database, undefined) });
      const service = new ReconciliationService({
        database,
        clock,
        logger,
        alerter,
        exemptions: new Exemptions(config.exemptions),
        handlers: { stripe, credits, notifier: new NotificationQueue(clock), alerter, clock, catalogue: billingCatalogue, pastDueGraceDays: config.billing.pastDueGraceDays },
      });
      try {
        return await service.run('cli', CLI_ACTOR);
      } finally {
        await alerter.flush();
      }
    });
    const lines = [
      `Reconciliation ${report.id}: ${report.customersChecked} customers checked, ${report.discrepancies} discrepancies, ${report.repaired} repaired, ${report.failed} failed`,
      ...report.items.map(
        (item) =>
          `  ${item.resolution.padEnd(8)} ${item.kind} ${item.objectType} ${printable(item.objectId)} (account ${printable(item.accountId)}): local ${describe(item.local)}; stripe ${describe(item.stripe)}${item.errorCode ? ` [${item.errorCode}]` : ''}`,
      ),
    ];
    return { data: { report }, lines, exitCode: reconcileExitCode(report) };
  },
};
