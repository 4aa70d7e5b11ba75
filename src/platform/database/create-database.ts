import type { Config } from '../../config/config.js';
import type { Database } from './database.js';
import { createPgliteDatabase } from './pglite-database.js';
import { createPostgresDatabase } from './postgres-database.js';

export async function createDatabase(
  config: Config['database'],
  onPoolError: (error: Error) => void = () => undefined,
): Promise<Database> {
  return config.kind === 'postgres'
    ? createPostgresDatabase(config, { onPoolError })
    : createPgliteDatabase(config.dataDir);
}
