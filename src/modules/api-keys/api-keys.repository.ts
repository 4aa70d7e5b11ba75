import type { Queryable } from '../../platform/database/database.js';

export interface ApiKeyRow {
  id: string;
  account_id: string;
  prefix: string;
  label: string | null;
  secret_hash: string;
  created_at: Date;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
}

/** The columns a list shows; the hash never leaves the repository in a list. */
export type ApiKeyListRow = Omit<ApiKeyRow, 'secret_hash'>;

const LIST_COLUMNS = 'id, account_id, prefix, label, created_at, last_used_at, expires_at, revoked_at';

/** The NOTIFY channel on which every instance hears about revoked or re-dated keys (payload: key id). */
export const API_KEY_CHANNEL = 'bulwark_api_keys';

export async function insertApiKey(
  tx: Queryable,
  key: { id: string; accountId: string; prefix: string; label: string | null; secretHash: string; at: Date },
): Promise<ApiKeyListRow> {
  const { rows } = await tx.query<ApiKeyListRow>(
    `INSERT INTO api_keys (id, account_id, prefix, label, secret_hash, created_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${LIST_COLUMNS}`,
    [key.id, key.accountId, key.prefix, key.label, key.secretHash, key.at],
  );
  return rows[0] as ApiKeyListRow;
}

/** The look-up of authentication: by the HMAC, which is unique. */
export async function findApiKeyByHash(tx: Queryable, secretHash: string): Promise<ApiKeyRow | undefined> {
  const { rows } = await tx.query<ApiKeyRow>('SELECT * FROM api_keys WHERE secret_hash = $1', [secretHash]);
  return rows[0];
}

/** One key of one account, locked for a change. Both filters, always (ACC-2). */
export async function lockAccountApiKey(tx: Queryable, accountId: string, keyId: string): Promise<ApiKeyListRow | undefined> {
  const { rows } = await tx.query<ApiKeyListRow>(
    `SELECT ${LIST_COLUMNS} FROM api_keys WHERE id = $1 AND account_id = $2 FOR UPDATE`,
    [keyId, accountId],
  );
  return rows[0];
}

/** Operators revoke by key id alone (system context). */
export async function lockApiKeyById(tx: Queryable, keyId: string): Promise<ApiKeyListRow | undefined> {
  const { rows } = await tx.query<ApiKeyListRow>(`SELECT ${LIST_COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE`, [keyId]);
  return rows[0];
}

export async function markApiKeyRevoked(tx: Queryable, accountId: string, keyId: string, at: Date): Promise<ApiKeyListRow | undefined> {
  const { rows } = await tx.query<ApiKeyListRow>(
    `UPDATE api_keys SET revoked_at = $3 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL RETURNING ${LIST_COLUMNS}`,
    [keyId, accountId, at],
  );
  return rows[0];
}

/** Revokes every key of the account still unrevoked (account deletion); returns their ids. */
export async function revokeAllApiKeysOfAccount(tx: Queryable, accountId: string, at: Date): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    'UPDATE api_keys SET revoked_at = $2 WHERE account_id = $1 AND revoked_at IS NULL RETURNING id',
    [accountId, at],
  );
  return rows.map((row) => row.id);
}

/** Sets the end of a rotated key's overlap; an earlier expiry already set is kept. */
export async function shortenApiKeyExpiry(
  tx: Queryable,
  accountId: string,
  keyId: string,
  expiresAt: Date,
): Promise<ApiKeyListRow | undefined> {
  const { rows } = await tx.query<ApiKeyListRow>(
    `UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, $3), $3)
     WHERE id = $1 AND account_id = $2 RETURNING ${LIST_COLUMNS}`,
    [keyId, accountId, expiresAt],
  );
  return rows[0];
}

/** Keys that still authenticate (neither revoked nor expired) at `at`. */
export async function countUsableApiKeys(tx: Queryable, accountId: string, at: Date): Promise<number> {
  const { rows } = await tx.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM api_keys
     WHERE account_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $2)`,
    [accountId, at],
  );
  return rows[0]?.count ?? 0;
}

/** Newest first; the cursor is the (created_at, id) of the last row of the previous page. */
export async function listApiKeys(
  tx: Queryable,
  accountId: string,
  options: { limit: number; after?: { createdAt: Date; id: string } },
): Promise<ApiKeyListRow[]> {
  const { rows } = await tx.query<ApiKeyListRow>(
    `SELECT ${LIST_COLUMNS} FROM api_keys
     WHERE account_id = $1
       AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
     ORDER BY created_at DESC, id DESC
     LIMIT $4`,
    [accountId, options.after?.createdAt ?? null, options.after?.id ?? null, options.limit],
  );
  return rows;
}

/**
 * Records use, at most once per `minimumGap` per key: the condition makes a concurrent or
 * too-early second write a no-op rather than another row version.
 */
export async function touchApiKey(tx: Queryable, keyId: string, at: Date, minimumGapMs: number): Promise<void> {
  await tx.query(
    `UPDATE api_keys SET last_used_at = $2
     WHERE id = $1 AND revoked_at IS NULL AND (last_used_at IS NULL OR last_used_at <= $3)`,
    [keyId, at, new Date(at.getTime() - minimumGapMs)],
  );
}

/**
 * Tells every instance that a key changed (revoked, or its expiry moved). Issued inside
 * the changing transaction: PostgreSQL delivers it only when, and only if, that commits.
 */
export async function notifyApiKeyChanged(tx: Queryable, keyId: string): Promise<void> {
  await tx.query('SELECT pg_notify($1, $2)', [API_KEY_CHANNEL, keyId]);
}
