import type { Queryable } from '../../platform/database/database.js';

export type AccountStatus = 'active' | 'suspended' | 'deleted';
export type UserRole = 'owner' | 'member';
export type UserStatus = 'active' | 'deleted';

export interface AccountRow {
  id: string;
  name: string | null;
  plan: string;
  status: AccountStatus;
  stripe_customer_id: string | null;
  created_at: Date;
  updated_at: Date;
}

export interface UserRow {
  id: string;
  account_id: string;
  /** Null for users of an external identity provider, whose email Bulwark does not keep. */
  email: string | null;
  name: string | null;
  password_hash: string | null;
  role: UserRole;
  status: UserStatus;
  created_at: Date;
  updated_at: Date;
}

/** Emails are compared and stored in one form: trimmed and lower-cased. */
export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

export async function insertAccount(
  tx: Queryable,
  account: { id: string; name: string | null; plan: string; at: Date },
): Promise<AccountRow> {
  const { rows } = await tx.query<AccountRow>(
    `INSERT INTO accounts (id, name, plan, status, created_at, updated_at)
     VALUES ($1, $2, $3, 'active', $4, $4) RETURNING *`,
    [account.id, account.name, account.plan, account.at],
  );
  return rows[0] as AccountRow;
}

export async function insertUser(
  tx: Queryable,
  user: { id: string; accountId: string; email: string | null; name: string | null; passwordHash: string | null; role: UserRole; at: Date },
): Promise<UserRow> {
  const { rows } = await tx.query<UserRow>(
    `INSERT INTO users (id, account_id, email, name, password_hash, role, status, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7) RETURNING *`,
    [user.id, user.accountId, user.email === null ? null : normaliseEmail(user.email), user.name, user.passwordHash, user.role, user.at],
  );
  return rows[0] as UserRow;
}

export async function findAccount(tx: Queryable, accountId: string): Promise<AccountRow | undefined> {
  const { rows } = await tx.query<AccountRow>('SELECT * FROM accounts WHERE id = $1', [accountId]);
  return rows[0];
}

export async function findActiveUserByEmail(tx: Queryable, email: string): Promise<UserRow | undefined> {
  const { rows } = await tx.query<UserRow>(`SELECT * FROM users WHERE email = $1 AND status = 'active'`, [normaliseEmail(email)]);
  return rows[0];
}

export async function findUser(tx: Queryable, userId: string): Promise<UserRow | undefined> {
  const { rows } = await tx.query<UserRow>('SELECT * FROM users WHERE id = $1', [userId]);
  return rows[0];
}

export async function listAccounts(
  tx: Queryable,
  options: { limit: number; afterId?: string },
): Promise<AccountRow[]> {
  const { rows } = await tx.query<AccountRow>(
    `SELECT * FROM accounts WHERE ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
    [options.afterId ?? null, options.limit],
  );
  return rows;
}

/** The text of a LIKE pattern that matches `text` literally. */
function likeLiteral(text: string): string {
  return text.replace(/[\\%_]/g, (character) => `\\${character}`);
}

/**
 * Accounts by id after a cursor, filtered by `query` when given: an id starting with it,
 * or a name or owner email containing it (case-insensitive). Each row carries its
 * owner's email (the first owner's, for the operator's list).
 */
export async function searchAccounts(
  tx: Queryable,
  options: { limit: number; afterId?: string; query?: string },
): Promise<(AccountRow & { owner_email: string | null })[]> {
  const pattern = options.query === undefined ? null : likeLiteral(options.query.toLowerCase());
  const { rows } = await tx.query<AccountRow & { owner_email: string | null }>(
    `SELECT a.*,
            (SELECT u.email FROM users u WHERE u.account_id = a.id AND u.role = 'owner' AND u.status = 'active'
              ORDER BY u.created_at, u.id LIMIT 1) AS owner_email
       FROM accounts a
      WHERE ($1::text IS NULL OR a.id > $1)
        AND ($2::text IS NULL
             OR lower(a.id) LIKE $2 || '%'
             OR lower(coalesce(a.name, '')) LIKE '%' || $2 || '%'
             OR EXISTS (SELECT 1 FROM users u WHERE u.account_id = a.id AND u.status = 'active' AND u.email LIKE '%' || $2 || '%'))
      ORDER BY a.id
      LIMIT $3`,
    [options.afterId ?? null, pattern, options.limit],
  );
  return rows;
}

export async function updateAccount(
  tx: Queryable,
  accountId: string,
  changes: { plan?: string; status?: AccountStatus; name?: string | null },
  at: Date,
): Promise<AccountRow | undefined> {
  const { rows } = await tx.query<AccountRow>(
    `UPDATE accounts SET
       plan = COALESCE($2, plan),
       status = COALESCE($3, status),
       name = CASE WHEN $4::boolean THEN $5 ELSE name END,
       updated_at = $6
     WHERE id = $1 RETURNING *`,
    [accountId, changes.plan ?? null, changes.status ?? null, changes.name !== undefined, changes.name ?? null, at],
  );
  return rows[0];
}

/** The public shape of an account (API.md: `{id, plan, status}` plus what the owner may see). */
export function accountView(account: AccountRow): { id: string; name: string | null; plan: string; status: AccountStatus; createdAt: string } {
  return { id: account.id, name: account.name, plan: account.plan, status: account.status, createdAt: account.created_at.toISOString() };
}

export function userView(user: UserRow): { id: string; email: string | null; name: string | null; role: UserRole; accountId: string } {
  return { id: user.id, email: user.email, name: user.name, role: user.role, accountId: user.account_id };
}
