import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { systemClock, type Clock } from './platform/clock.js';
import { APPLICATION_ROLE } from './platform/database/access.js';
import { createDatabase } from './platform/database/create-database.js';
import { createPostgresDatabase } from './platform/database/postgres-database.js';
import type { Database } from './platform/database/database.js';
import { migrate, type MigrationReport } from './platform/database/migrate.js';
import { newId } from './platform/ids.js';
import { JobScheduler, pruneJobRunsJob } from './platform/jobs/scheduler.js';
import { idempotencyPruneJob } from './platform/http/idempotency.js';
import { createSentryReporter, noErrorReporter, type ErrorReporter } from './platform/observability/error-reporter.js';
import { createLogger } from './platform/observability/logger.js';
import { createMetrics, type Metrics } from './platform/observability/metrics.js';
import { databaseCheck, diskCheck, stripeCheck, type ReadinessCheck } from './modules/ops/readiness.js';
import { AccessTokens } from './modules/auth/access-tokens.js';
import { AuthService } from './modules/auth/auth.service.js';
import type { ApiKeyVerifierPort } from './modules/auth/authenticate.js';
import { CsrfTokens } from './modules/auth/csrf.js';
import { createApiKeysModule, type ApiKeysModule } from './modules/api-keys/api-keys.module.js';
import { PostgresRevocationFeed } from './modules/api-keys/revocation-feed.js';
import { ACCOUNT_CHANNEL, AccountSnapshots } from './modules/accounts/account-snapshots.js';
import { createPlanCatalogue } from './modules/plans/plans.module.js';
import type { PlanCatalogue } from './modules/plans/plan-catalogue.js';
import type { Plan } from './modules/plans/plan-features.js';
import { seedCatalogue } from './modules/plans/seed.js';
import { effectivePlanId, Exemptions } from './modules/plans/exemptions.js';
import { EntitlementsService } from './modules/entitlements/entitlements.service.js';
import { usageRetentionJob } from './modules/usage/usage-retention.job.js';
import { CreditsService } from './modules/credits/credits.service.js';
import { creditSweeperJob } from './modules/credits/credit-sweeper.job.js';
import { CreditsLowWatcher } from './modules/credits/credits-low.js';
import { ExternalIdentities } from './modules/auth/external-identities.js';
import { createMailer, type Mailer } from './platform/mail/mailer.js';
import { createRateLimiting, type RateLimiting } from './platform/rate-limit/rate-limiting.js';
import { Alerter, AuthFailureDetector } from './modules/audit/alerts.js';
import { SecurityEvents } from './modules/audit/security-events.js';
import { readLicenseSigningKey, type LicenseSigningKey } from './modules/licenses/license-keys.js';
import { createStripeGateway, type StripeGateway } from './modules/stripe/gateway.js';
import { sandboxHealth, startInProcessSandbox } from './modules/stripe/sandbox/in-process.js';
import type { StripeSandbox } from './modules/stripe/sandbox/sandbox-server.js';
import type { WebhookService } from './modules/stripe/webhooks/webhook.service.js';
import { createWebhookService } from './modules/stripe/webhooks/webhooks.module.js';
import { PrivacyService } from './modules/privacy/privacy.service.js';
import { accountDeletionJob } from './modules/privacy/account-deletion.job.js';
import { NotificationQueue, type Notifier } from './modules/notifications/notifier.js';
import { RefundsService } from './modules/billing/refunds.service.js';
import { ReconciliationService } from './modules/billing/reconciliation.service.js';
import { reconciliationJob } from './modules/billing/reconciliation.job.js';
import { billingCatalogue } from './modules/stripe/webhooks/webhooks.module.js';
import { NotificationService } from './modules/notifications/notifications.service.js';
import { notificationDeliveryJob } from './modules/notifications/delivery.job.js';
import { BillingService } from './modules/billing/billing.service.js';
import { pastDueGraceJob } from './modules/billing/past-due.job.js';

