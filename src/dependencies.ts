import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { systemClock, type Clock } from './platform/clock.js';
import { createDatabase } from './platform/database/create-database.js';
import type { Database } from './platform/database/database.js';
import { migrate, type MigrationReport } from './platform/database/migrate.js';
import { newId } from './platform/ids.js';
import { JobScheduler, pruneJobRunsJob } from './platform/jobs/scheduler.js';
import { createSentryReporter, noErrorReporter, type ErrorReporter } from './platform/observability/error-reporter.js';
import { createLogger } from './platform/observability/logger.js';
import { createMetrics, type Metrics } from './platform/observability/metrics.js';
import { databaseCheck, diskCheck, stripeCheck, type ReadinessCheck } from './modules/ops/readiness.js';

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
}

export interface DependencyOverrides {
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly database?: Database;
  readonly readinessChecks?: readonly ReadinessCheck[];
}

/**
 * The composition root: picks each implementation from configuration (PGlite or
 * PostgreSQL, Sentry or nothing) and migrates the database before anything serves.
 */
export async function createDependencies(config: Config, overrides: DependencyOverrides = {}): Promise<Dependencies> {
  const logger = overrides.logger ?? createLogger(config);
  const clock = overrides.clock ?? systemClock;
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const database =
    overrides.database ??
    (await createDatabase(config.database, (error) => logger.error({ err: error }, 'database pool error')));
  let migration: MigrationReport;
  try {
    migration = await migrate(database);
  } catch (error) {
    await database.close();
    throw error;
  }
  if (migration.applied.length > 0) logger.info({ applied: migration.applied }, 'database migrated');

  const errorReporter = config.sentryDsn ? await createSentryReporter(config.sentryDsn, config.env, logger) : noErrorReporter;
  const instanceId = newId('instance');
  const scheduler = new JobScheduler({ database, clock, logger: logger.child({ component: 'scheduler' }), instanceId });
  scheduler.register(pruneJobRunsJob());

  const readinessChecks = overrides.readinessChecks ?? [
    databaseCheck(database),
    stripeCheck(config.stripe, config.readiness.checkTimeoutMs),
    diskCheck(config.dataDir, config.readiness.minFreeDiskBytes),
  ];

  return {
    config,
    logger,
    clock,
    database,
    metrics: createMetrics(),
    errorReporter,
    scheduler,
    readinessChecks,
    instanceId,
    migration,
  };
}
