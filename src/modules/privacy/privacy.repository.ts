import type { Queryable } from '../../platform/database/database.js';

/**
 * The SQL of personal data rights (GDPR-1, GDPR-2): what an export reads, and what a
 * deletion changes. Export queries name their columns in the export's own (camelCase)
 * shape; timestamps come back as Dates and are written as ISO 8601 by JSON.
 * Secrets and their hashes (password, refresh and reset tokens, API keys) are never read.
 */

type Row = Record<string, unknown>;

async function rows(tx: Queryable, text: string, params: readonly unknown[]): Promise<Row[]> {
  return (await tx.query<Row>(text, params)).rows;
}

export interface ExportAccountRow {
  id: string;
  name: string | null;
  plan: string;
  status: string;
  stripeCustomerId: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ExportUserRow {
  id: string;
  email: string | null;
  name: string | null;
  role: string;
  status: string;
  hasPassword: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** Everything the database holds about an account and one of its users, except the audit trail. */
export interface LocalPersonalData {
  readonly account: ExportAccountRow;
  readonly user: ExportUserRow;
  readonly otherUsers: Row[];
  readonly externalIdentities: Row[];
  readonly sessions: Row[];
  readonly passwordResets: Row[];
  readonly apiKeys: Row[];
  readonly usage: { readonly reports: Row[]; readonly counters: Row[]; readonly dailyCounts: Row[]; readonly leases: Row[] };
  readonly credits: { readonly grants: Row[]; readonly reservations: Row[]; readonly ledger: Row[] };
  /** What the service itself keeps of the account's billing (the webhook intake's tables); Stripe's own records are exported beside it. */
  readonly localBilling: { readonly subscriptions: Row[]; readonly payments: Row[]; readonly refunds: Row[]; readonly stripeEvents: Row[] };
  readonly deletion: Row | null;
}

/** Reads an account's and user's data in the account's context; undefined when either is unknown. */
export async function readLocalPersonalData(tx: Queryable, accountId: string, userId: string): Promise<LocalPersonalData | undefined> {
  const account = (
    await tx.query<ExportAccountRow>(
      `SELECT id, name, plan, status, stripe_customer_id AS "stripeCustomerId", created_at AS "createdAt", updated_at AS "updatedAt"
         FROM accounts WHERE id = $1`,
      [accountId],
    )
  ).rows[0];
  const user = (
    await tx.query<ExportUserRow>(
      `SELECT id, email, name, role, status, password_hash IS NOT NULL AS "hasPassword", created_at AS "createdAt", updated_at AS "updatedAt"
         FROM users WHERE id = $1 AND account_id = $2`,
      [userId, accountId],
    )
  ).rows[0];
  if (!account || !user) return undefined;
  const byAccount = [accountId];
  const byUser = [userId];
  return {
    account,
    user,
    // Other people of the account: that they exist, not who they are.
    otherUsers: await rows(tx, `SELECT id, role, status, created_at AS "createdAt" FROM users WHERE account_id = $1 AND id <> $2 ORDER BY created_at, id`, [accountId, userId]),
    externalIdentities: await rows(tx, `SELECT issuer, subject, created_at AS "createdAt" FROM external_identities WHERE user_id = $1 ORDER BY created_at`, byUser),
    sessions: await rows(
      tx,
      `SELECT family_id AS id, min(created_at) AS "startedAt", max(created_at) AS "lastRefreshedAt",
              max(family_expires_at) AS "expiresAt", max(revoked_at) AS "revokedAt"
         FROM refresh_tokens WHERE user_id = $1 GROUP BY family_id ORDER BY min(created_at), family_id`,
      byUser,
    ),
    passwordResets: await rows(
      tx,
      `SELECT id, created_at AS "requestedAt", expires_at AS "expiresAt", used_at AS "usedAt" FROM password_reset_tokens WHERE user_id = $1 ORDER BY created_at, id`,
      byUser,
    ),
    apiKeys: await rows(
      tx,
      `SELECT id, prefix, label, created_at AS "createdAt", last_used_at AS "lastUsedAt", expires_at AS "expiresAt", revoked_at AS "revokedAt"
         FROM api_keys WHERE account_id = $1 ORDER BY created_at, id`,
      byAccount,
    ),
    usage: {
      // USE-3: the internal metadata is not part of any answer, this one included.
      reports: await rows(
        tx,
        `SELECT id, job_id AS "jobId", job_type AS "jobType", quantity, credits_used AS "creditsUsed", status, description, created_at AS "createdAt"
           FROM usage_reports WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
      counters: await rows(
        tx,
        `SELECT feature, period_start AS "periodStart", used, updated_at AS "updatedAt" FROM usage_counters WHERE account_id = $1 ORDER BY feature, period_start`,
        byAccount,
      ),
      dailyCounts: await rows(tx, `SELECT day::text AS day, events FROM usage_daily_counts WHERE account_id = $1 ORDER BY day`, byAccount),
      leases: await rows(
        tx,
        `SELECT id, feature, created_at AS "createdAt", expires_at AS "expiresAt", released_at AS "releasedAt" FROM leases WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
    },
    credits: {
      grants: await rows(
        tx,
        `SELECT id, source, amount, remaining, expires_at AS "expiresAt", reference, created_at AS "createdAt" FROM credit_grants WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
      reservations: await rows(
        tx,
        `SELECT id, job_id AS "jobId", job_type AS "jobType", amount, status, created_at AS "createdAt", expires_at AS "expiresAt", settled_at AS "settledAt"
           FROM credit_reservations WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
      ledger: await rows(
        tx,
        `SELECT id, kind, amount, grant_id AS "grantId", reservation_id AS "reservationId", created_at AS "createdAt" FROM credit_ledger WHERE account_id = $1 ORDER BY id`,
        byAccount,
      ),
    },
    localBilling: {
      subscriptions: await rows(
        tx,
        `SELECT id, status, plan_id AS "planId", stripe_price_id AS "stripePriceId", current_period_start AS "currentPeriodStart",
                current_period_end AS "currentPeriodEnd", cancel_at_period_end AS "cancelAtPeriodEnd", cancel_at AS "cancelAt",
                canceled_at AS "canceledAt", ended_at AS "endedAt", trial_end AS "trialEnd", created_at AS "createdAt", updated_at AS "updatedAt"
           FROM subscriptions WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
      payments: await rows(
        tx,
        `SELECT id, kind, stripe_payment_intent_id AS "stripePaymentIntentId", stripe_charge_id AS "stripeChargeId",
                stripe_invoice_id AS "stripeInvoiceId", stripe_subscription_id AS "stripeSubscriptionId", credit_pack_id AS "creditPackId",
                amount_cents AS "amountCents", currency, status, amount_refunded_cents AS "amountRefundedCents",
                credits_granted AS "creditsGranted", disputed_at AS "disputedAt", created_at AS "createdAt", updated_at AS "updatedAt"
           FROM payments WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
      // An operator's refunds (PAY-7): not the request's idempotency key or hash, not which operator.
      refunds: await rows(
        tx,
        `SELECT id, payment_id AS "paymentId", amount_cents AS "amountCents", requested_amount_cents AS "requestedAmountCents", currency,
                reason, stripe_reason AS "stripeReason", status, stripe_refund_id AS "stripeRefundId", created_at AS "createdAt", updated_at AS "updatedAt"
           FROM refunds WHERE account_id = $1 ORDER BY created_at, id`,
        byAccount,
      ),
      // The inbox keeps ids, type, times and a hash only (WH-7): that is all there is to export.
      stripeEvents: await rows(
        tx,
        `SELECT id, type, status, event_created_at AS "eventCreatedAt", received_at AS "receivedAt" FROM stripe_events WHERE account_id = $1 ORDER BY event_created_at, id`,
        byAccount,
      ),
    },
    deletion:
      (await rows(tx, `SELECT status, requested_at AS "requestedAt", completed_at AS "completedAt" FROM account_deletions WHERE account_id = $1`, byAccount))[0] ??
      null,
  };
}

/** The user a deletion request re-authenticates. */
export interface ReauthenticationRow {
  id: string;
  email: string | null;
  password_hash: string | null;
  status: string;
}

export async function findUserForReauthentication(tx: Queryable, accountId: string, userId: string): Promise<ReauthenticationRow | undefined> {
  const { rows: found } = await tx.query<ReauthenticationRow>(
    'SELECT id, email, password_hash, status FROM users WHERE id = $1 AND account_id = $2',
    [userId, accountId],
  );
  return found[0];
}

/** Locks the account row for the deletion request; undefined when unknown. */
export async function lockAccountStatus(tx: Queryable, accountId: string): Promise<{ status: string } | undefined> {
  const { rows: found } = await tx.query<{ status: string }>('SELECT status FROM accounts WHERE id = $1 FOR UPDATE', [accountId]);
  return found[0];
}

/**
 * Step 1 of a deletion: the account and every user of it stop authenticating. The
 * accounts trigger (migration 0005) announces the change to every instance on commit.
 */
export async function markAccountDeleted(tx: Queryable, accountId: string, at: Date): Promise<void> {
  await tx.query(`UPDATE accounts SET status = 'deleted', updated_at = $2 WHERE id = $1`, [accountId, at]);
  await tx.query(`UPDATE users SET status = 'deleted', updated_at = $2 WHERE account_id = $1 AND status <> 'deleted'`, [accountId, at]);
}

export interface DeletionRow {
  account_id: string;
  requested_by: string;
  requested_at: Date;
  status: 'pending' | 'completed';
  attempts: number;
  next_attempt_at: Date;
  last_error: string | null;
  completed_at: Date | null;
}

/** Queues the deletion (once: a repeated request keeps the first row). */
export async function insertDeletion(
  tx: Queryable,
  deletion: { accountId: string; requestedBy: string; at: Date; nextAttemptAt: Date },
): Promise<void> {
  await tx.query(
    `INSERT INTO account_deletions (account_id, requested_by, requested_at, status, next_attempt_at)
     VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT (account_id) DO NOTHING`,
    [deletion.accountId, deletion.requestedBy, deletion.at, deletion.nextAttemptAt],
  );
}

export async function findDeletion(tx: Queryable, accountId: string, options: { lock?: boolean } = {}): Promise<DeletionRow | undefined> {
  const { rows: found } = await tx.query<DeletionRow>(
    `SELECT * FROM account_deletions WHERE account_id = $1${options.lock ? ' FOR UPDATE' : ''}`,
    [accountId],
  );
  return found[0];
}

/** Pending deletions whose next attempt is due, oldest first. */
export async function dueDeletions(tx: Queryable, now: Date, limit: number): Promise<string[]> {
  const { rows: due } = await tx.query<{ account_id: string }>(
    `SELECT account_id FROM account_deletions WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, account_id LIMIT $2`,
    [now, limit],
  );
  return due.map((row) => row.account_id);
}

export async function recordDeletionFailure(tx: Queryable, accountId: string, failure: string, nextAttemptAt: Date): Promise<void> {
  await tx.query(
    `UPDATE account_deletions SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE account_id = $1 AND status = 'pending'`,
    [accountId, failure, nextAttemptAt],
  );
}

/** What the erasure at Stripe and the deletion email need, read before anything is erased. */
export async function readErasureSubject(tx: Queryable, accountId: string): Promise<{ stripeCustomerId: string | null; emails: string[] }> {
  const account = await tx.query<{ stripe_customer_id: string | null }>('SELECT stripe_customer_id FROM accounts WHERE id = $1', [accountId]);
  const users = await tx.query<{ email: string }>('SELECT email FROM users WHERE account_id = $1 AND email IS NOT NULL ORDER BY created_at, id', [accountId]);
  return { stripeCustomerId: account.rows[0]?.stripe_customer_id ?? null, emails: users.rows.map((row) => row.email) };
}

export interface LocalErasure {
  readonly users: number;
  readonly externalIdentities: number;
  readonly apiKeyLabels: number;
  readonly usageReports: number;
  readonly refundReasons: number;
  readonly idempotentAnswers: number;
}

/**
 * Step 2 of a deletion, locally: names, emails and password hashes go, external identity
 * mappings go, free text (key labels, usage descriptions and metadata, refund reasons) is
 * cleared, stored Idempotency-Key answers of the account or naming it go. Ids,
 * amounts and timestamps stay: the credit ledger, grants, reservations, usage reports and
 * counters are the financial records the law requires, now about nobody in particular.
 */
export async function eraseLocalPersonalData(tx: Queryable, accountId: string, at: Date): Promise<LocalErasure> {
  const users = await tx.query(
    `UPDATE users SET email = NULL, name = NULL, password_hash = NULL, status = 'deleted', updated_at = $2 WHERE account_id = $1`,
    [accountId, at],
  );
  await tx.query(`UPDATE accounts SET name = NULL, status = 'deleted', updated_at = $2 WHERE id = $1`, [accountId, at]);
  const externalIdentities = await tx.query('DELETE FROM external_identities WHERE account_id = $1', [accountId]);
  const apiKeyLabels = await tx.query(
    'UPDATE api_keys SET label = NULL, revoked_at = coalesce(revoked_at, $2) WHERE account_id = $1 AND (label IS NOT NULL OR revoked_at IS NULL)',
    [accountId, at],
  );
  const usageReports = await tx.query(
    `UPDATE usage_reports SET description = NULL, metadata = '{}'::jsonb WHERE account_id = $1 AND (description IS NOT NULL OR metadata <> '{}'::jsonb)`,
    [accountId],
  );
  // The operator's free text (NOT NULL): Stripe's reason when it was one (no one's name), else a placeholder.
  const refundReasons = await tx.query(
    `UPDATE refunds SET reason = coalesce(stripe_reason, 'erased'), updated_at = $2 WHERE account_id = $1 AND reason <> coalesce(stripe_reason, 'erased')`,
    [accountId, at],
  );
  // Answers kept for 24 hours (migration 0019): the account's own, and any that names it as a JSON
  // string (the operator's account creation holds the owner's email and name). Account ids are random.
  const idempotentAnswers = await tx.query(
    `DELETE FROM idempotency_requests r
      WHERE r.scope = 'account:' || $1
         OR strpos(r.response_body, '"' || $1 || '"') > 0`,
    [accountId],
  );
  return {
    users: users.rowCount,
    externalIdentities: externalIdentities.rowCount,
    apiKeyLabels: apiKeyLabels.rowCount,
    usageReports: usageReports.rowCount,
    refundReasons: refundReasons.rowCount,
    idempotentAnswers: idempotentAnswers.rowCount,
  };
}

export async function markDeletionCompleted(tx: Queryable, accountId: string, at: Date): Promise<void> {
  await tx.query(
    `UPDATE account_deletions SET status = 'completed', completed_at = $2, attempts = attempts + 1, last_error = NULL WHERE account_id = $1`,
    [accountId, at],
  );
}
