import type { Logger } from 'pino';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem, forAccount } from '../../platform/database/access.js';
import { sqlStateOf, type Database } from '../../platform/database/database.js';
import type { Notifier } from '../notifications/notifier.js';
import { LoginLockout, loginLockedError } from '../../platform/rate-limit/lockout.js';
import { notifyApiKeyChanged, revokeAllApiKeysOfAccount } from '../api-keys/api-keys.repository.js';
import { erasePersonalAuditData, erasePersonalAuditDataByEmail, listAuditEntriesAbout, recordAudit, type StoredAuditEntry } from '../audit/audit.service.js';
import { verifyAgainstDummy, verifyPassword } from '../auth/passwords.js';
import { revokeAllSessionsOfAccount, spendPasswordResetsOfAccount } from '../auth/sessions.repository.js';
import type { StripeGateway } from '../stripe/gateway.js';
import {
  dueDeletions,
  eraseLocalPersonalData,
  findDeletion,
  findUserForReauthentication,
  insertDeletion,
  lockAccountStatus,
  markAccountDeleted,
  markDeletionCompleted,
  readErasureSubject,
  readLocalPersonalData,
  recordDeletionFailure,
  type LocalPersonalData,
} from './privacy.repository.js';
import { customerHistory, eraseCustomerAtStripe, stripeFailure, type CustomerHistory } from './stripe-records.js';

export const EXPORT_FORMAT = 'bulwark.account-export.v1';

/** How long a deletion request waits for its own first attempt before answering `pending`. */
export const DEFAULT_DELETION_WAIT_MS = 10_000;
/** The request's own attempt comes first; the job looks at a fresh deletion only after this. */
const FIRST_RETRY_AFTER_MS = 5 * 60_000;
const RETRY_BASE_MS = 60_000;
const RETRY_MAX_MS = 60 * 60_000;

/** Who asks: a person (a user signed in with a password, or a trusted service's user). */
export type DataSubjectPrincipal =
  | { readonly kind: 'user'; readonly accountId: string; readonly userId: string }
  | { readonly kind: 'service'; readonly accountId: string; readonly userId: string };

/** The downloadable export (GDPR-1). */
export interface AccountExport extends Omit<LocalPersonalData, 'deletion'> {
  readonly format: typeof EXPORT_FORMAT;
  readonly exportedAt: string;
  readonly deletion: LocalPersonalData['deletion'];
  /** What Stripe holds, per customer of the account; empty when the account never had one. */
  readonly billing: { readonly source: 'stripe'; readonly customers: CustomerHistory[] };
  readonly audit: StoredAuditEntry[];
}

export type DeletionStatus = 'deleted' | 'pending';

/** The audit trail's actor for a data subject (as actorOf() in auth/principal.ts). */
function actorOfSubject(principal: DataSubjectPrincipal): { actorType: string; actorId: string } {
  return { actorType: principal.kind, actorId: principal.userId };
}

export interface PrivacyServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly stripe: StripeGateway;
  /** Queues the deletion email (and the account.deleted webhook) in the erasure's transaction (MAIL-1). */
  readonly notifier: Notifier;
  readonly logger: Logger;
  /** Re-authentication follows the login lockout rules (5 failures lock the email). */
  readonly loginLockout: LoginLockout;
  readonly authFailures?: { recordAuthFailure(failure: { ip: string | null; accountId: string | null }): void };
  /** AUDIT_PSEUDONYM_KEY: keys the pseudonyms that replace IPs and emails in the audit trail. */
  readonly pseudonymKey: string;
  /** After a commit that revoked keys: this instance's verifier forgets them at once. */
  readonly onApiKeysRevoked?: (keyIds: readonly string[]) => void;
  /** After a commit that changed an account: this instance's snapshot cache forgets it at once. */
  readonly onAccountChanged?: (accountId: string) => void;
  readonly deletionWaitMs?: number;
}

