import { chmodSync, renameSync, rmSync, statSync } from 'node:fs';
import type { Config } from '../../config/config.js';
import { APPLICATION_ROLE } from '../../platform/database/access.js';
import { withOwnerDatabase } from '../cli-database.js';
import { CommandFailure, type CliIo, type Progress } from '../cli-io.js';
import { ExternalCommandError, runExternalCommand } from '../external-command.js';
import { backupSource, backupTarget, partialPath } from './backup-files.js';
import { publicTables, summariseDatabase, type DatabaseSummary } from './database-summary.js';
import { postgresConnection } from './postgres-connection.js';

type PostgresConfig = Config & { readonly database: Extract<Config['database'], { kind: 'postgres' }> };

export interface BackupOptions {
  readonly force: boolean;
  readonly progress: Progress;
}

export interface PostgresBackupResult {
  readonly file: string;
  readonly bytes: number;
  readonly tables: number;
}

export interface RestoreResult {
  readonly file: string;
  readonly summary: DatabaseSummary;
  /** PGlite: where the data directory that was replaced (with --force) was kept. */
  readonly replacedDirectory?: string;
}

// pg_dump --verbose / pg_restore --verbose name each table as they reach its data.
const DUMPING = /dumping contents of table "([^"]+)"/;
const RESTORING = /processing data for table "([^"]+)"/;

/** Wraps a failed pg_dump / pg_restore into a failure that carries the tool's last words (not the password: it is never an argument). */
function externalFailure(error: unknown): never {
  if (error instanceof ExternalCommandError) {
    const detail = error.stderr
      .split('\n')
      .filter((line) => /error|fatal|could not/i.test(line))
      .slice(-3)
      .join(' / ');
    throw new CommandFailure('EXTERNAL_COMMAND', detail ? `${error.message}: ${detail}` : error.message);
  }
  throw error;
}

/**
 * `bulwark backup` on PostgreSQL: pg_dump in its custom format (one consistent snapshot,
 * schema, data, sequences, triggers and grants) into a 0600 file, written beside the
 * target first and renamed into place only once complete.
 */
export async function backupPostgres(config: PostgresConfig, io: CliIo, file: string, options: BackupOptions): Promise<PostgresBackupResult> {
  const target = backupTarget(file, options.force);
  const connection = postgresConnection(config.database);
  const total = (await withOwnerDatabase(config, io, publicTables)).length;
  const partial = partialPath(target);
  let dumped = 0;
  options.progress.update('starting pg_dump', 0, total);
  try {
    await runExternalCommand(
      'pg_dump',
      ['--format=custom', `--file=${partial}`, '--lock-wait-timeout=30000', '--verbose', ...connection.args],
      {
        binDir: config.externalCommands.pgBinDir,
        env: { PATH: config.externalCommands.searchPath, ...connection.env },
        onStderrLine: (line) => {
          const table = DUMPING.exec(line)?.[1];
          if (table !== undefined) options.progress.update(table, (dumped += 1), total);
        },
      },
    ).catch(externalFailure);
    chmodSync(partial, 0o600);
    renameSync(partial, target);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  } finally {
    options.progress.done();
  }
  return { file: target, bytes: statSync(target).size, tables: total };
}

/**
 * `bulwark restore` on PostgreSQL: pg_restore in one transaction (a failure leaves the
 * database as it was), objects owned by the restoring role, the grants to the
 * application role kept. An empty database only, unless --force (then the backup's
 * objects replace the existing ones: --clean --if-exists). Afterwards the audit chain
 * and the credit ledger are verified.
 */
export async function restorePostgres(config: PostgresConfig, io: CliIo, file: string, options: BackupOptions): Promise<RestoreResult> {
  const source = backupSource(file, 'postgres');
  const connection = postgresConnection(config.database);
  const run = (args: readonly string[], onStderrLine?: (line: string) => void) =>
    runExternalCommand('pg_restore', args, {
      binDir: config.externalCommands.pgBinDir,
      env: { PATH: config.externalCommands.searchPath, ...connection.env },
      ...(onStderrLine ? { onStderrLine } : {}),
    }).catch(externalFailure);

  // Reading the table of contents also proves the archive is whole before anything changes.
  const contents = await run(['--list', source]);
  const total = contents.stdout.split('\n').filter((line) => / TABLE DATA public /.test(line)).length;

  await withOwnerDatabase(config, io, async (database) => {
    const existing = await publicTables(database);
    if (existing.length > 0 && !options.force) {
      throw new CommandFailure('NOT_EMPTY', `The database already has ${existing.length} tables; restore replaces its contents only with --force`);
    }
    // Roles belong to the cluster, not the backup: the grants in the archive need the
    // application role to exist (as migration 0002 creates it).
    await database.exec(`DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APPLICATION_ROLE}') THEN
    CREATE ROLE ${APPLICATION_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
  END IF;
END
$$`);
  });

  let restored = 0;
  options.progress.update('starting pg_restore', 0, total);
  try {
    await run(
      [...connection.args, '--no-owner', '--single-transaction', '--exit-on-error', '--verbose', ...(options.force ? ['--clean', '--if-exists'] : []), source],
      (line) => {
        const table = RESTORING.exec(line)?.[1];
        if (table !== undefined) options.progress.update(table, (restored += 1), total);
      },
    );
  } finally {
    options.progress.done();
  }
  options.progress.update('verifying the audit chain and the credit ledger');
  const summary = await withOwnerDatabase(config, io, summariseDatabase).finally(() => options.progress.done());
  return { file: source, summary };
}
