import type { DatabaseConfig } from '../../config/config.js';
import { APPLICATION_ROLE } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { LocalRevocationFeed, PostgresRevocationFeed, type FeedLogger } from '../api-keys/revocation-feed.js';
import { PLAN_CHANNEL, PlanCatalogue } from './plan-catalogue.js';

/**
 * The catalogue with the right invalidation for the database: on PostgreSQL a listener on
 * `bulwark_plans` (every instance learns of every change within a second); on PGlite (one
 * process) a local feed, the writers in this module invalidating after they commit.
 * Close it (catalogue.close()) before the database closes.
 */
export function createPlanCatalogue(options: {
  readonly databaseConfig: DatabaseConfig;
  readonly database: Database;
  readonly logger?: FeedLogger;
  readonly ttlMs?: number;
}): PlanCatalogue {
  const { databaseConfig, database, logger } = options;
  const feed =
    databaseConfig.kind === 'postgres' && database.driver === 'postgres'
      ? new PostgresRevocationFeed({
          database: databaseConfig,
          role: APPLICATION_ROLE,
          channel: PLAN_CHANNEL,
          subject: 'plan catalogue',
          ...(logger ? { logger } : {}),
        })
      : new LocalRevocationFeed();
  return new PlanCatalogue(database, feed, { ...(logger ? { logger } : {}), ...(options.ttlMs !== undefined ? { ttlMs: options.ttlMs } : {}) });
}