/**
 * Personal data rights (GDPR-1, GDPR-2). Export: everything held about the caller, from
 * the database and from Stripe. Deletion: in two steps (docs/ARCHITECTURE.md "Personal
 * data"): the account stops working at once, then Stripe is cleared and, only after
 * Stripe confirmed, the personal data are erased; a step that fails is retried by the
 * privacy.account_deletions job.
 */
export class PrivacyService {
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly options: PrivacyServiceOptions) {}

  /** GDPR-1 for the caller, audited as `account.export`. */
  async exportFor(principal: DataSubjectPrincipal, ip: string | null): Promise<AccountExport> {
    const document = await this.buildExport(principal.accountId, principal.userId);
    if (!document) throw new AppError('NOT_FOUND', 'Not found');
    await forAccount(this.options.database, principal.accountId, (tx) =>
      recordAudit(
        tx,
        {
          ...actorOfSubject(principal),
          event: 'account.export',
          subjectType: 'user',
          subjectId: principal.userId,
          accountId: principal.accountId,
          ip,
          metadata: { format: EXPORT_FORMAT, auditEntries: document.audit.length, stripeCustomers: document.billing.customers.length },
        },
        this.options.clock,
      ),
    );
    return document;
  }

  /**
   * Everything held about one user of one account, or undefined when unknown. Stripe is
   * asked only while the account lives: a deleted account's customer is gone, and what
   * Stripe keeps of its invoices for the law is not ours to hand out again.
   */
  async buildExport(accountId: string, userId: string): Promise<AccountExport | undefined> {
    const local = await forAccount(this.options.database, accountId, (tx) => readLocalPersonalData(tx, accountId, userId), {
      isolation: 'repeatable read',
    });
    if (!local) return undefined;
    const emails = local.user.email === null ? [] : [local.user.email];
    // A system context: entries that name no account (a failed login for this email) are the user's too.
    const audit = await asSystem(this.options.database, (tx) => listAuditEntriesAbout(tx, { accountId, emails }));
    const customers: CustomerHistory[] = [];
    if (local.account.status !== 'deleted' && local.account.stripeCustomerId !== null) {
      try {
        customers.push(await customerHistory(this.options.stripe, local.account.stripeCustomerId));
      } catch (error) {
        this.options.logger.warn({ accountId, stripe: stripeFailure(error) }, 'account export: Stripe did not answer');
        // An export that silently lacked the billing history would claim to be complete.
        throw new AppError('SERVICE_UNAVAILABLE', 'The billing history cannot be read right now; try again later', undefined, { 'Retry-After': '60' });
      }
    }
    return {
      format: EXPORT_FORMAT,
      exportedAt: this.options.clock.now().toISOString(),
      ...local,
      billing: { source: 'stripe', customers },
      audit,
    };
  }

  /**
   * GDPR-2. A user proves it is them with their password (the login lockout rules apply;
   * a wrong one is 403 and changes nothing); a trusted service's user has no password here
   * and the service, which authenticated itself and its user's fresh token, vouches.
   * Answers `deleted` when the whole deletion finished within the wait, else `pending`
   * (the account already refuses every credential; the job finishes the rest).
   */
  async requestDeletion(principal: DataSubjectPrincipal, password: string | undefined, ip: string | null): Promise<DeletionStatus> {
    const { accountId, userId } = principal;
    if (principal.kind === 'user') {
      if (password === undefined) throw new AppError('VALIDATION_FAILED', 'password: is required', [{ field: 'password', message: 'is required' }]);
      await this.reauthenticate(accountId, userId, password, ip);
    } else if (password !== undefined) {
      const message = 'must not be sent: accounts of an external identity provider are confirmed by the service';
      throw new AppError('VALIDATION_FAILED', `password: ${message}`, [{ field: 'password', message }]);
    }

    const now = this.options.clock.now();
    const revoked = await forAccount(this.options.database, accountId, async (tx) => {
      const account = await lockAccountStatus(tx, accountId);
      if (!account) throw new AppError('NOT_FOUND', 'Not found');
      if (account.status === 'deleted') return undefined;
      await markAccountDeleted(tx, accountId, now);
      const sessions = await revokeAllSessionsOfAccount(tx, accountId, now);
      const passwordResets = await spendPasswordResetsOfAccount(tx, accountId, now);
      const keyIds = await revokeAllApiKeysOfAccount(tx, accountId, now);
      // Every instance forgets each key on commit (KEY-2's feed), besides the account feed.
      for (const keyId of keyIds) await notifyApiKeyChanged(tx, keyId);
      await insertDeletion(tx, { accountId, requestedBy: userId, at: now, nextAttemptAt: new Date(now.getTime() + FIRST_RETRY_AFTER_MS) });
      await recordAudit(
        tx,
        {
          ...actorOfSubject(principal),
          event: 'account.deletion_requested',
          subjectType: 'account',
          subjectId: accountId,
          accountId,
          ip,
          metadata: { sessionsRevoked: sessions, passwordResetsSpent: passwordResets, apiKeysRevoked: keyIds.length },
        },
        this.options.clock,
      );
      return keyIds;
    });
    if (revoked) {
      this.options.onApiKeysRevoked?.(revoked);
      this.options.onAccountChanged?.(accountId);
    }
    const outcome = await this.waitAtMost(this.track(this.completeDeletion(accountId)), this.options.deletionWaitMs ?? DEFAULT_DELETION_WAIT_MS);
    return outcome === 'completed' || outcome === 'already-completed' ? 'deleted' : 'pending';
  }

  /**
   * Step 2 of a deletion, safe to repeat and to run on several instances at once: Stripe
   * first (idempotent), then the local erasure in one transaction under the deletion row's
   * lock, so exactly one run completes it and sends the email. A Stripe failure leaves
   * everything local as it was and schedules the next attempt.
   */
  async completeDeletion(accountId: string): Promise<'completed' | 'already-completed' | 'pending' | 'unknown'> {
    const { database, clock, logger } = this.options;
    const deletion = await asSystem(database, (tx) => findDeletion(tx, accountId));
    if (!deletion) return 'unknown';
    if (deletion.status === 'completed') return 'already-completed';
    const subject = await asSystem(database, (tx) => readErasureSubject(tx, accountId));

    let stripe = { subscriptionsCanceled: 0, customersDeleted: 0 };
    if (subject.stripeCustomerId !== null) {
      try {
        const erased = await eraseCustomerAtStripe(this.options.stripe, accountId, subject.stripeCustomerId);
        stripe = { subscriptionsCanceled: erased.subscriptionsCanceled, customersDeleted: erased.customerDeleted ? 1 : 0 };
      } catch (error) {
        const failure = stripeFailure(error);
        const retryInMs = Math.min(RETRY_BASE_MS * 2 ** deletion.attempts, RETRY_MAX_MS);
        await asSystem(database, (tx) => recordDeletionFailure(tx, accountId, failure, new Date(clock.now().getTime() + retryInMs)));
        logger.warn({ accountId, stripe: failure, retryInSeconds: retryInMs / 1000 }, 'account deletion waits for Stripe; nothing was erased');
        return 'pending';
      }
    }

    const completed = await asSystem(database, async (tx) => {
      const locked = await findDeletion(tx, accountId, { lock: true });
      if (!locked || locked.status === 'completed') return undefined;
      const now = clock.now();
      // Read again under the lock: these are the addresses the erasure removes.
      const { emails } = await readErasureSubject(tx, accountId);
      const local = await eraseLocalPersonalData(tx, accountId, now);
      const auditEntries =
        (await erasePersonalAuditData(tx, accountId, this.options.pseudonymKey, clock)) +
        (await erasePersonalAuditDataByEmail(tx, emails, this.options.pseudonymKey, clock));
      await markDeletionCompleted(tx, accountId, now);
      // The addresses were just erased from the users: each email carries its own, which
      // the delivery clears once sent. One account.deleted for the webhooks.
      for (const [index, email] of (emails.length > 0 ? emails : [undefined]).entries()) {
        await this.options.notifier.emit(tx, {
          type: 'account.deleted',
          accountId,
          data: { accountId, deletedAt: now.toISOString() },
          ...(email !== undefined ? { email: { template: 'account_deleted' as const, to: email } } : {}),
          webhooks: index === 0,
        });
      }
      // No IP and no personal detail: this entry is never erased.
      await recordAudit(
        tx,
        {
          event: 'account.deleted',
          actorType: 'system',
          subjectType: 'account',
          subjectId: accountId,
          accountId,
          metadata: { requestedBy: locked.requested_by, ...stripe, ...local, auditEntriesErased: auditEntries },
        },
        clock,
      );
      return true;
    });
    if (!completed) return 'already-completed';
    this.options.onAccountChanged?.(accountId);
    logger.info({ accountId }, 'account deleted');
    return 'completed';
  }

  /** The job's work: every pending deletion that is due, one after another. */
  async processDueDeletions(options: { readonly limit?: number; readonly signal?: AbortSignal } = {}): Promise<{ completed: number; pending: number }> {
    const due = await asSystem(this.options.database, (tx) => dueDeletions(tx, this.options.clock.now(), options.limit ?? 50));
    let completed = 0;
    let pending = 0;
    for (const accountId of due) {
      if (options.signal?.aborted) break;
      const outcome = await this.track(this.completeDeletion(accountId));
      if (outcome === 'completed') completed += 1;
      if (outcome === 'pending') pending += 1;
    }
    return { completed, pending };
  }

  /** Waits for deletions still running in the background (call before the database closes). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  private async reauthenticate(accountId: string, userId: string, password: string, ip: string | null): Promise<void> {
    const user = await forAccount(this.options.database, accountId, (tx) => findUserForReauthentication(tx, accountId, userId));
    if (!user) throw new AppError('UNAUTHENTICATED', 'Authentication required');
    const lockoutKey = user.email === null ? undefined : LoginLockout.keyForEmail(user.email);
    if (lockoutKey) {
      const lock = await this.options.loginLockout.check(lockoutKey);
      if (lock.locked) throw loginLockedError(lock);
    }
    const valid = user.password_hash ? await verifyPassword(user.password_hash, password) : await verifyAgainstDummy(password);
    if (valid) {
      if (lockoutKey) await this.options.loginLockout.recordSuccess(lockoutKey);
      return;
    }
    if (lockoutKey) await this.options.loginLockout.recordFailure(lockoutKey);
    this.options.authFailures?.recordAuthFailure({ ip, accountId });
    await forAccount(this.options.database, accountId, (tx) =>
      recordAudit(
        tx,
        {
          event: 'account.deletion_refused',
          actorType: 'user',
          actorId: userId,
          subjectType: 'account',
          subjectId: accountId,
          accountId,
          ip,
          metadata: { reason: 'wrong_password' },
        },
        this.options.clock,
      ),
    );
    throw new AppError('FORBIDDEN', 'password: is not correct', [{ field: 'password', message: 'is not correct' }]);
  }

  /** Keeps a deletion attempt known until it settles, so close() can wait for it; it never rejects. */
  private track<T>(work: Promise<T>): Promise<T | 'pending'> {
    const settled = work.catch((error: unknown) => {
      // The message and SQLSTATE only: a driver error's other fields may quote row values.
      this.options.logger.error(
        { reason: error instanceof Error ? error.message : 'unknown', code: sqlStateOf(error) ?? null },
        'account deletion attempt failed; it will be retried',
      );
      return 'pending' as const;
    });
    this.inFlight.add(settled);
    void settled.finally(() => this.inFlight.delete(settled));
    return settled;
  }

  private async waitAtMost<T>(work: Promise<T>, milliseconds: number): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), milliseconds);
      timer.unref();
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}
