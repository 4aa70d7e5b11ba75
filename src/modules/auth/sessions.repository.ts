import type { Queryable } from '../../platform/database/database.js';

export interface RefreshTokenRow {
  id: string;
  family_id: string;
  user_id: string;
  account_id: string;
  token_hash: string;
  created_at: Date;
  expires_at: Date;
  family_expires_at: Date;
  rotated_at: Date | null;
  revoked_at: Date | null;
}

export async function insertRefreshToken(
  tx: Queryable,
  token: { id: string; familyId: string; userId: string; accountId: string; tokenHash: string; createdAt: Date; expiresAt: Date; familyExpiresAt: Date },
): Promise<void> {
  await tx.query(
    `INSERT INTO refresh_tokens (id, family_id, user_id, account_id, token_hash, created_at, expires_at, family_expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
    [token.id, token.familyId, token.userId, token.accountId, token.tokenHash, token.createdAt, token.expiresAt, token.familyExpiresAt],
  );
}

/** Locks the token's row so two refreshes with the same token cannot both rotate it. */
export async function lockRefreshToken(tx: Queryable, tokenHash: string): Promise<RefreshTokenRow | undefined> {
  const { rows } = await tx.query<RefreshTokenRow>('SELECT * FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE', [tokenHash]);
  return rows[0];
}

export async function markRotated(tx: Queryable, id: string, at: Date): Promise<void> {
  await tx.query('UPDATE refresh_tokens SET rotated_at = $2 WHERE id = $1', [id, at]);
}

export async function revokeFamily(tx: Queryable, familyId: string, at: Date): Promise<number> {
  const result = await tx.query('UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL', [familyId, at]);
  return result.rowCount;
}

export async function revokeAllSessionsOfUser(tx: Queryable, userId: string, at: Date): Promise<number> {
  const result = await tx.query('UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL', [userId, at]);
  return result.rowCount;
}

/** Ends every login session of every user of the account (account deletion). */
export async function revokeAllSessionsOfAccount(tx: Queryable, accountId: string, at: Date): Promise<number> {
  const result = await tx.query('UPDATE refresh_tokens SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL', [accountId, at]);
  return result.rowCount;
}

/** Spends every unused password reset of the account, so no emailed link can set a password again. */
export async function spendPasswordResetsOfAccount(tx: Queryable, accountId: string, at: Date): Promise<number> {
  const result = await tx.query('UPDATE password_reset_tokens SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL', [accountId, at]);
  return result.rowCount;
}

export interface PrincipalState {
  user_status: string;
  account_status: string;
  role: 'owner' | 'member';
  session_active: boolean;
}

/**
 * What the authentication hook needs on every user request (ACC-4): the user and
 * account still exist and are active, and the login session was not logged out.
 */
export async function loadPrincipalState(
  tx: Queryable,
  userId: string,
  accountId: string,
  sessionId: string,
  now: Date,
): Promise<PrincipalState | undefined> {
  const { rows } = await tx.query<PrincipalState>(
    `SELECT u.status AS user_status, a.status AS account_status, u.role,
            EXISTS (SELECT 1 FROM refresh_tokens r
                     WHERE r.family_id = $3 AND r.user_id = u.id AND r.revoked_at IS NULL AND r.family_expires_at > $4) AS session_active
       FROM users u JOIN accounts a ON a.id = u.account_id
      WHERE u.id = $1 AND a.id = $2`,
    [userId, accountId, sessionId, now],
  );
  return rows[0];
}

export interface PasswordResetRow {
  id: string;
  user_id: string;
  account_id: string;
  expires_at: Date;
  used_at: Date | null;
}

export async function insertPasswordReset(
  tx: Queryable,
  reset: { id: string; userId: string; accountId: string; tokenHash: string; createdAt: Date; expiresAt: Date },
): Promise<void> {
  await tx.query(
    `INSERT INTO password_reset_tokens (id, user_id, account_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
    [reset.id, reset.userId, reset.accountId, reset.tokenHash, reset.createdAt, reset.expiresAt],
  );
}

export async function lockPasswordReset(tx: Queryable, tokenHash: string): Promise<PasswordResetRow | undefined> {
  const { rows } = await tx.query<PasswordResetRow>(
    'SELECT id, user_id, account_id, expires_at, used_at FROM password_reset_tokens WHERE token_hash = $1 FOR UPDATE',
    [tokenHash],
  );
  return rows[0];
}

export async function markPasswordResetUsed(tx: Queryable, id: string, at: Date): Promise<void> {
  await tx.query('UPDATE password_reset_tokens SET used_at = $2 WHERE id = $1', [id, at]);
}

export async function setPasswordHash(tx: Queryable, userId: string, passwordHash: string, at: Date): Promise<void> {
  await tx.query('UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1', [userId, passwordHash, at]);
}
