import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

export const MIGRATIONS_DIRECTORY = fileURLToPath(new URL('./migrations/', import.meta.url));

/** A fixed key for pg_advisory_xact_lock: every instance migrating takes the same lock. */
const MIGRATION_LOCK_KEY = 0x42_75_6c_77; // "Bulw"

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export function loadMigrations(directory: string = MIGRATIONS_DIRECTORY): Migration[] {
  const migrations = readdirSync(directory)
    .filter((file) => file.endsWith('.sql'))
    .map((file) => {
      const match = FILE_PATTERN.exec(file);
      if (!match?.[1] || !match[2]) throw new Error(`Migration file ${file} must be named NNNN_name.sql`);
      const sql = readFileSync(`${directory}/${file}`, 'utf8');
      return {
        version: Number(match[1]),
        name: match[2],
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    })
    .sort((a, b) => a.version - b.version);
  migrations.forEach((migration, index) => {
    if (migration.version !== index + 1) {
      throw new Error(`Migrations must be numbered 1..n without gaps; found ${migration.version} at position ${index + 1}`);
    }
  });
  return migrations;
}

export interface MigrationReport {
  /** Versions this call applied; empty when another instance (or an earlier start) already had. */
  readonly applied: readonly number[];
  readonly current: number;
}

/**
 * Applies pending migrations forward only, all in one transaction under an advisory lock,
 * so instances starting together wait for each other and each migration runs once. An
 * applied migration whose file has changed stops start-up: history is never rewritten.
 */
export async function migrate(database: Database, migrations: readonly Migration[] = loadMigrations()): Promise<MigrationReport> {
  return database.transaction(async (tx) => {
    // Neither a large migration nor waiting for another instance's migration may be cut
    // by the pool's statement timeout, so lift it before taking the lock.
    await tx.query('SET LOCAL statement_timeout = 0');
    // Migrate as the connecting (owner) role, even on a connection that switched to the
    // application role.
    await tx.query('SET LOCAL ROLE NONE');
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await tx.query<{ version: number; checksum: string; name: string }>(
      'SELECT version, checksum, name FROM schema_migrations ORDER BY version',
    );
    const known = new Map(rows.map((row) => [row.version, row]));
    for (const row of rows) {
      const migration = migrations.find((candidate) => candidate.version === row.version);
      if (!migration) {
        throw new Error(`The database has migration ${row.version} (${row.name}) that this version of the code does not know; refusing to run older code against a newer schema`);
      }
      if (migration.checksum !== row.checksum) {
        throw new Error(`Migration ${row.version} (${row.name}) was changed after it was applied; add a new migration instead`);
      }
    }
    const applied: number[] = [];
    for (const migration of migrations) {
      if (known.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        migration.checksum,
      ]);
      applied.push(migration.version);
    }
    return { applied, current: migrations.at(-1)?.version ?? 0 };
  });
}
