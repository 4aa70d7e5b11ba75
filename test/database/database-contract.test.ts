import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Database } from '../../src/platform/database/database.js';
import { SqlState, sqlStateOf } from '../../src/platform/database/database.js';
import { createPgliteDatabase } from '../../src/platform/database/pglite-database.js';
import { createPostgresDatabase } from '../../src/platform/database/postgres-database.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * The behaviour every Database implementation must share. The same tests run against the
 * embedded PGlite and against a real PostgreSQL through the node-postgres pool.
 */

const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 2^53 - 1

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

interface Driver {
  readonly name: 'pglite' | 'postgres';
  open(): Promise<Database>;
}

function defineContract(driver: () => Driver): void {
  let database: Database;

  beforeAll(async () => {
    database = await driver().open();
  });

  afterAll(async () => {
    await database?.close();
  });

  beforeEach(async () => {
    await database.exec(`
      DROP TABLE IF EXISTS ledger;
      DROP TABLE IF EXISTS accounts;
      CREATE TABLE accounts (
        id integer PRIMARY KEY,
        email text NOT NULL UNIQUE,
        balance_minor bigint NOT NULL DEFAULT 0 CHECK (balance_minor >= 0),
        price numeric(20, 2)
      );
      CREATE TABLE ledger (id integer PRIMARY KEY, note text NOT NULL);
    `);
  });

  async function emails(): Promise<string[]> {
    const { rows } = await database.query<{ email: string }>('SELECT email FROM accounts ORDER BY id');
    return rows.map((row) => row.email);
  }

  it('reports its driver', () => {
    expect(database.driver).toBe(driver().name);
  });

  it('runs a parameterised query and returns its rows, never interpolating the values', async () => {
    const hostile = "o'brien@example.com'); DROP TABLE accounts; --";
    await database.query('INSERT INTO accounts (id, email) VALUES ($1, $2), ($3, $4)', [1, 'a@example.com', 2, hostile]);

    const { rows, rowCount } = await database.query<{ id: number; email: string }>(
      'SELECT id, email FROM accounts WHERE email = $1',
      [hostile],
    );

    expect(rows).toEqual([{ id: 2, email: hostile }]);
    expect(rowCount).toBe(1);
    expect(await emails()).toEqual(['a@example.com', hostile]);
  });

  it('counts the rows an INSERT, UPDATE or DELETE affected', async () => {
    const inserted = await database.query(
      'INSERT INTO accounts (id, email) VALUES ($1, $2), ($3, $4), ($5, $6)',
      [1, 'a@example.com', 2, 'b@example.com', 3, 'c@example.com'],
    );
    expect(inserted.rows).toEqual([]);
    expect(inserted.rowCount).toBe(3);

    const updated = await database.query('UPDATE accounts SET balance_minor = balance_minor + 5 WHERE id >= $1', [2]);
    expect(updated.rowCount).toBe(2);

    const updatedNothing = await database.query('UPDATE accounts SET balance_minor = 1 WHERE id = $1', [99]);
    expect(updatedNothing.rowCount).toBe(0);

    const deleted = await database.query('DELETE FROM accounts WHERE id = $1', [1]);
    expect(deleted.rowCount).toBe(1);

    const selected = await database.query('SELECT id FROM accounts');
    expect(selected.rowCount).toBe(2);
  });

  it('counts and returns the rows of INSERT ... RETURNING', async () => {
    const result = await database.query<{ id: number; balance_minor: number }>(
      'INSERT INTO accounts (id, email, balance_minor) VALUES ($1, $2, $3), ($4, $5, $6) RETURNING id, balance_minor',
      [1, 'a@example.com', 10, 2, 'b@example.com', 20],
    );
    expect(result.rowCount).toBe(2);
    expect(result.rows).toEqual([
      { id: 1, balance_minor: 10 },
      { id: 2, balance_minor: 20 },
    ]);
  });

  it('returns int8 (bigint) columns and count(*) as exact JavaScript numbers', async () => {
    await database.query('INSERT INTO accounts (id, email, balance_minor) VALUES ($1, $2, $3)', [1, 'a@example.com', MAX_SAFE]);

    const { rows } = await database.query<{ balance_minor: unknown; total: unknown; low: unknown }>(
      'SELECT balance_minor, (SELECT count(*) FROM accounts) AS total, $1::bigint AS low FROM accounts',
      [-MAX_SAFE],
    );

    expect(rows).toEqual([{ balance_minor: MAX_SAFE, total: 1, low: -MAX_SAFE }]);
    expect(typeof rows[0]?.balance_minor).toBe('number');
    expect(typeof rows[0]?.total).toBe('number');
  });

  it('rejects (RangeError) an int8 beyond 2^53 instead of rounding it, and stays usable', async () => {
    // 2^53 + 1 would silently become 2^53 as a double.
    const tooBig = await rejectionOf(database.query("SELECT '9007199254740993'::bigint AS v"));
    expect(tooBig).toBeInstanceOf(RangeError);
    expect(String(tooBig)).toContain('9007199254740993');

    // 2^53 itself is already not a safe integer.
    expect(await rejectionOf(database.query("SELECT '9007199254740992'::bigint AS v"))).toBeInstanceOf(RangeError);
    expect(await rejectionOf(database.query("SELECT '-9007199254740993'::bigint AS v"))).toBeInstanceOf(RangeError);

    // A stored value that big is caught when read, too.
    await database.query("INSERT INTO accounts (id, email, balance_minor) VALUES (1, 'a@example.com', '9223372036854775807')");
    expect(await rejectionOf(database.query('SELECT balance_minor FROM accounts'))).toBeInstanceOf(RangeError);

    // The connection that hit the error still answers.
    const { rows } = await database.query<{ v: number }>('SELECT $1::bigint AS v', [42]);
    expect(rows).toEqual([{ v: 42 }]);
  });

  it('returns numeric as an exact string, never a float', async () => {
    await database.query('INSERT INTO accounts (id, email, price) VALUES ($1, $2, $3), ($4, $5, $6)', [
      1,
      'a@example.com',
      '19.99',
      2,
      'b@example.com',
      '123456789012345678.01',
    ]);

    const { rows } = await database.query<{ price: unknown }>('SELECT price FROM accounts ORDER BY id');
    expect(rows).toEqual([{ price: '19.99' }, { price: '123456789012345678.01' }]);

    const sum = await database.query<{ total: unknown; tenth: unknown }>(
      'SELECT sum(price) AS total, 0.1::numeric + 0.2::numeric AS tenth FROM accounts',
    );
    expect(sum.rows).toEqual([{ total: '123456789012345698.00', tenth: '0.3' }]);
  });

  // Regression: node-postgres's defaults parse int8[] into strings (no RangeError beyond
  // 2^53) and numeric[] with parseFloat (money as a float); postgres-database.ts overrides both.
  it('applies the same rules to int8[] and numeric[] as to single values', async () => {
    const { rows } = await database.query<{ counts: unknown; prices: unknown }>(
      "SELECT ARRAY[1, 9007199254740991]::bigint[] AS counts, ARRAY['19.99', '123456789012345678.01']::numeric[] AS prices",
    );
    expect(rows).toEqual([{ counts: [1, MAX_SAFE], prices: ['19.99', '123456789012345678.01'] }]);
    expect(await rejectionOf(database.query("SELECT ARRAY['9007199254740993']::bigint[] AS v"))).toBeInstanceOf(RangeError);
  });

  it('runs a multi-statement script with exec', async () => {
    await database.exec(`
      INSERT INTO accounts (id, email) VALUES (1, 'a@example.com');
      INSERT INTO accounts (id, email) VALUES (2, 'b@example.com');
      UPDATE accounts SET balance_minor = 7 WHERE id = 2;
      CREATE TABLE from_script (x integer);
    `);

    const { rows } = await database.query<{ id: number; balance_minor: number }>(
      'SELECT id, balance_minor FROM accounts ORDER BY id',
    );
    expect(rows).toEqual([
      { id: 1, balance_minor: 0 },
      { id: 2, balance_minor: 7 },
    ]);
    const table = await database.query<{ name: string | null }>("SELECT to_regclass('from_script')::text AS name");
    expect(table.rows).toEqual([{ name: 'from_script' }]);
    await database.exec('DROP TABLE from_script');
  });

  it('rejects a failing exec script and keeps none of its statements', async () => {
    const error = await rejectionOf(
      database.exec(`
        INSERT INTO accounts (id, email) VALUES (1, 'a@example.com');
        INSERT INTO accounts (id, email) VALUES (2, 'a@example.com');
      `),
    );
    expect(sqlStateOf(error)).toBe(SqlState.uniqueViolation);
    expect(await emails()).toEqual([]);
  });

  it('commits a transaction when the work resolves and returns its value', async () => {
    const value = await database.transaction(async (tx) => {
      await tx.query('INSERT INTO accounts (id, email) VALUES ($1, $2)', [1, 'a@example.com']);
      const inserted = await tx.query('INSERT INTO ledger (id, note) VALUES ($1, $2) RETURNING id', [1, 'opened']);
      expect(inserted.rowCount).toBe(1);
      const { rows } = await tx.query<{ n: number }>('SELECT count(*) AS n FROM accounts');
      return { seenInside: rows[0]?.n };
    });

    expect(value).toEqual({ seenInside: 1 });
    expect(await emails()).toEqual(['a@example.com']);
    const ledger = await database.query('SELECT id, note FROM ledger');
    expect(ledger.rows).toEqual([{ id: 1, note: 'opened' }]);
  });

  it('rolls back everything and rethrows the same error when the work throws', async () => {
    await database.query('INSERT INTO accounts (id, email, balance_minor) VALUES (1, $1, 100)', ['a@example.com']);
    const failure = new Error('payment provider said no');

    const error = await rejectionOf(
      database.transaction(async (tx) => {
        await tx.query('UPDATE accounts SET balance_minor = balance_minor - 60 WHERE id = 1');
        await tx.query('INSERT INTO accounts (id, email) VALUES (2, $1)', ['b@example.com']);
        await tx.exec("INSERT INTO ledger (id, note) VALUES (1, 'debit'); INSERT INTO ledger (id, note) VALUES (2, 'credit');");
        throw failure;
      }),
    );

    expect(error).toBe(failure);
    const { rows } = await database.query('SELECT id, balance_minor FROM accounts ORDER BY id');
    expect(rows).toEqual([{ id: 1, balance_minor: 100 }]);
    expect((await database.query('SELECT id FROM ledger')).rows).toEqual([]);
  });

  it('rolls back and rejects with the database error when a statement inside fails', async () => {
    const error = await rejectionOf(
      database.transaction(async (tx) => {
        await tx.query('INSERT INTO accounts (id, email) VALUES (1, $1)', ['a@example.com']);
        await tx.query('INSERT INTO accounts (id, email) VALUES (2, $1)', ['a@example.com']);
      }),
    );

    expect(sqlStateOf(error)).toBe(SqlState.uniqueViolation);
    expect(await emails()).toEqual([]);
    // The database is usable for the next transaction.
    await database.transaction((tx) => tx.query('INSERT INTO accounts (id, email) VALUES (3, $1)', ['c@example.com']));
    expect(await emails()).toEqual(['c@example.com']);
  });

  it("rejects a unique violation with SQLSTATE 23505", async () => {
    await database.query('INSERT INTO accounts (id, email) VALUES ($1, $2)', [1, 'a@example.com']);

    const error = await rejectionOf(database.query('INSERT INTO accounts (id, email) VALUES ($1, $2)', [2, 'a@example.com']));

    expect(error).toBeInstanceOf(Error);
    expect(sqlStateOf(error)).toBe('23505');
    expect(sqlStateOf(error)).toBe(SqlState.uniqueViolation);
  });

  it('rejects a CHECK violation with SQLSTATE 23514', async () => {
    const error = await rejectionOf(
      database.query('INSERT INTO accounts (id, email, balance_minor) VALUES ($1, $2, $3)', [1, 'a@example.com', -1]),
    );

    expect(sqlStateOf(error)).toBe('23514');
    expect(sqlStateOf(error)).toBe(SqlState.checkViolation);
    expect(await emails()).toEqual([]);
  });

  it('runs a transaction at the isolation level asked for', async () => {
    const isolationOf = (tx: { query: Database['query'] }) =>
      tx.query<{ transaction_isolation: string }>('SHOW transaction_isolation').then((r) => r.rows[0]?.transaction_isolation);

    expect(await database.transaction(isolationOf, { isolation: 'serializable' })).toBe('serializable');
    expect(await database.transaction(isolationOf, { isolation: 'repeatable read' })).toBe('repeatable read');
    expect(await database.transaction(isolationOf)).toBe('read committed');

    // And a serializable transaction still commits its work.
    await database.transaction((tx) => tx.query('INSERT INTO accounts (id, email) VALUES (1, $1)', ['s@example.com']), {
      isolation: 'serializable',
    });
    expect(await emails()).toEqual(['s@example.com']);
  });

  // Keep this test last: it closes the suite's own database (opening a second PGlite costs
  // seconds). afterAll closes it once more, which must be harmless too.
  it('closes, refuses queries afterwards, and a second close() is harmless', async () => {
    expect((await database.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);

    await database.close();
    await expect(database.close()).resolves.toBeUndefined();
    await expect(database.query('SELECT 1')).rejects.toThrow();
  });
}

describe('Database contract: PGlite (memory://)', () => {
  defineContract(() => ({ name: 'pglite', open: () => createPgliteDatabase('memory://') }));
});

describeWithPostgres('Database contract: PostgreSQL (node-postgres pool)', () => {
  let scratch: ScratchDatabase;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
  });

  afterAll(async () => {
    await scratch?.drop();
  });

  defineContract(() => ({
    name: 'postgres',
    open: async () =>
      createPostgresDatabase({
        kind: 'postgres',
        url: scratch.url,
        poolMax: 5,
        connectTimeoutMs: 3000,
        statementTimeoutMs: 5000,
        idleTimeoutMs: 10000,
        ssl: 'disable',
        sslCaPath: undefined,
      }),
  }));
});
