import type { Config } from '../../config/config.js';
import type { Clock } from '../../platform/clock.js';
import { APPLICATION_ROLE } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { ApiKeyVerifier } from './api-key-verifier.js';
import { ApiKeyService } from './api-keys.service.js';
import { auditRecorder, type AuditRecorder } from './audit-hook.js';
import { LocalRevocationFeed, PostgresRevocationFeed, type FeedLogger, type RevocationFeed } from './revocation-feed.js';

export interface ApiKeysModule {
  /** For the authentication hook: X-API-Key -> {accountId, keyId} or undefined. */
  readonly verifier: ApiKeyVerifier;
  /** For the routes (and the operator CLI later). */
  readonly service: ApiKeyService;
  /** Stops the revocation listener and waits for background writes; call before the database closes. */
  close(): Promise<void>;
}

export interface ApiKeysModuleOptions {
  readonly config: Config;
  readonly database: Database;
  readonly clock: Clock;
  readonly logger?: FeedLogger;
  /** The audit trail by default (recordAudit in the changing transaction). */
  readonly audit?: AuditRecorder;
  /** Tests may pass their own feed; otherwise it follows the database driver. */
  readonly feed?: RevocationFeed;
}

/**
 * A feed that never vouches for the cache: every verification reads the database. Used
 * when the database is PostgreSQL but there is no URL to listen on (a database handed in
 * by a caller): slower, never stale.
 */
class NoCacheFeed implements RevocationFeed {
  isLive(): boolean {
    return false;
  }

  start(): void {}

  async close(): Promise<void> {}
}

/** The feed for this deployment: LISTEN/NOTIFY on PostgreSQL, in-process on PGlite (one process). */
export function revocationFeedFor(config: Config, database: Database, logger?: FeedLogger): RevocationFeed {
  if (database.driver === 'pglite') return new LocalRevocationFeed();
  if (config.database.kind === 'postgres') {
    return new PostgresRevocationFeed({ database: config.database, role: APPLICATION_ROLE, ...(logger ? { logger } : {}) });
  }
  return new NoCacheFeed();
}

/**
 * Builds the API key verifier and service for one instance. The verifier starts
 * listening for revocations at once; the service invalidates this instance's cache
 * directly after each commit and every other instance through NOTIFY.
 */
export function createApiKeysModule(options: ApiKeysModuleOptions): ApiKeysModule {
  const pepper = options.config.secrets.apiKeyPepper;
  if (!pepper) throw new Error('API_KEY_PEPPER is not set');
  const verifier = new ApiKeyVerifier({
    database: options.database,
    pepper,
    clock: options.clock,
    feed: options.feed ?? revocationFeedFor(options.config, options.database, options.logger),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const service = new ApiKeyService({
    database: options.database,
    clock: options.clock,
    pepper,
    onKeyChanged: (keyId) => verifier.invalidateKey(keyId),
    audit: options.audit ?? auditRecorder(options.clock),
  });
  return { verifier, service, close: () => verifier.close() };
}
