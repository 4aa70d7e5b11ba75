import type { FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import type { RateLimitedEvent } from '../../platform/rate-limit/limiter.js';
import type { LoginLockedEvent } from '../../platform/rate-limit/lockout.js';
import type { AuthenticationFailure } from '../auth/authenticate.js';
import { recordAudit } from './audit.service.js';

/**
 * Security events the audit trail records outside any business transaction (AUD-1,
 * KEY-5): failed authentications and rate-limit lockouts. Each is its own small
 * transaction; a failure to record is logged, never turned into a different answer.
 */
export class SecurityEvents {
  constructor(
    private readonly database: Database,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  async authenticationFailed(request: FastifyRequest, failure: AuthenticationFailure): Promise<void> {
    await this.record({
      event: 'auth.failed',
      actorType: 'anonymous',
      accountId: failure.accountId ?? null,
      ip: request.ip,
      metadata: { credential: failure.credential, code: failure.code, route: request.routeOptions.url ?? null, requestId: request.id },
    });
  }

  async rateLimited(event: RateLimitedEvent): Promise<void> {
    const principal = event.request?.principal;
    await this.record({
      event: 'rate_limit.lockout',
      actorType: principal ? principal.kind : 'anonymous',
      accountId: principal && principal.kind !== 'admin' ? principal.accountId : null,
      ip: event.request?.ip ?? null,
      metadata: { policy: event.policy, keyKind: event.keyKind, retryAfterSeconds: event.decision.retryAfterSeconds },
    });
  }

  async loginLocked(event: LoginLockedEvent): Promise<void> {
    await this.record({
      event: 'auth.login_locked',
      actorType: 'anonymous',
      metadata: { keyKind: event.keyKind, failures: event.failures, lockSeconds: event.lockSeconds },
      // The key is the email that was typed: personal, so erasable.
      personal: { email: event.key.replace(/^email:/, '') },
    });
  }

  private async record(entry: Parameters<typeof recordAudit>[1]): Promise<void> {
    try {
      await asSystem(this.database, (tx) => recordAudit(tx, entry, this.clock));
    } catch (error) {
      this.logger.error({ err: error, event: entry.event }, 'could not record a security event in the audit trail');
    }
  }
}
