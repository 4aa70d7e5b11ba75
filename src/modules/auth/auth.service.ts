import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem, forAccount } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database, type Queryable } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import type { Notifier } from '../notifications/notifier.js';
import {
  findAccount,
  findActiveUserByEmail,
  insertAccount,
  insertUser,
  normaliseEmail,
  type AccountRow,
  type UserRow,
} from '../accounts/accounts.repository.js';
import type { AccessTokens } from './access-tokens.js';
import { LoginLockout, loginLockedError } from '../../platform/rate-limit/lockout.js';
import { recordAudit } from '../audit/audit.service.js';
import type { CreditsService } from '../credits/credits.service.js';
import { hashPassword, passwordProblem, verifyAgainstDummy, verifyPassword } from './passwords.js';
import {
  insertPasswordReset,
  insertRefreshToken,
  lockPasswordReset,
  lockRefreshToken,
  markPasswordResetUsed,
  markRotated,
  revokeAllSessionsOfUser,
  revokeFamily,
  setPasswordHash,
  type RefreshTokenRow,
} from './sessions.repository.js';

export const REFRESH_TOKEN_TTL_SECONDS = 7 * 24 * 60 * 60;
/** However often it is refreshed, a login session ends after this (absolute expiry). */
export const SESSION_MAX_AGE_SECONDS = 30 * 24 * 60 * 60;
export const PASSWORD_RESET_TTL_SECONDS = 30 * 60;

/** Opaque, high-entropy tokens are stored as their SHA-256: a leaked table yields nothing usable. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function newOpaqueToken(): string {
  return randomBytes(32).toString('base64url');
}

export interface IssuedSession {
  readonly sessionId: string;
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly refreshExpiresAt: Date;
}

export interface SignedIn extends IssuedSession {
  readonly user: UserRow;
  readonly account: AccountRow;
}

export interface AuthServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly accessTokens: AccessTokens;
  /** Queues the password reset email in the reset's transaction (MAIL-1): SMTP never slows or breaks the request. */
  readonly notifier: Notifier;
  /** Locks an email after repeated failures, with growing delays, known email or not. */
  readonly loginLockout: LoginLockout;
  /** Grants the sign-up bonus (CRD-7) in the sign-up transaction. */
  readonly credits?: CreditsService;
  readonly signupBonusCredits?: number;
  /** Watches failed logins for bursts per source or account (AUD-3 alerts). */
  readonly authFailures?: { recordAuthFailure(failure: { ip: string | null; accountId: string | null }): void };
  readonly logger: Logger;
  /** Base URL for links in emails (PUBLIC_URL, else the local address). */
  readonly publicUrl: string;
}

const INVALID_LOGIN = 'Invalid email or password';

/** Where a request came from, for the audit trail. */
export interface RequestContext {
  readonly ip: string | null;
}

const NO_CONTEXT: RequestContext = { ip: null };

/** Sign-up, login, refresh-token rotation, logout and password reset (AUTH-1..6). */
export class AuthService {
  constructor(private readonly options: AuthServiceOptions) {}

  async signUp(input: { email: string; password: string; name?: string }, context: RequestContext = NO_CONTEXT): Promise<SignedIn> {
    const problem = passwordProblem(input.password, input.email);
    if (problem) throw new AppError('VALIDATION_FAILED', `password: ${problem}`, [{ field: 'password', message: problem }]);
    const passwordHash = await hashPassword(input.password);
    const now = this.options.clock.now();
    const accountId = newId('account');
    try {
      return await forAccount(this.options.database, accountId, async (tx) => {
        const account = await insertAccount(tx, { id: accountId, name: input.name ?? null, plan: 'FREE', at: now });
        const user = await insertUser(tx, {
          id: newId('user'),
          accountId,
          email: input.email,
          name: input.name ?? null,
          passwordHash,
          role: 'owner',
          at: now,
        });
        const session = await this.startSession(tx, user, now);
        if (this.options.credits && (this.options.signupBonusCredits ?? 0) > 0) {
          await this.options.credits.signupBonusIn(tx, accountId, this.options.signupBonusCredits ?? 0);
        }
        // Recorded last: the audit chain's lock is held until commit.
        const actor = { actorType: 'user', actorId: user.id, accountId, ip: context.ip };
        await recordAudit(tx, { ...actor, event: 'account.created', subjectType: 'account', subjectId: accountId, metadata: { plan: 'FREE', via: 'signup' } }, this.options.clock);
        await recordAudit(tx, { ...actor, event: 'user.created', subjectType: 'user', subjectId: user.id, metadata: { role: 'owner' } }, this.options.clock);
        return { ...session, user, account };
      });
    } catch (error) {
      if (sqlStateOf(error) === SqlState.uniqueViolation) {
        throw new AppError('CONFLICT', 'An account with this email already exists');
      }
      throw error;
    }
  }

