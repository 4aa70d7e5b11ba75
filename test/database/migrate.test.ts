import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import type { Database } from '../../src/platform/database/database.js';
import { SqlState, sqlStateOf } from '../../src/platform/database/database.js';
import { loadMigrations, migrate, type Migration } from '../../src/platform/database/migrate.js';
import { createPgliteDatabase } from '../../src/platform/database/pglite-database.js';
import { createPostgresDatabase } from '../../src/platform/database/postgres-database.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

type PostgresConfig = Extract<DatabaseConfig, { kind: 'postgres' }>;

/** The key migrate() takes with pg_advisory_xact_lock (src/platform/database/migrate.ts). */
const MIGRATION_LOCK_KEY = 0x42_75_6c_77;

function migration(version: number, name: string, sql: string): Migration {
  return { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
}

function oneToN(n: number): number[] {
  return Array.from({ length: n }, (_, index) => index + 1);
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

async function tableExists(database: Database, name: string): Promise<boolean> {
  const { rows } = await database.query<{ name: string | null }>('SELECT to_regclass($1)::text AS name', [name]);
  return rows[0]?.name !== null && rows[0]?.name !== undefined;
}

async function recordedVersions(database: Database): Promise<number[]> {
  if (!(await tableExists(database, 'schema_migrations'))) return [];
  const { rows } = await database.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((row) => row.version);
}

describe('loadMigrations', () => {
  const folders: string[] = [];

  function folderWith(files: Record<string, string>): string {
    const folder = mkdtempSync(path.join(tmpdir(), 'bulwark-migrations-'));
    folders.push(folder);
    for (const [name, sql] of Object.entries(files)) writeFileSync(path.join(folder, name), sql);
    return folder;
  }

  afterAll(() => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });

  it("loads the service's own migrations numbered 1..n", () => {
    const migrations = loadMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    expect(migrations.map((m) => m.version)).toEqual(oneToN(migrations.length));
    for (const m of migrations) expect(m.checksum).toBe(createHash('sha256').update(m.sql).digest('hex'));
  });

  it('loads a folder in version order, ignores non-.sql files and checksums each file', () => {
    const folder = folderWith({
      '0002_second.sql': 'CREATE TABLE b (id integer);',
      '0001_first.sql': 'CREATE TABLE a (id integer);',
      'README.md': 'not a migration',
    });

    expect(loadMigrations(folder)).toEqual([
      migration(1, 'first', 'CREATE TABLE a (id integer);'),
      migration(2, 'second', 'CREATE TABLE b (id integer);'),
    ]);
  });

  it('refuses a gap in the numbering', () => {
    const folder = folderWith({ '0001_a.sql': 'SELECT 1;', '0003_c.sql': 'SELECT 3;' });
    expect(() => loadMigrations(folder)).toThrow(/without gaps/);
  });

  it('refuses numbering that does not start at 1', () => {
    const folder = folderWith({ '0002_b.sql': 'SELECT 2;' });
    expect(() => loadMigrations(folder)).toThrow(/without gaps/);
  });

  it('refuses two migrations with the same number', () => {
    const folder = folderWith({ '0001_a.sql': 'SELECT 1;', '0001_b.sql': 'SELECT 1;' });
    expect(() => loadMigrations(folder)).toThrow(/without gaps/);
  });

  it.each(['1_short.sql', '0001-dash.sql', '0001_Upper.sql', '0001_.sql', 'init.sql'])('refuses a badly named file: %s', (name) => {
    const folder = folderWith({ '0001_ok.sql': 'SELECT 1;', [name]: 'SELECT 2;' });
    expect(() => loadMigrations(folder)).toThrow(/must be named NNNN_name\.sql/);
  });
});

describe('migrate on PGlite', () => {
  const migrations = loadMigrations();
  const n = migrations.length;
  let database: Database;

  beforeAll(async () => {
    database = await createPgliteDatabase('memory://');
  });

  afterAll(async () => {
    await database?.close();
  });

  beforeEach(async () => {
    // An empty database for every test, without paying for a new PGlite each time.
    await database.exec('DROP SCHEMA public CASCADE; CREATE SCHEMA public;');
  });

  it('applies every migration to an empty database and records them', async () => {
    expect(await tableExists(database, 'scheduled_job_runs')).toBe(false);

    const report = await migrate(database);

    expect(report).toEqual({ applied: oneToN(n), current: n });
    expect(await tableExists(database, 'scheduled_job_runs')).toBe(true);
    const { rows } = await database.query<{ version: number; name: string; checksum: string }>(
      'SELECT version, name, checksum FROM schema_migrations ORDER BY version',
    );
    expect(rows).toEqual(migrations.map(({ version, name, checksum }) => ({ version, name, checksum })));
  });

  it('applies nothing the second time and reports the same current version', async () => {
    await migrate(database);

    const again = await migrate(database);

    expect(again).toEqual({ applied: [], current: n });
    expect(await recordedVersions(database)).toEqual(oneToN(n));
  });

  it('applies only the migrations that are new', async () => {
    const first = migration(1, 'first', 'CREATE TABLE first_table (id integer);');
    const second = migration(2, 'second', 'CREATE TABLE second_table (id integer);');
    expect(await migrate(database, [first])).toEqual({ applied: [1], current: 1 });

    expect(await migrate(database, [first, second])).toEqual({ applied: [2], current: 2 });
    expect(await tableExists(database, 'second_table')).toBe(true);
  });

  it('refuses to start when an applied migration was changed', async () => {
    await migrate(database);
    await database.query("UPDATE schema_migrations SET checksum = 'edited' WHERE version = $1", [n]);

    await expect(migrate(database)).rejects.toThrow(/was changed/);
  });

  it('refuses to start when the file of an applied migration was edited', async () => {
    const original = migration(1, 'first', 'CREATE TABLE first_table (id integer);');
    await migrate(database, [original]);

    const edited = migration(1, 'first', 'CREATE TABLE first_table (id integer, extra text);');
    await expect(migrate(database, [edited])).rejects.toThrow(/Migration 1 \(first\) was changed/);
  });

  it('refuses to run older code against a database with a migration it does not know', async () => {
    await migrate(database);
    await database.query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, 'from_the_future', 'x')", [n + 1]);

    await expect(migrate(database)).rejects.toThrow(/does not know/);
  });

  it('applies nothing when one migration of an empty database fails (all or nothing)', async () => {
    const broken = [
      migration(1, 'first', 'CREATE TABLE first_table (id integer);'),
      migration(2, 'broken', 'CREATE TABLE broken_table (id integer'),
    ];

    const error = await rejectionOf(migrate(database, broken));

    expect(error).toBeInstanceOf(Error);
    expect(await tableExists(database, 'first_table')).toBe(false);
    expect(await recordedVersions(database)).toEqual([]);
  });

  it('keeps earlier migrations and applies none of the new ones when a later one fails', async () => {
    const first = migration(1, 'first', 'CREATE TABLE first_table (id integer);');
    await migrate(database, [first]);
    const second = migration(2, 'second', 'CREATE TABLE second_table (id integer); INSERT INTO first_table VALUES (1);');
    const broken = migration(3, 'broken', 'ALTER TABLE no_such_table ADD COLUMN x integer;');

    await expect(migrate(database, [first, second, broken])).rejects.toThrow();

    expect(await tableExists(database, 'second_table')).toBe(false);
    expect((await database.query('SELECT id FROM first_table')).rows).toEqual([]);
    expect(await recordedVersions(database)).toEqual([1]);

    // Once the broken migration is fixed, everything pending is applied.
    const fixed = migration(3, 'broken', 'ALTER TABLE first_table ADD COLUMN x integer;');
    expect(await migrate(database, [first, second, fixed])).toEqual({ applied: [2, 3], current: 3 });
  });
});

