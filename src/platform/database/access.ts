import type { Database, Transaction, TransactionOptions } from './database.js';

/** The role the application works as after migrating: it owns nothing and cannot bypass RLS. */
export const APPLICATION_ROLE = 'bulwark_app';

/**
 * Runs `work` in a transaction that acts for one account: row-level security shows and
 * accepts only that account's rows, so a query that forgets its filter still sees
 * nothing foreign (ACC-3). The setting is transaction-local (set_config(..., true)).
 */
export function forAccount<T>(
  database: Database,
  accountId: string,
  work: (tx: Transaction) => Promise<T>,
  options?: TransactionOptions,
): Promise<T> {
  return database.transaction(async (tx) => {
    await tx.query(`SELECT set_config('app.account_id', $1, true)`, [accountId]);
    return work(tx);
  }, options);
}

/**
 * Runs `work` in a transaction that may see every account: only for look-ups that
 * happen before the account is known (login by email, API key by hash) and for
 * operator routes. Each use is a deliberate, reviewable call.
 */
export function asSystem<T>(database: Database, work: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T> {
  return database.transaction(async (tx) => {
    await tx.query(`SELECT set_config('app.system', 'on', true)`);
    return work(tx);
  }, options);
}