  /**
   * The same answer, in about the same time, whether the email is unknown or the password
   * is wrong (AUTH-6): an unknown email still pays for one argon2id verification.
   */
  async logIn(input: { email: string; password: string }, context: RequestContext = NO_CONTEXT): Promise<SignedIn> {
    const lockoutKey = LoginLockout.keyForEmail(input.email);
    const lock = await this.options.loginLockout.check(lockoutKey);
    if (lock.locked) throw loginLockedError(lock);
    const user = await asSystem(this.options.database, (tx) => findActiveUserByEmail(tx, input.email));
    const valid =
      user?.password_hash ? await verifyPassword(user.password_hash, input.password) : await verifyAgainstDummy(input.password);
    if (!user || !valid) {
      await this.options.loginLockout.recordFailure(lockoutKey);
      this.options.authFailures?.recordAuthFailure({ ip: context.ip, accountId: user?.account_id ?? null });
      // Both kinds of failure are recorded alike, so this costs the same for unknown emails.
      await asSystem(this.options.database, (tx) =>
        recordAudit(
          tx,
          {
            event: 'auth.login_failed',
            actorType: 'anonymous',
            subjectType: 'user',
            subjectId: user?.id ?? null,
            accountId: user?.account_id ?? null,
            ip: context.ip,
            metadata: { reason: user ? 'wrong_password' : 'unknown_email' },
            personal: { email: normaliseEmail(input.email) },
          },
          this.options.clock,
        ),
      );
      throw new AppError('UNAUTHENTICATED', INVALID_LOGIN);
    }
    await this.options.loginLockout.recordSuccess(lockoutKey);
    const now = this.options.clock.now();
    return forAccount(this.options.database, user.account_id, async (tx) => {
      const account = await findAccount(tx, user.account_id);
      if (!account || account.status === 'deleted') throw new AppError('UNAUTHENTICATED', INVALID_LOGIN);
      if (account.status === 'suspended') throw new AppError('ACCOUNT_SUSPENDED', 'This account is suspended');
      const session = await this.startSession(tx, user, now);
      await recordAudit(
        tx,
        { event: 'auth.login', actorType: 'user', actorId: user.id, subjectType: 'session', subjectId: session.sessionId, accountId: account.id, ip: context.ip },
        this.options.clock,
      );
      return { ...session, user, account };
    });
  }

  /**
   * Rotates a refresh token: the presented token is spent and a new one of the same
   * family issued. A token presented a second time means it was stolen or replayed: the
   * whole family is revoked, so the newest token stops working too (AUTH-2).
   * `checkCsrf` runs once the session is known and before anything changes.
   */
  async refresh(
    presentedToken: string,
    checkCsrf: (sessionId: string) => void,
    context: RequestContext = NO_CONTEXT,
  ): Promise<IssuedSession & { user: UserRow }> {
    const now = this.options.clock.now();
    const outcome = await asSystem(this.options.database, async (tx) => {
      const token = await lockRefreshToken(tx, tokenHash(presentedToken));
      if (!token) return { kind: 'unknown' as const };
      checkCsrf(token.family_id);
      if (token.revoked_at) return { kind: 'revoked' as const };
      if (token.rotated_at) {
        await revokeFamily(tx, token.family_id, now);
        await recordAudit(
          tx,
          {
            event: 'auth.refresh_token_reused',
            actorType: 'anonymous',
            subjectType: 'session',
            subjectId: token.family_id,
            accountId: token.account_id,
            ip: context.ip,
            metadata: { userId: token.user_id, sessionRevoked: true },
          },
          this.options.clock,
        );
        return { kind: 'reused' as const, token };
      }
      if (token.expires_at <= now || token.family_expires_at <= now) return { kind: 'expired' as const };
      const { rows } = await tx.query<UserRow & { account_status: string }>(
        `SELECT u.*, a.status AS account_status FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1`,
        [token.user_id],
      );
      const user = rows[0];
      if (!user || user.status !== 'active' || user.account_status === 'deleted') return { kind: 'gone' as const };
      if (user.account_status === 'suspended') return { kind: 'suspended' as const };
      await markRotated(tx, token.id, now);
      const session = await this.continueSession(tx, token, user, now);
      return { kind: 'rotated' as const, session, user };
    });
    switch (outcome.kind) {
      case 'rotated':
        return { ...outcome.session, user: outcome.user };
      case 'reused':
        this.options.logger.warn({ sessionId: outcome.token.family_id, userId: outcome.token.user_id }, 'refresh token reused: session revoked');
        throw new AppError('UNAUTHENTICATED', 'Session expired; log in again');
      case 'suspended':
        throw new AppError('ACCOUNT_SUSPENDED', 'This account is suspended');
      default:
        throw new AppError('UNAUTHENTICATED', 'Session expired; log in again');
    }
  }

  /** Revokes one login session (refresh-token family). */
  async logOut(sessionId: string, context: RequestContext = NO_CONTEXT): Promise<void> {
    const now = this.options.clock.now();
    await asSystem(this.options.database, async (tx) => {
      const { rows } = await tx.query<{ user_id: string; account_id: string }>(
        'SELECT user_id, account_id FROM refresh_tokens WHERE family_id = $1 LIMIT 1',
        [sessionId],
      );
      await revokeFamily(tx, sessionId, now);
      const owner = rows[0];
      if (owner) {
        await recordAudit(
          tx,
          { event: 'auth.logout', actorType: 'user', actorId: owner.user_id, subjectType: 'session', subjectId: sessionId, accountId: owner.account_id, ip: context.ip },
          this.options.clock,
        );
      }
    });
  }