/** Everything the app needs from the outside world, built once per process (or per test). */
export interface Dependencies {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly database: Database;
  readonly metrics: Metrics;
  readonly errorReporter: ErrorReporter;
  readonly scheduler: JobScheduler;
  readonly readinessChecks: readonly ReadinessCheck[];
  readonly instanceId: string;
  readonly migration: MigrationReport;
  readonly mailer: Mailer;
  /** Queues emails and outgoing webhooks in the caller's transaction (MAIL-1, OUT-1). */
  readonly notifier: Notifier;
  /** Delivers queued emails and webhooks (deliverDue), and the operator's webhook endpoints. */
  readonly notifications: NotificationService;
  readonly accessTokens: AccessTokens;
  readonly csrf: CsrfTokens;
  readonly auth: AuthService;
  readonly apiKeys: ApiKeyVerifierPort | undefined;
  /** API key service (routes) and verifier; close() before the database closes. */
  readonly apiKeyModule: ApiKeysModule;
  readonly externalIdentities: ExternalIdentities | undefined;
  readonly rateLimiting: RateLimiting;
  readonly alerter: Alerter;
  readonly authFailures: AuthFailureDetector;
  readonly securityEvents: SecurityEvents;
  readonly accounts: AccountSnapshots;
  readonly plans: PlanCatalogue;
  readonly exemptions: Exemptions;
  readonly entitlements: EntitlementsService;
  /**
   * An account's effective plan when both its snapshot and the catalogue are cached right
   * now (no promise on the hot paths), else undefined: then ask `accounts` and `plans`.
   */
  readonly cachedPlanOf: (accountId: string) => Plan | undefined;
  readonly credits: CreditsService;
  /** credits.low (OUT-1) after balances move; close() before the database closes. */
  readonly creditsLow: CreditsLowWatcher;
  /** The licence signing key (LIC-1), read at start-up. */
  readonly licenseKey: LicenseSigningKey;
  /** Every Stripe call goes through this (the local sandbox in sandbox mode). */
  readonly stripe: StripeGateway;
  /** The sandbox running inside this process (STRIPE_MODE=sandbox, STRIPE_SANDBOX_START); close() with the app. */
  readonly stripeSandbox: StripeSandbox | undefined;
  /** In sandbox mode, where the sandbox answers (its control routes back /sandbox/*). */
  readonly stripeSandboxUrl: string | undefined;
  /** The Stripe webhook intake and its dead-letter list (WH-1..9). */
  readonly webhooks: WebhookService;
  /** GDPR-1 export and GDPR-2 deletion; close() before the database closes. */
  readonly privacy: PrivacyService;
  /** PAY-7: operator refunds. */
  readonly refunds: RefundsService;
  /** PAY-8: reconciliation with Stripe (also the daily job billing.reconciliation). */
  readonly reconciliation: ReconciliationService;
  /** Checkout, cancel, resume and plan changes (PAY-2..5). */
  readonly billing: BillingService;
}

export interface DependencyOverrides {
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly database?: Database;
  readonly readinessChecks?: readonly ReadinessCheck[];
  readonly mailer?: Mailer;
  readonly apiKeys?: ApiKeyVerifierPort;
  readonly stripe?: StripeGateway;
}

/**
 * Migrates as the connecting (owner) role, then hands out a database that works as the
 * application role, which row-level security applies to. On PostgreSQL the migration
 * uses its own one-connection pool and the service's pool sets the role at connection
 * start-up; on PGlite's single connection the session switches role after migrating.
 * The operator command line opens its database the same way.
 */
