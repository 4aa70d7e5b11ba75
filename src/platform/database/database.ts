/**
 * The one database interface the service uses. Two implementations: PGlite (embedded,
 * default for development) and a node-postgres Pool (DATABASE_URL). Repositories take a
 * Queryable (the database itself or an open transaction) as their first argument.
 */
export interface QueryResult<Row> {
  readonly rows: Row[];
  /** Rows returned or affected, whichever is larger. */
  readonly rowCount: number;
}

export interface Queryable {
  /** One parameterised statement. Never interpolate values into `text`. */
  query<Row = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<QueryResult<Row>>;
  /** A script of several statements without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export type Transaction = Queryable;

export type IsolationLevel = 'read committed' | 'repeatable read' | 'serializable';

export interface TransactionOptions {
  readonly isolation?: IsolationLevel;
}

export interface Database extends Queryable {
  readonly driver: 'pglite' | 'postgres';
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws.
   * Inside, use only `tx`: on PGlite (one connection) a query on the database itself
   * would wait for the transaction to end.
   */
  transaction<T>(work: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  close(): Promise<void>;
}

/** SQLSTATE codes the service reacts to. */
export const SqlState = {
  uniqueViolation: '23505',
  checkViolation: '23514',
  foreignKeyViolation: '23503',
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  queryCanceled: '57014',
  /** Raised by credit_reserve (migration 0012) when the usable grants cannot cover a hold. */
  insufficientCredits: 'BW402',
} as const;

export function sqlStateOf(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

export function beginStatement(options?: TransactionOptions): string {
  return options?.isolation ? `BEGIN ISOLATION LEVEL ${options.isolation.toUpperCase()}` : 'BEGIN';
}

/**
 * int8 (bigint) columns hold counts and money in the smallest unit. They are returned as
 * JavaScript numbers, and a value beyond 2^53 is an error rather than a silent rounding.
 */
export function parseInt8(text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new RangeError(`int8 value ${text} exceeds the safe integer range`);
  return value;
}
