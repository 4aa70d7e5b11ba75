import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { DatabaseConfig } from '../../config/config.js';
import { beginStatement, parseInt8, type Database, type Queryable, type QueryResult, type TransactionOptions } from './database.js';

type PostgresConfig = Extract<DatabaseConfig, { kind: 'postgres' }>;

const OID = { int8: 20, int8Array: 1016, textArray: 1009, numericArray: 1231 } as const;

const parseTextArray = pg.types.getTypeParser(OID.textArray as unknown as Parameters<typeof pg.types.getTypeParser>[0], 'text') as (text: string) => string[];

/**
 * The same rules as PGlite: int8 (and int8[]) become safe integers or an error, numeric
 * (and numeric[]) stay strings, so money never passes through a binary float.
 */
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === OID.int8) return parseInt8;
    if (oid === OID.int8Array) return (text: string) => parseTextArray(text).map((item) => (item === null ? null : parseInt8(item)));
    if (oid === OID.numericArray) return parseTextArray;
    return format === 'binary' ? pg.types.getTypeParser(oid, 'binary') : pg.types.getTypeParser(oid, 'text');
  },
} as pg.CustomTypesConfig;

export function sslOptions(config: PostgresConfig): pg.PoolConfig['ssl'] {
  if (config.ssl === 'disable') return false;
  const ca = config.sslCaPath ? readFileSync(config.sslCaPath, 'utf8') : undefined;
  // "require" encrypts without checking the server's certificate (like libpq's sslmode=require);
  // "verify-full" checks the chain and the host name.
  return config.ssl === 'verify-full' ? { rejectUnauthorized: true, ...(ca ? { ca } : {}) } : { rejectUnauthorized: false };
}

function wrap(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<Row>(text: string, params: readonly unknown[] = []): Promise<QueryResult<Row>> {
      const result = await client.query({ text, values: [...params] });
      return { rows: result.rows as Row[], rowCount: Math.max(result.rowCount ?? 0, result.rows.length) };
    },
    async exec(script: string): Promise<void> {
      // Without parameters node-postgres uses the simple protocol, which accepts several statements.
      await client.query(script);
    },
  };
}

export interface PostgresDatabaseOptions {
  readonly onPoolError?: (error: Error) => void;
  /**
   * The role every connection works as, set at connection start-up (`-c role=...`), so a
   * connection that cannot take the role fails instead of working as the owner.
   */
  readonly role?: string;
}

/**
 * node-postgres with a bounded pool, a connect timeout, a statement timeout, an idle-in-
 * transaction timeout and TLS when DATABASE_SSL asks for it.
 */
export function createPostgresDatabase(config: PostgresConfig, options: PostgresDatabaseOptions = {}): Database {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.poolMax,
    connectionTimeoutMillis: config.connectTimeoutMs,
    idleTimeoutMillis: config.idleTimeoutMs,
    statement_timeout: config.statementTimeoutMs,
    idle_in_transaction_session_timeout: Math.max(config.statementTimeoutMs * 2, 10_000),
    application_name: 'bulwark',
    ssl: sslOptions(config),
    types: typeParsers,
    ...(options.role !== undefined ? { options: `-c role=${options.role}` } : {}),
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (error) => options.onPoolError?.(error));
  const root = wrap(pool);
  let closed = false;
  return {
    driver: 'postgres',
    query: root.query,
    exec: root.exec,
    async transaction<T>(work: (tx: Queryable) => Promise<T>, transactionOptions?: TransactionOptions): Promise<T> {
      const client = await pool.connect();
      let broken: Error | undefined;
      // While checked out, a client has no pool listener: without ours, the server ending
      // the connection mid-transaction would be an uncaught exception. The failing query
      // rejects on its own; this only records that the client must not be reused.
      const onClientError = (error: Error) => {
        broken = error;
        options.onPoolError?.(error);
      };
      client.on('error', onClientError);
      try {
        await client.query(beginStatement(transactionOptions));
        const result = await work(wrap(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          // The connection is unusable; destroy it rather than return it to the pool.
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        }
        throw error;
      } finally {
        client.off('error', onClientError);
        client.release(broken);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}