describeWithPostgres('migrate on PostgreSQL', () => {
  const migrations = loadMigrations();
  const n = migrations.length;
  const scratches: ScratchDatabase[] = [];
  const opened: Database[] = [];

  async function freshDatabaseUrl(): Promise<{ url: string; name: string }> {
    const scratch = await createScratchDatabase();
    scratches.push(scratch);
    return scratch;
  }

  function open(url: string, overrides: Partial<PostgresConfig> = {}): Database {
    const database = createPostgresDatabase({
      kind: 'postgres',
      url,
      poolMax: 2,
      connectTimeoutMs: 3000,
      statementTimeoutMs: 5000,
      idleTimeoutMs: 10000,
      ssl: 'disable',
      sslCaPath: undefined,
      ...overrides,
    });
    opened.push(database);
    return database;
  }

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((database) => database.close()));
    await Promise.all(scratches.splice(0).map((scratch) => scratch.drop()));
  });

  it('lets five instances migrate one fresh database at the same moment, each migration applied once', async () => {
    const { url } = await freshDatabaseUrl();
    const instances = Array.from({ length: 5 }, () => open(url));
    // Connect every pool first so that the migrate() calls really start together.
    await Promise.all(instances.map((instance) => instance.query('SELECT 1')));

    const reports = await Promise.all(instances.map((instance) => migrate(instance)));

    const applied = reports.flatMap((report) => report.applied);
    expect([...applied].sort((a, b) => a - b)).toEqual(oneToN(n)); // each version once, none twice
    for (const report of reports) expect(report.current).toBe(n);
    const { rows } = await instances[0]!.query<{ count: number }>('SELECT count(*) AS count FROM schema_migrations');
    expect(rows).toEqual([{ count: n }]);
    expect(await tableExists(instances[0]!, 'scheduled_job_runs')).toBe(true);
  });

  it('lets several instances apply a longer custom history concurrently, each migration once', async () => {
    const { url } = await freshDatabaseUrl();
    const history = Array.from({ length: 4 }, (_, index) =>
      migration(index + 1, `step_${index + 1}`, `SELECT pg_sleep(0.02); CREATE TABLE step_${index + 1} (id integer);`),
    );
    const instances = Array.from({ length: 5 }, () => open(url));
    await Promise.all(instances.map((instance) => instance.query('SELECT 1')));

    const reports = await Promise.all(instances.map((instance) => migrate(instance, history)));

    const applied = reports.flatMap((report) => report.applied).sort((a, b) => a - b);
    expect(applied).toEqual([1, 2, 3, 4]);
    expect(reports.filter((report) => report.applied.length > 0)).toHaveLength(1); // one transaction applies all
    expect(await recordedVersions(instances[0]!)).toEqual([1, 2, 3, 4]);
  });

  it('is not cut by the statement timeout while it runs a long migration', async () => {
    const { url } = await freshDatabaseUrl();
    const database = open(url, { statementTimeoutMs: 200 });
    const slow = migration(1, 'slow', 'SELECT pg_sleep(0.4); CREATE TABLE slow_table (id integer);');

    // Control: the same statement outside migrate() is cancelled.
    expect(sqlStateOf(await rejectionOf(database.exec('SELECT pg_sleep(0.4)')))).toBe(SqlState.queryCanceled);

    expect(await migrate(database, [slow])).toEqual({ applied: [1], current: 1 });
    expect(await tableExists(database, 'slow_table')).toBe(true);
  });

  // Regression: with the lock taken before `SET LOCAL statement_timeout = 0`, an instance
  // waiting longer than DATABASE_STATEMENT_TIMEOUT_MS for another's migration was cancelled (57014).
  it('an instance waiting for another instance’s long migration is not cut by the statement timeout', async () => {
    const { url } = await freshDatabaseUrl();
    const waiting = open(url, { statementTimeoutMs: 200 });
    // Another instance holds the migration lock (as a long migration would) well past 200 ms.
    const holder = new pg.Client({ connectionString: url, application_name: 'bulwark-test-lock-holder' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);

      const report = migrate(waiting);
      const outcome = report.then(
        () => 'applied',
        (error: unknown) => error,
      );
      // Wait until migrate() really is queued behind the lock, then hold it a while longer.
      await vi.waitFor(
        async () => {
          const { rows } = await holder.query<{ waiting: string }>(
            `SELECT count(*) AS waiting FROM pg_locks
              WHERE locktype = 'advisory' AND NOT granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
          );
          expect(Number(rows[0]?.waiting)).toBe(1);
        },
        { timeout: 5000, interval: 20 },
      );
      await new Promise((resolve) => setTimeout(resolve, 500));
      await holder.query('COMMIT');

      expect(await outcome).toBe('applied');
      expect(await report).toEqual({ applied: oneToN(n), current: n });
    } finally {
      await holder.end();
    }
  });
});
