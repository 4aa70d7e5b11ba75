import net from 'node:net';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it, vi } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import type { Database } from '../../src/platform/database/database.js';
import { SqlState, sqlStateOf } from '../../src/platform/database/database.js';
import { createPostgresDatabase, type PostgresDatabaseOptions } from '../../src/platform/database/postgres-database.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * What only a real PostgreSQL can show: row locks between concurrent transactions, the
 * bounded pool, the statement and connect timeouts, and how failed transactions give
 * their connection back. (PGlite is a single connection, so none of this applies to it.)
 */

type PostgresConfig = Extract<DatabaseConfig, { kind: 'postgres' }>;

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Resolves once `count` callers have arrived. */
function barrier(count: number): () => Promise<void> {
  let arrived = 0;
  const all = deferred();
  return () => {
    arrived += 1;
    if (arrived === count) all.resolve();
    return all.promise;
  };
}

describeWithPostgres('PostgreSQL database (node-postgres pool)', () => {
  let scratch: ScratchDatabase;
  /** A plain client outside the pool under test, to watch the server from the side. */
  let observer: pg.Client;
  const opened: Database[] = [];

  function open(overrides: Partial<PostgresConfig> = {}, options: PostgresDatabaseOptions = {}): Database {
    const database = createPostgresDatabase(
      {
        kind: 'postgres',
        url: scratch.url,
        poolMax: 5,
        connectTimeoutMs: 3000,
        statementTimeoutMs: 5000,
        idleTimeoutMs: 10000,
        ssl: 'disable',
        sslCaPath: undefined,
        ...overrides,
      },
      options,
    );
    opened.push(database);
    return database;
  }

  /** The pool's connections as the server sees them. */
  async function bulwarkBackends(): Promise<{ pid: number; state: string | null }[]> {
    const { rows } = await observer.query<{ pid: number; state: string | null }>(
      `SELECT pid, state FROM pg_stat_activity WHERE datname = $1 AND application_name = 'bulwark' ORDER BY pid`,
      [scratch.name],
    );
    return rows;
  }

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    observer = new pg.Client({ connectionString: scratch.url, application_name: 'bulwark-test-observer' });
    await observer.connect();
  });

  afterAll(async () => {
    await observer?.end();
    await scratch?.drop();
  });

  beforeEach(async () => {
    await observer.query(`
      DROP TABLE IF EXISTS counters;
      DROP TABLE IF EXISTS events;
      CREATE TABLE counters (id integer PRIMARY KEY, value bigint NOT NULL);
      INSERT INTO counters (id, value) VALUES (1, 0);
      CREATE TABLE events (id integer PRIMARY KEY);
    `);
  });

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((database) => database.close()));
  });

  async function counterValue(): Promise<number> {
    const { rows } = await observer.query<{ value: string }>('SELECT value FROM counters WHERE id = 1');
    return Number(rows[0]?.value);
  }

  it('serialises read-modify-write increments that lock the row with SELECT ... FOR UPDATE', async () => {
    const database = open({ poolMax: 5 });

    await Promise.all(
      Array.from({ length: 20 }, () =>
        database.transaction(async (tx) => {
          const { rows } = await tx.query<{ value: number }>('SELECT value FROM counters WHERE id = 1 FOR UPDATE');
          // Widen the window between the read and the write.
          await tx.query('SELECT pg_sleep(0.005)');
          await tx.query('UPDATE counters SET value = $1 WHERE id = 1', [(rows[0]?.value ?? Number.NaN) + 1]);
        }),
      ),
    );

    expect(await counterValue()).toBe(20);
  });

  it('(control) loses an update when the same read-modify-write runs without FOR UPDATE', async () => {
    const database = open({ poolMax: 2 });
    const bothHaveRead = barrier(2);

    await Promise.all(
      Array.from({ length: 2 }, () =>
        database.transaction(async (tx) => {
          const { rows } = await tx.query<{ value: number }>('SELECT value FROM counters WHERE id = 1');
          await bothHaveRead(); // both read 0 before either writes
          await tx.query('UPDATE counters SET value = $1 WHERE id = 1', [(rows[0]?.value ?? Number.NaN) + 1]);
        }),
      ),
    );

    expect(await counterValue()).toBe(1);
  });

  it('makes a second SELECT ... FOR UPDATE wait for the lock holder, then read its write', async () => {
    const database = open({ poolMax: 2 });
    const firstHasLock = deferred();
    const firstMayWrite = deferred();
    const secondPid = deferred<number>();

    const first = database.transaction(async (tx) => {
      const { rows } = await tx.query<{ value: number }>('SELECT value FROM counters WHERE id = 1 FOR UPDATE');
      firstHasLock.resolve();
      await firstMayWrite.promise;
      await tx.query('UPDATE counters SET value = $1 WHERE id = 1', [(rows[0]?.value ?? Number.NaN) + 1]);
    });
    await firstHasLock.promise;

    const second = database.transaction(async (tx) => {
      const pid = await tx.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      secondPid.resolve(pid.rows[0]?.pid ?? -1);
      const { rows } = await tx.query<{ value: number }>('SELECT value FROM counters WHERE id = 1 FOR UPDATE');
      return rows[0]?.value;
    });

    const pid = await secondPid.promise;
    await vi.waitFor(
      async () => {
        const { rows } = await observer.query<{ wait_event_type: string | null }>(
          'SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1',
          [pid],
        );
        expect(rows[0]?.wait_event_type).toBe('Lock');
      },
      { timeout: 5000, interval: 20 },
    );

    firstMayWrite.resolve();
    await first;
    expect(await second).toBe(1);
  });

  it('never opens more connections than poolMax', async () => {
    const database = open({ poolMax: 2 });
    let finished = false;
    const samples: number[] = [];

    const sampling = (async () => {
      while (!finished) {
        samples.push((await bulwarkBackends()).length);
      }
    })();
    const queries = Promise.all(
      Array.from({ length: 6 }, (_, index) =>
        database.query<{ index: number }>('SELECT pg_sleep(0.3), $1::integer AS index', [index]),
      ),
    ).finally(() => {
      finished = true;
    });

    const results = await queries;
    await sampling;

    expect(results.map((result) => result.rows[0]?.index)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(samples.length).toBeGreaterThan(0);
    expect(Math.max(...samples)).toBe(2);
  });

  it('cancels a statement that runs past statementTimeoutMs with SQLSTATE 57014', async () => {
    const database = open({ statementTimeoutMs: 200 });

    const error = await rejectionOf(database.query('SELECT pg_sleep(2)'));
    expect(sqlStateOf(error)).toBe('57014');
    expect(sqlStateOf(error)).toBe(SqlState.queryCanceled);

    // Inside a transaction too, and the pool carries on afterwards.
    const inTransaction = await rejectionOf(database.transaction((tx) => tx.query('SELECT pg_sleep(2)')));
    expect(sqlStateOf(inTransaction)).toBe(SqlState.queryCanceled);
    expect((await database.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('gives up connecting after connectTimeoutMs to a server that never answers', { timeout: 10_000 }, async () => {
    const sockets = new Set<net.Socket>();
    const silent = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const database = open({ url: `postgres://postgres@127.0.0.1:${port}/nowhere`, connectTimeoutMs: 300 });

      const error = await rejectionOf(database.query('SELECT 1'));
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/timeout|Connection terminated/i);
      expect(sockets.size).toBeGreaterThanOrEqual(1); // it did reach our server: not a refused connection

      await expect(database.transaction((tx) => tx.query('SELECT 1'))).rejects.toThrow(/timeout|Connection terminated/i);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('returns the connection of a failed transaction to the pool, rolled back and usable', async () => {
    // A leaked client would exhaust this pool and the later queries would time out waiting.
    const database = open({ poolMax: 2, connectTimeoutMs: 1000 });
    const failure = new Error('work failed');

    for (let attempt = 0; attempt < 3; attempt += 1) {
      // The work throws after a successful write...
      expect(
        await rejectionOf(
          database.transaction(async (tx) => {
            await tx.query('INSERT INTO events (id) VALUES ($1)', [100 + attempt]);
            throw failure;
          }),
        ),
      ).toBe(failure);
      // ...or a statement fails, leaving the transaction aborted.
      expect(
        sqlStateOf(
          await rejectionOf(
            database.transaction(async (tx) => {
              await tx.query('INSERT INTO events (id) VALUES ($1)', [200 + attempt]);
              await tx.query('INSERT INTO events (id) VALUES ($1)', [200 + attempt]);
            }),
          ),
        ),
      ).toBe(SqlState.uniqueViolation);
    }

    // Both pooled connections are usable and outside any transaction: an autocommit write
    // through them is visible at once to another session.
    await Promise.all([1, 2].map((id) => database.query('INSERT INTO events (id) VALUES ($1)', [id])));
    const visible = await observer.query<{ id: number }>('SELECT id FROM events ORDER BY id');
    expect(visible.rows).toEqual([{ id: 1 }, { id: 2 }]);

    const backends = await bulwarkBackends();
    expect(backends.length).toBeGreaterThan(0);
    expect(backends.length).toBeLessThanOrEqual(2);
    for (const backend of backends) expect(backend.state).toBe('idle');
  });

  /**
   * Runs `scenario` with the worker's uncaughtException listeners swapped for one that
   * records, so a crash-worthy error is reported by the test that caused it instead of
   * failing the whole run. Returns what was recorded.
   */
  async function capturingUncaughtExceptions(scenario: () => Promise<void>): Promise<unknown[]> {
    const captured: unknown[] = [];
    const record = (error: unknown) => captured.push(error);
    const previous = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', record);
    try {
      await scenario();
    } finally {
      process.removeListener('uncaughtException', record);
      for (const listener of previous) process.on('uncaughtException', listener);
    }
    return captured;
  }

  /** A transaction whose own connection is killed by the server in the middle of its work. */
  async function transactionWhoseConnectionDies(database: Database): Promise<unknown> {
    return rejectionOf(
      database.transaction(async (tx) => {
        await tx.query('INSERT INTO events (id) VALUES (1)');
        await tx.query('SELECT pg_terminate_backend(pg_backend_pid())');
      }),
    );
  }

  it('discards a connection that died inside a transaction and carries on with a new one', async () => {
    const database = open({ poolMax: 1, connectTimeoutMs: 1000 });
    const { rows } = await database.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const firstPid = rows[0]?.pid;

    await capturingUncaughtExceptions(async () => {
      const error = await transactionWhoseConnectionDies(database);
      expect(sqlStateOf(error)).toBe('57P01'); // admin_shutdown
    });

    const after = await database.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(after.rows[0]?.pid).not.toBe(firstPid);
    expect((await observer.query('SELECT id FROM events')).rows).toEqual([]);
  });

  // Regression: pg-pool removes its idle 'error' listener on checkout, so without our own
  // listener a server ending the connection mid-transaction (restart, failover,
  // pg_terminate_backend, idle_in_transaction_session_timeout) was an uncaught exception.
  it('a connection dying inside a transaction does not raise an uncaught exception', async () => {
    const database = open({ poolMax: 1, connectTimeoutMs: 1000 });

    const uncaught = await capturingUncaughtExceptions(async () => {
      await transactionWhoseConnectionDies(database);
    });

    expect(uncaught).toEqual([]);
  });

  it('reports an idle connection lost by the server to onPoolError, and replaces it', async () => {
    const poolErrors: Error[] = [];
    const database = open({ poolMax: 1 }, { onPoolError: (error) => poolErrors.push(error) });
    const { rows } = await database.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const pid = rows[0]?.pid;

    await observer.query('SELECT pg_terminate_backend($1)', [pid]);

    await vi.waitFor(() => expect(poolErrors).toHaveLength(1), { timeout: 5000, interval: 20 });
    expect(sqlStateOf(poolErrors[0])).toBe('57P01'); // admin_shutdown
    const after = await database.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    expect(after.rows[0]?.pid).not.toBe(pid);
  });
});
