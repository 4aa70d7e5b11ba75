import type { Config } from '../config/config.js';
import { openMigratedDatabase } from '../dependencies.js';
import { createDatabase } from '../platform/database/create-database.js';
import type { Database } from '../platform/database/database.js';
import type { CliIo } from './cli-io.js';

/**
 * The database for commands that change data through the services: migrated like at
 * start-up, then working as the application role, so row-level security and the audit
 * trail's rules apply to the command line exactly as to the service. On the embedded
 * database only one process may have it open: stop the server first.
 */
export async function withServiceDatabase<T>(config: Config, io: CliIo, work: (database: Database) => Promise<T>): Promise<T> {
  const { database } = await openMigratedDatabase(config, undefined, (error) => io.stderr.write(`database pool error: ${error.message}\n`));
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

/** The database as the connecting (owner) role, unmigrated: for read-only checks, like `npm run audit:verify`. */
export async function withOwnerDatabase<T>(config: Config, io: CliIo, work: (database: Database) => Promise<T>): Promise<T> {
  const database = await createDatabase(config.database, (error) => io.stderr.write(`database pool error: ${error.message}\n`));
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}