export async function openMigratedDatabase(
  config: Config,
  given: Database | undefined,
  onPoolError: (error: Error) => void,
): Promise<{ database: Database; migration: MigrationReport }> {
  if (!given && config.database.kind === 'postgres') {
    const migrator = createPostgresDatabase({ ...config.database, poolMax: 1 }, { onPoolError });
    let migration: MigrationReport;
    try {
      migration = await migrate(migrator);
    } finally {
      await migrator.close();
    }
    return { database: createPostgresDatabase(config.database, { onPoolError, role: APPLICATION_ROLE }), migration };
  }
  const database = given ?? (await createDatabase(config.database, onPoolError));
  try {
    const migration = await migrate(database);
    if (database.driver === 'pglite') await database.exec(`SET ROLE ${APPLICATION_ROLE}`);
    return { database, migration };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/**
 * The composition root: picks each implementation from configuration (PGlite or
 * PostgreSQL, Sentry or nothing) and migrates the database before anything serves.
 */
export async function createDependencies(config: Config, overrides: DependencyOverrides = {}): Promise<Dependencies> {
  const logger = overrides.logger ?? createLogger(config);
  const clock = overrides.clock ?? systemClock;
  // Before any I/O: a missing or unusable licence key stops start-up here.
  const licenseKey = readLicenseSigningKey(config.license);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const { database, migration } = await openMigratedDatabase(config, overrides.database, (error) =>
    logger.error({ err: error }, 'database pool error'),
  );
  if (migration.applied.length > 0) logger.info({ applied: migration.applied }, 'database migrated');
  const plans = createPlanCatalogue({ databaseConfig: config.database, database, logger: logger.child({ component: 'plans' }) });
  const seeded = await seedCatalogue(database, clock, { planCatalogue: plans });
  if (seeded.inserted.length > 0) logger.info(seeded, 'plan catalogue seeded');
  const exemptions = new Exemptions(config.exemptions);

  const errorReporter = config.sentryDsn ? await createSentryReporter(config.sentryDsn, config.env, logger) : noErrorReporter;
  const instanceId = newId('instance');
  const scheduler = new JobScheduler({ database, clock, logger: logger.child({ component: 'scheduler' }), instanceId });
  scheduler.register(pruneJobRunsJob());
  scheduler.register(idempotencyPruneJob());
  scheduler.register(usageRetentionJob());

  const stripeSandbox =
    config.stripe.mode === 'sandbox' && config.stripe.sandbox === 'in-process' && !overrides.stripe
      ? await startInProcessSandbox(config, logger, clock)
      : undefined;
  const stripeConfig = stripeSandbox ? { ...config.stripe, apiUrl: stripeSandbox.url } : config.stripe;
  const stripeSandboxUrl = config.stripe.mode === 'sandbox' ? stripeConfig.apiUrl : undefined;
  const checkTimeoutMs = config.readiness.checkTimeoutMs;
  const readinessChecks = overrides.readinessChecks ?? [
    databaseCheck(database),
    stripeCheck(
      config.stripe,
      checkTimeoutMs,
      stripeSandboxUrl !== undefined && config.stripe.sandbox !== 'none' ? () => sandboxHealth(stripeSandboxUrl, checkTimeoutMs) : undefined,
    ),
    diskCheck(config.dataDir, config.readiness.minFreeDiskBytes),
  ];

  const { jwt, cookie, previousJwt, previousCookie } = config.secrets;
  if (!jwt || !cookie) throw new Error('JWT and cookie secrets must be resolved before creating dependencies');
  const accessTokens = new AccessTokens({ current: jwt, previous: previousJwt, issuer: config.jwt.issuer, audience: config.jwt.audience });
  const csrf = new CsrfTokens([cookie, ...previousCookie]);
  const mailer = overrides.mailer ?? createMailer(config, logger);
  const notifier = new NotificationQueue(clock);
  const notifications = new NotificationService({
    database,
    clock,
    mailer,
    logger: logger.child({ component: 'notifications' }),
    strictUrls: config.isProduction,
    webhookTimeoutMs: config.notifications.webhookTimeoutMs,
    batchSize: config.notifications.batchSize,
  });
  scheduler.register(
    notificationDeliveryJob(notifications, config.notifications.deliveryIntervalSeconds, Math.ceil((config.notifications.webhookTimeoutMs + 60_000) / 1000)),
  );
  const metrics = createMetrics();
  const alerter = new Alerter({ logger, clock, webhookUrl: config.alertWebhookUrl });
  const authFailures = new AuthFailureDetector({ alerter, clock });
  const rateLimiting = createRateLimiting(
    {
      store: config.rateLimit.store,
      redisUrl: config.redisUrl,
      overrides: config.rateLimit.overrides,
      lockout: config.rateLimit.lockout,
      keySecret: cookie,
    },
    { clock, logger: logger.child({ component: 'rate-limit' }), metrics: metrics.registry },
  );
  const securityEvents = new SecurityEvents(database, clock, logger.child({ component: 'audit' }));
  rateLimiting.limiter.setOnLimited((event) => securityEvents.rateLimited(event));
  rateLimiting.loginLockout.setOnLocked((event) => securityEvents.loginLocked(event));
  const creditsLow = new CreditsLowWatcher({
    database,
    clock,
    notifier,
    logger: logger.child({ component: 'credits-low' }),
    thresholdCredits: config.credits.lowThresholdCredits,
  });
  const credits = new CreditsService({
    database,
    clock,
    pricing: plans,
    reservationTtlMs: config.credits.reservationTtlSeconds * 1000,
    operations: metrics.creditOperations,
    onBalanceMoved: creditsLow.touched,
  });
  scheduler.register(creditSweeperJob(credits, config.credits.sweepIntervalSeconds));
  const auth = new AuthService({
    credits,
    signupBonusCredits: config.credits.signupBonusCredits,
    loginLockout: rateLimiting.loginLockout,
    authFailures,
    database,
    clock,
    accessTokens,
    notifier,
    logger: logger.child({ component: 'auth' }),
    publicUrl: config.publicUrl ?? `http://${config.host}:${config.port}`,
  });

  const accounts = new AccountSnapshots(
    database,
    config.database.kind === 'postgres' && database.driver === 'postgres'
      ? new PostgresRevocationFeed({
          database: config.database,
          role: APPLICATION_ROLE,
          channel: ACCOUNT_CHANNEL,
          subject: 'account',
          logger: logger.child({ component: 'accounts' }),
        })
      : undefined,
  );
  const cachedPlanOf = (accountId: string): Plan | undefined => {
    const account = accounts.peek(accountId);
    return account ? plans.cachedPlanFor(effectivePlanId(account, exemptions)) : undefined;
  };
  const entitlements = new EntitlementsService({
    database,
    clock,
    catalogue: plans,
    planIdOf: async (accountId) => {
      const account = await accounts.get(accountId);
      return account ? effectivePlanId(account, exemptions) : 'FREE';
    },
    cachedPlanOf,
  });
  const apiKeyModule = createApiKeysModule({ config, database, clock, logger: logger.child({ component: 'api-keys' }) });
  const stripe = overrides.stripe ?? createStripeGateway(stripeConfig);
  const webhooks = createWebhookService({
    database,
    clock,
    stripe,
    credits,
    notifier,
    exemptions,
    alerter,
    metrics,
    logger: logger.child({ component: 'stripe-webhooks' }),
    webhookSecrets: config.stripe.webhookSecrets,
    maxAttempts: config.stripe.webhookMaxAttempts,
    pastDueGraceDays: config.billing.pastDueGraceDays,
  });
  const pseudonymKey = config.secrets.auditPseudonymKey;
  if (!pseudonymKey) throw new Error('AUDIT_PSEUDONYM_KEY must be resolved before creating dependencies');
  const privacy = new PrivacyService({
    database,
    clock,
    stripe,
    notifier,
    logger: logger.child({ component: 'privacy' }),
    loginLockout: rateLimiting.loginLockout,
    authFailures,
    pseudonymKey,
    onApiKeysRevoked: (keyIds) => keyIds.forEach((keyId) => apiKeyModule.verifier.invalidateKey(keyId)),
    onAccountChanged: (accountId) => accounts.invalidate(accountId),
  });
  scheduler.register(accountDeletionJob(privacy));
  const refunds = new RefundsService({ database, clock, stripe });
  const reconciliation = new ReconciliationService({
    database,
    clock,
    logger: logger.child({ component: 'reconciliation' }),
    alerter,
    exemptions,
    handlers: { stripe, credits, notifier, alerter, clock, catalogue: billingCatalogue, pastDueGraceDays: config.billing.pastDueGraceDays },
  });
  scheduler.register(reconciliationJob(reconciliation, config.reconciliation.intervalSeconds));
  const publicUrl = (config.publicUrl ?? `http://${config.host}:${config.port}`).replace(/\/$/, '');
  const billing = new BillingService({
    database,
    clock,
    stripe,
    plans,
    exemptions,
    alerter,
    trialDays: config.billing.trialDays,
    successUrl: config.billing.successUrl ?? `${publicUrl}/portal?checkout=success&session_id={CHECKOUT_SESSION_ID}`,
    cancelUrl: config.billing.cancelUrl ?? `${publicUrl}/portal?checkout=canceled`,
  });
  scheduler.register(pastDueGraceJob({ pastDueGraceDays: config.billing.pastDueGraceDays }));

  return {
    config,
    logger,
    mailer,
    notifier,
    notifications,
    accessTokens,
    csrf,
    auth,
    apiKeys: overrides.apiKeys ?? apiKeyModule.verifier,
    apiKeyModule,
    externalIdentities:
      config.service.externalJwtSecret !== undefined || config.service.externalJwksUrl !== undefined
        ? new ExternalIdentities(config.service, database, clock)
        : undefined,
    clock,
    database,
    metrics,
    rateLimiting,
    alerter,
    authFailures,
    securityEvents,
    accounts,
    plans,
    exemptions,
    entitlements,
    cachedPlanOf,
    credits,
    creditsLow,
    licenseKey,
    stripe,
    webhooks,
    stripeSandbox,
    stripeSandboxUrl,
    privacy,
    refunds,
    reconciliation,
    billing,
    errorReporter,
    scheduler,
    readinessChecks,
    instanceId,
    migration,
  };
}
