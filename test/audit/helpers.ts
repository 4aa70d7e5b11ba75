import type { Clock } from '../../src/platform/clock.js';
import { APPLICATION_ROLE } from '../../src/platform/database/access.js';
import type { Database, Transaction } from '../../src/platform/database/database.js';
import { recordAudit, type AuditRecordInput, type RecordedAuditEntry } from '../../src/modules/audit/audit.service.js';

/** Who a transaction acts for: nobody yet (anonymous), one account, or the system. */
export type Context = { readonly kind: 'anonymous' } | { readonly kind: 'account'; readonly accountId: string } | { readonly kind: 'system' };

export const anonymous: Context = { kind: 'anonymous' };
export const system: Context = { kind: 'system' };
export const account = (accountId: string): Context => ({ kind: 'account', accountId });

/**
 * A transaction working as the application role (which RLS applies to) in `context`,
 * on a connection that may belong to the owner (PGlite from createTestPglite).
 */
export function asApp<T>(database: Database, context: Context, work: (tx: Transaction) => Promise<T>): Promise<T> {
  return database.transaction(async (tx) => {
    await tx.query(`SET LOCAL ROLE ${APPLICATION_ROLE}`);
    if (context.kind === 'account') await tx.query(`SELECT set_config('app.account_id', $1, true)`, [context.accountId]);
    if (context.kind === 'system') await tx.query(`SELECT set_config('app.system', 'on', true)`);
    return work(tx);
  });
}

/** A transaction working as the owner (the migrating role), even on a connection switched to the application role. */
export function asOwner<T>(database: Database, work: (tx: Transaction) => Promise<T>): Promise<T> {
  return database.transaction(async (tx) => {
    await tx.query('SET LOCAL ROLE NONE');
    return work(tx);
  });
}

/** What a tamperer with owner rights does: switch the append-only trigger off, change rows, switch it back on. */
export function tamper(database: Database, sql: string, params: readonly unknown[] = []): Promise<void> {
  return asOwner(database, async (tx) => {
    await tx.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
    const result = await tx.query(sql, params);
    if (result.rowCount !== 1) throw new Error(`tampering changed ${result.rowCount} rows, expected 1`);
    await tx.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
  });
}

/** Empties the log and rewinds the head to the genesis hash (the owner bypassing the triggers), between tests. */
export function resetAuditLog(database: Database): Promise<void> {
  return asOwner(database, async (tx) => {
    await tx.query('ALTER TABLE audit_log DISABLE TRIGGER USER');
    await tx.query('ALTER TABLE audit_chain_head DISABLE TRIGGER USER');
    await tx.query('DELETE FROM audit_log');
    await tx.query(`UPDATE audit_chain_head SET last_seq = 0, last_id = NULL, hash = repeat('0', 64)`);
    await tx.query('ALTER TABLE audit_chain_head ENABLE TRIGGER USER');
    await tx.query('ALTER TABLE audit_log ENABLE TRIGGER USER');
  });
}

export async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected the promise to reject, but it resolved');
}

export function sampleEntry(index: number, overrides: Partial<AuditRecordInput> = {}): AuditRecordInput {
  return {
    event: 'api_key.issued',
    actorType: 'user',
    actorId: `usr_${index}`,
    subjectType: 'api_key',
    subjectId: `key_${index}`,
    accountId: 'acct_a',
    ip: `203.0.113.${index % 250}`,
    metadata: { index, label: `key ${index}` },
    ...overrides,
  };
}

/** Records entries one transaction each, as the application role in `context`. */
export async function recordMany(
  database: Database,
  clock: Clock,
  inputs: readonly AuditRecordInput[],
  context: Context = system,
): Promise<RecordedAuditEntry[]> {
  const recorded: RecordedAuditEntry[] = [];
  for (const input of inputs) recorded.push(await asApp(database, context, (tx) => recordAudit(tx, input, clock)));
  return recorded;
}

export interface ChainLink {
  seq: number;
  id: string;
  prev_hash: string;
  hash: string;
}

export async function chainLinks(database: Database): Promise<ChainLink[]> {
  const { rows } = await asOwner(database, (tx) => tx.query<ChainLink>('SELECT seq, id, prev_hash, hash FROM audit_log ORDER BY seq'));
  return rows;
}
