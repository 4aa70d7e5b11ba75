import type { Config } from '../../config/config.js';
import { systemClock } from '../../platform/clock.js';
import { EXIT_FAILURE, EXIT_OK, UsageError, type CliCommand } from '../cli-io.js';
import { summaryLines } from '../backup/database-summary.js';
import { backupPglite, restorePglite } from '../backup/pglite-backup.js';
import { backupPostgres, restorePostgres } from '../backup/postgres-backup.js';

type PostgresConfig = Config & { readonly database: Extract<Config['database'], { kind: 'postgres' }> };
type PgliteConfig = Config & { readonly database: Extract<Config['database'], { kind: 'pglite' }> };

function isPostgres(config: Config): config is PostgresConfig {
  return config.database.kind === 'postgres';
}

function fileArgument(positionals: readonly string[], values: Readonly<Record<string, unknown>>, option: string): string {
  const fromOption = values[option] as string | undefined;
  const file = fromOption ?? positionals[0];
  if (fromOption !== undefined && positionals.length > 0) throw new UsageError(`give the file either as an argument or as --${option}, not both`);
  if (file === undefined || file.length === 0) throw new UsageError('the backup file is missing');
  if (/[\0\n\r]/.test(file)) throw new UsageError('the backup file name contains a control character');
  return file;
}

function megabytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** `bulwark backup <file>` (OPS-6): pg_dump on PostgreSQL, PGlite's own dump on the embedded database. */
export const backup: CliCommand = {
  name: 'backup',
  summary: 'Back up the database into a file (PostgreSQL: pg_dump custom format; embedded: PGlite dump)',
  usage: '<file> [--force]   (or --out <file>)',
  options: { out: { type: 'string' }, force: { type: 'boolean' } },
  positionals: [0, 1],
  async run({ values, positionals, config, io, progress }) {
    const file = fileArgument(positionals, values, 'out');
    const force = values.force === true;
    const startedAtMs = performance.now();
    const seconds = () => ((performance.now() - startedAtMs) / 1000).toFixed(1);
    if (isPostgres(config)) {
      const result = await backupPostgres(config, io, file, { force, progress });
      return {
        data: { engine: 'postgres', ...result },
        lines: [`Backed up ${result.tables} tables of PostgreSQL to ${result.file} (${megabytes(result.bytes)}, ${seconds()} s)`],
      };
    }
    const result = await backupPglite(config as PgliteConfig, io, file, { force, progress });
    return {
      data: { engine: 'pglite', ...result },
      lines: [`Backed up the embedded database to ${result.file} (${megabytes(result.bytes)}, ${seconds()} s)`, ...summaryLines(result.summary)],
    };
  },
};

/**
 * `bulwark restore <file>` (OPS-6): into an empty database (or over one with --force),
 * then verifies the audit chain and the credit ledger; exit 1 when either fails.
 */
export const restore: CliCommand = {
  name: 'restore',
  summary: 'Restore a backup into an empty database (--force replaces a non-empty one), then verify it',
  usage: '<file> [--force]   (or --from <file>)',
  options: { from: { type: 'string' }, force: { type: 'boolean' } },
  positionals: [0, 1],
  async run({ values, positionals, config, io, progress }) {
    const file = fileArgument(positionals, values, 'from');
    const force = values.force === true;
    const startedAtMs = performance.now();
    const result = isPostgres(config)
      ? await restorePostgres(config, io, file, { force, progress })
      : await restorePglite(config as PgliteConfig, io, file, { force, progress, now: systemClock.now() });
    const intact = result.summary.auditChain.valid && result.summary.creditLedger.valid;
    const lines = [
      `Restored ${result.file} into ${isPostgres(config) ? 'PostgreSQL' : 'the embedded database'} (${((performance.now() - startedAtMs) / 1000).toFixed(1)} s)`,
      ...summaryLines(result.summary),
    ];
    if (result.replacedDirectory) lines.push(`The data directory it replaced is kept at ${result.replacedDirectory}`);
    if (!intact) lines.push('The restored data does NOT pass verification: see above.');
    return { data: { engine: config.database.kind, ...result }, lines, exitCode: intact ? EXIT_OK : EXIT_FAILURE };
  },
};
