import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { Config } from '../../config/config.js';
import { openPglite, wrapPglite } from '../../platform/database/pglite-database.js';
import { CommandFailure, type CliIo, type Progress } from '../cli-io.js';
import { backupSource, backupTarget, partialPath } from './backup-files.js';
import { summariseDatabase, type DatabaseSummary } from './database-summary.js';
import type { BackupOptions, RestoreResult } from './postgres-backup.js';

type PgliteConfig = Config & { readonly database: Extract<Config['database'], { kind: 'pglite' }> };

export interface PgliteBackupResult {
  readonly file: string;
  readonly bytes: number;
  readonly summary: DatabaseSummary;
}

/** Redraws an indicator whose work reports no steps (PGlite's dump and load are one call each). */
async function withTicker<T>(progress: Progress, label: string, work: () => Promise<T>): Promise<T> {
  progress.update(label);
  const ticker = progress.enabled ? setInterval(() => progress.update(label), 250) : undefined;
  try {
    return await work();
  } finally {
    clearInterval(ticker);
    progress.done();
  }
}

function isEmptyDirectory(directory: string): boolean {
  return !existsSync(directory) || (statSync(directory).isDirectory() && readdirSync(directory).length === 0);
}

/**
 * `bulwark backup` on the embedded database: PGlite's own dump of its data directory (a
 * gzipped tarball of the whole cluster: exactly what was there), into a 0600 file.
 * The service must be stopped: one process at a time may open the embedded database.
 */
export async function backupPglite(config: PgliteConfig, _io: CliIo, file: string, options: BackupOptions): Promise<PgliteBackupResult> {
  const dataDir = config.database.dataDir;
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    throw new CommandFailure('NOT_FOUND', `There is no embedded database at ${dataDir} (DATA_DIR/pglite)`);
  }
  const target = backupTarget(file, options.force);
  const pglite = await withTicker(options.progress, 'opening the embedded database', () => openPglite(dataDir));
  let summary: DatabaseSummary;
  let dump: Blob;
  try {
    summary = await withTicker(options.progress, 'counting rows, verifying the audit chain', () => summariseDatabase(wrapPglite(pglite)));
    dump = await withTicker(options.progress, 'dumping the embedded database', () => pglite.dumpDataDir('gzip'));
  } finally {
    await pglite.close();
  }
  const partial = partialPath(target);
  try {
    writeFileSync(partial, Buffer.from(await dump.arrayBuffer()), { mode: 0o600, flag: 'wx' });
    renameSync(partial, target);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
  return { file: target, bytes: statSync(target).size, summary };
}

/**
 * `bulwark restore` on the embedded database: the dump is loaded into a new folder
 * beside DATA_DIR/pglite and checked there (it opens, the audit chain and ledger are
 * verified); only then does it take the data directory's place. An existing, non-empty
 * data directory is refused unless --force, and then kept beside it as
 * `pglite.replaced-<time>` rather than deleted.
 */
export async function restorePglite(config: PgliteConfig, _io: CliIo, file: string, options: BackupOptions & { readonly now: Date }): Promise<RestoreResult> {
  const source = backupSource(file, 'pglite');
  const dataDir = config.database.dataDir;
  if (!isEmptyDirectory(dataDir) && !options.force) {
    throw new CommandFailure('NOT_EMPTY', `${dataDir} already holds a database; restore replaces it only with --force`);
  }
  mkdirSync(path.dirname(dataDir), { recursive: true, mode: 0o700 });
  const staging = `${dataDir}.restoring-${randomBytes(4).toString('hex')}`;
  let summary: DatabaseSummary;
  try {
    const dump = new Blob([readFileSync(source)]);
    const pglite: PGlite = await withTicker(options.progress, 'loading the backup', () => openPglite(staging, dump));
    try {
      summary = await withTicker(options.progress, 'verifying the audit chain and the credit ledger', () => summariseDatabase(wrapPglite(pglite)));
    } finally {
      await pglite.close();
    }
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    if (error instanceof CommandFailure) throw error;
    throw new CommandFailure('RESTORE_FAILED', `The backup could not be loaded: ${error instanceof Error ? error.message : String(error)}`);
  }
  let replacedDirectory: string | undefined;
  if (existsSync(dataDir)) {
    if (isEmptyDirectory(dataDir)) {
      rmSync(dataDir, { recursive: true });
    } else {
      replacedDirectory = `${dataDir}.replaced-${options.now.toISOString().replace(/[:.]/g, '-')}`;
      renameSync(dataDir, replacedDirectory);
    }
  }
  renameSync(staging, dataDir);
  return { file: source, summary, ...(replacedDirectory ? { replacedDirectory } : {}) };
}
