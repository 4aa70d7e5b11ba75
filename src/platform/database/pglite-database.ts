import { mkdirSync } from 'node:fs';
import { PGlite, types, type Transaction as PgliteTransaction } from '@electric-sql/pglite';
import { beginStatement, parseInt8, type Database, type Queryable, type QueryResult, type TransactionOptions } from './database.js';

function wrap(target: PGlite | PgliteTransaction): Queryable {
  return {
    async query<Row>(text: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await target.query<Row>(text, [...params]);
      return { rows: result.rows, rowCount: Math.max(result.affectedRows ?? 0, result.rows.length) };
    },
    async exec(script: string): Promise<void> {
      await target.exec(script);
    },
  };
}

/**
 * The embedded database: real PostgreSQL compiled to WebAssembly, one connection, data in
 * a folder (or in memory with `memory://`). For development and single-process use only.
 */
export async function createPgliteDatabase(dataDir: string): Promise<Database> {
  return wrapPglite(await openPglite(dataDir));
}

/**
 * The PGlite instance itself (backup and restore need its dumpDataDir / loadDataDir),
 * opened as createPgliteDatabase opens it; `loadDataDir` fills a new folder from a dump.
 */
export async function openPglite(dataDir: string, loadDataDir?: Blob): Promise<PGlite> {
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return PGlite.create(dataDir, { parsers: { [types.INT8]: parseInt8 }, ...(loadDataDir ? { loadDataDir } : {}) });
}

/** Our Database interface over an already created PGlite instance. */
export function wrapPglite(pglite: PGlite): Database {
  const root = wrap(pglite);
  return {
    driver: 'pglite',
    query: root.query,
    exec: root.exec,
    async transaction<T>(work: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
      if (!options?.isolation) return pglite.transaction((tx) => work(wrap(tx)));
      // PGlite's transaction() always issues a plain BEGIN; with one connection every
      // isolation level behaves the same, but honour the request for parity.
      return pglite.transaction(async (tx) => {
        await tx.query(`SET TRANSACTION ${beginStatement(options).slice('BEGIN '.length)}`);
        return work(wrap(tx));
      });
    },
    async close(): Promise<void> {
      if (!pglite.closed) await pglite.close();
    },
  };
}
