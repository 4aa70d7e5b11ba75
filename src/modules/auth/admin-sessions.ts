import { createHash, randomBytes } from 'node:crypto';
import type {} from '@fastify/cookie';
import type { FastifyReply } from 'fastify';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { recordAudit } from '../audit/audit.service.js';
import { secretMatches } from '../ops/ops.routes.js';
import type { CsrfTokens } from './csrf.js';

/**
 * Operator dashboard sessions (UI-1). The browser presents the admin token once; the
 * answer is an HttpOnly, SameSite=Strict cookie scoped to the operator API whose value is
 * 32 random bytes, stored only as SHA-256 and valid for ADMIN_SESSION_TTL_SECONDS (or
 * until signed out). The admin token itself is never stored by the browser, never sent
 * back and never written to a log.
 */
export const ADMIN_SESSION_COOKIE = 'admin_session';
/** Only the operator API ever receives the cookie: the pages and every other route never see it. */
export const ADMIN_SESSION_COOKIE_PATH = '/api/admin';

/** 32 random bytes in base64url. */
const COOKIE_VALUE = /^[A-Za-z0-9_-]{43}$/;

export interface AdminSession {
  readonly id: string;
  readonly expiresAt: Date;
}

export interface AdminSessionsOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly csrf: CsrfTokens;
  readonly adminApiToken: string;
  readonly ttlSeconds: number;
  /** Secure cookies (production). */
  readonly secureCookies: boolean;
}

function hashOf(cookieValue: string): string {
  return createHash('sha256').update(cookieValue, 'utf8').digest('hex');
}

export class AdminSessions {
  constructor(private readonly options: AdminSessionsOptions) {}

  /** Whether the presented text is the admin token (constant time). */
  tokenMatches(presented: string): boolean {
    return presented.length > 0 && secretMatches(presented, this.options.adminApiToken);
  }

  /** Opens a session (audited as admin.session_started); the caller has checked the token. */
  async start(context: { ip: string }): Promise<{ session: AdminSession; cookieValue: string }> {
    const cookieValue = randomBytes(32).toString('base64url');
    const now = this.options.clock.now();
    const session: AdminSession = { id: newId('adminSession'), expiresAt: new Date(now.getTime() + this.options.ttlSeconds * 1000) };
    await asSystem(this.options.database, async (tx) => {
      await tx.query(`INSERT INTO admin_sessions (id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)`, [
        session.id,
        hashOf(cookieValue),
        now.toISOString(),
        session.expiresAt.toISOString(),
      ]);
      // Expired sessions are of no use to anyone: prune them as new ones open.
      await tx.query(`DELETE FROM admin_sessions WHERE expires_at < $1`, [new Date(now.getTime() - 24 * 3600 * 1000).toISOString()]);
      await recordAudit(
        tx,
        { event: 'admin.session_started', actorType: 'admin', actorId: session.id, subjectType: 'admin_session', subjectId: session.id, ip: context.ip, metadata: { expiresAt: session.expiresAt.toISOString() } },
        this.options.clock,
      );
    });
    return { session, cookieValue };
  }

  /** The open session a cookie value belongs to; undefined when unknown, expired, revoked or malformed. */
  async resolve(cookieValue: string): Promise<AdminSession | undefined> {
    if (!COOKIE_VALUE.test(cookieValue)) return undefined;
    // Not account-scoped (no row-level security): one statement, no transaction.
    const { rows } = await this.options.database.query<{ id: string; expires_at: Date | string }>(
      `SELECT id, expires_at FROM admin_sessions WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2`,
      [hashOf(cookieValue), this.options.clock.now().toISOString()],
    );
    const row = rows[0];
    return row ? { id: row.id, expiresAt: new Date(row.expires_at) } : undefined;
  }

  /** Ends a session at once (audited as admin.session_ended). */
  async end(sessionId: string, context: { ip: string }): Promise<void> {
    await asSystem(this.options.database, async (tx) => {
      const { rowCount } = await tx.query(`UPDATE admin_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, [
        sessionId,
        this.options.clock.now().toISOString(),
      ]);
      if (rowCount > 0) {
        await recordAudit(
          tx,
          { event: 'admin.session_ended', actorType: 'admin', actorId: sessionId, subjectType: 'admin_session', subjectId: sessionId, ip: context.ip, metadata: {} },
          this.options.clock,
        );
      }
    });
  }

  /** The CSRF token of a session: HMAC(cookie secret, session id), like the people's tokens (AUTH-4). */
  csrfTokenFor(sessionId: string): string {
    return this.options.csrf.tokenFor(sessionId);
  }

  csrfMatches(presented: string | undefined, sessionId: string): boolean {
    return this.options.csrf.matches(presented, sessionId);
  }

  setCookie(reply: FastifyReply, cookieValue: string): void {
    void reply.setCookie(ADMIN_SESSION_COOKIE, cookieValue, {
      httpOnly: true,
      secure: this.options.secureCookies,
      sameSite: 'strict',
      path: ADMIN_SESSION_COOKIE_PATH,
      maxAge: this.options.ttlSeconds,
    });
  }

  clearCookie(reply: FastifyReply): void {
    void reply.clearCookie(ADMIN_SESSION_COOKIE, { httpOnly: true, secure: this.options.secureCookies, sameSite: 'strict', path: ADMIN_SESSION_COOKIE_PATH });
  }
}