  /** The session a refresh token belongs to, without changing anything (for logout). */
  async sessionOfRefreshToken(presentedToken: string): Promise<string | undefined> {
    const { rows } = await asSystem(this.options.database, (tx) =>
      tx.query<{ family_id: string }>('SELECT family_id FROM refresh_tokens WHERE token_hash = $1', [tokenHash(presentedToken)]),
    );
    return rows[0]?.family_id;
  }

  /**
   * Starts a password reset. The caller answers 202 at once whatever happens here, so
   * neither the answer nor its timing says whether the email is known (AUTH-6).
   */
  async requestPasswordReset(email: string, context: RequestContext = NO_CONTEXT): Promise<void> {
    const now = this.options.clock.now();
    const user = await asSystem(this.options.database, (tx) => findActiveUserByEmail(tx, normaliseEmail(email)));
    if (!user?.email) return;
    const token = newOpaqueToken();
    const link = `${this.options.publicUrl.replace(/\/$/, '')}/reset?token=${token}`;
    await forAccount(this.options.database, user.account_id, async (tx) => {
      const resetId = newId('reset');
      await insertPasswordReset(tx, {
        id: resetId,
        userId: user.id,
        accountId: user.account_id,
        tokenHash: tokenHash(token),
        createdAt: now,
        expiresAt: new Date(now.getTime() + PASSWORD_RESET_TTL_SECONDS * 1000),
      });
      // The link is in the notification until its email is sent (then dropped); never sent to webhooks.
      await this.options.notifier.emit(tx, {
        type: 'auth.password_reset',
        accountId: user.account_id,
        data: { resetId, resetLink: link },
        email: { template: 'password_reset', userId: user.id },
      });
      await recordAudit(
        tx,
        { event: 'auth.password_reset_requested', actorType: 'anonymous', subjectType: 'user', subjectId: user.id, accountId: user.account_id, ip: context.ip, metadata: { resetId } },
        this.options.clock,
      );
    });
  }

  /** Sets a new password with a single-use reset token and ends every session of the user. */
  async confirmPasswordReset(input: { token: string; password: string }, context: RequestContext = NO_CONTEXT): Promise<void> {
    const now = this.options.clock.now();
    const passwordOk = passwordProblem(input.password);
    if (passwordOk) throw new AppError('VALIDATION_FAILED', `password: ${passwordOk}`, [{ field: 'password', message: passwordOk }]);
    const passwordHash = await hashPassword(input.password);
    const done = await asSystem(this.options.database, async (tx) => {
      const reset = await lockPasswordReset(tx, tokenHash(input.token));
      if (!reset || reset.used_at || reset.expires_at <= now) return false;
      await markPasswordResetUsed(tx, reset.id, now);
      await setPasswordHash(tx, reset.user_id, passwordHash, now);
      const sessionsRevoked = await revokeAllSessionsOfUser(tx, reset.user_id, now);
      await recordAudit(
        tx,
        {
          event: 'auth.password_reset',
          actorType: 'user',
          actorId: reset.user_id,
          subjectType: 'user',
          subjectId: reset.user_id,
          accountId: reset.account_id,
          ip: context.ip,
          metadata: { resetId: reset.id, sessionsRevoked },
        },
        this.options.clock,
      );
      return true;
    });
    if (!done) throw new AppError('VALIDATION_FAILED', 'token: invalid or expired', [{ field: 'token', message: 'is invalid or expired' }]);
  }

  private async startSession(tx: Queryable, user: UserRow, now: Date): Promise<IssuedSession> {
    const sessionId = newId('session');
    const familyExpiresAt = new Date(now.getTime() + SESSION_MAX_AGE_SECONDS * 1000);
    return this.issueTokens(tx, user, sessionId, familyExpiresAt, now);
  }

  private async continueSession(tx: Queryable, previous: RefreshTokenRow, user: UserRow, now: Date): Promise<IssuedSession> {
    return this.issueTokens(tx, user, previous.family_id, previous.family_expires_at, now);
  }

  private async issueTokens(tx: Queryable, user: UserRow, sessionId: string, familyExpiresAt: Date, now: Date): Promise<IssuedSession> {
    const refreshToken = newOpaqueToken();
    const refreshExpiresAt = new Date(Math.min(now.getTime() + REFRESH_TOKEN_TTL_SECONDS * 1000, familyExpiresAt.getTime()));
    await insertRefreshToken(tx, {
      id: newId('refreshToken'),
      familyId: sessionId,
      userId: user.id,
      accountId: user.account_id,
      tokenHash: tokenHash(refreshToken),
      createdAt: now,
      expiresAt: refreshExpiresAt,
      familyExpiresAt,
    });
    const accessToken = await this.options.accessTokens.issue(
      { userId: user.id, accountId: user.account_id, sessionId, role: user.role },
      now,
    );
    return { sessionId, accessToken, refreshToken, refreshExpiresAt };
  }
}
