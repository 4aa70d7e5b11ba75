import { verifyAuditChain, type ChainVerification } from '../../modules/audit/audit.verify.js';
import { verifyCreditLedger } from '../../modules/credits/credits.verify.js';
import type { Database, Queryable } from '../../platform/database/database.js';

/** What a backup or a restore reports at the end: the data's shape, and whether its two integrity checks hold. */
export interface DatabaseSummary {
  readonly tables: number;
  readonly rows: number;
  readonly rowsByTable: Readonly<Record<string, number>>;
  /** The highest applied migration, or null for a database without schema_migrations. */
  readonly schemaVersion: number | null;
  readonly auditChain: ChainVerification;
  readonly creditLedger: { readonly valid: boolean; readonly checked: number; readonly mismatchedAccounts: number };
}

/** The tables of the public schema (the service's), by name. */
export async function publicTables(database: Queryable): Promise<string[]> {
  const { rows } = await database.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`);
  return rows.map((row) => row.name);
}

function quoted(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}

/** Rows per table and in total, the schema version, the audit chain and the credit ledger. */
export async function summariseDatabase(database: Database): Promise<DatabaseSummary> {
  const rowsByTable: Record<string, number> = {};
  const tables = await publicTables(database);
  for (const table of tables) {
    // Table names come from the catalogue, quoted as identifiers: never from input.
    const { rows } = await database.query<{ count: number }>(`SELECT count(*)::bigint AS count FROM public.${quoted(table)}`);
    rowsByTable[table] = rows[0]?.count ?? 0;
  }
  let schemaVersion: number | null = null;
  if (tables.includes('schema_migrations')) {
    const { rows } = await database.query<{ version: number | null }>('SELECT max(version) AS version FROM schema_migrations');
    schemaVersion = rows[0]?.version ?? null;
  }
  const auditChain = tables.includes('audit_log') ? await verifyAuditChain(database) : ({ valid: true, checked: 0 } as const);
  const ledger = tables.includes('credit_grants') ? await verifyCreditLedger(database) : { valid: true, checked: 0, mismatches: [] };
  return {
    tables: tables.length,
    rows: Object.values(rowsByTable).reduce((sum, count) => sum + count, 0),
    rowsByTable,
    schemaVersion,
    auditChain,
    creditLedger: { valid: ledger.valid, checked: ledger.checked, mismatchedAccounts: ledger.mismatches.length },
  };
}

/** The summary's last lines, for people. */
export function summaryLines(summary: DatabaseSummary): string[] {
  const chain = summary.auditChain.valid
    ? `audit chain valid (${summary.auditChain.checked} entries)`
    : `audit chain BROKEN at ${summary.auditChain.brokenAt} (${summary.auditChain.reason})`;
  const ledger = summary.creditLedger.valid
    ? `credit ledger reconciles (${summary.creditLedger.checked} accounts)`
    : `credit ledger does NOT reconcile for ${summary.creditLedger.mismatchedAccounts} accounts`;
  return [`${summary.tables} tables, ${summary.rows} rows, schema version ${summary.schemaVersion ?? 'none'}`, `${chain}; ${ledger}`];
}
