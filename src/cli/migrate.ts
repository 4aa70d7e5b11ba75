import { loadCliConfig } from './cli-config.js';
import { createDatabase } from '../platform/database/create-database.js';
import { migrate } from '../platform/database/migrate.js';

/** `npm run migrate`: applies pending migrations (under the same advisory lock as start-up) and exits. */
async function main(): Promise<void> {
  const config = loadCliConfig(1);
  if (!config) return;
  const database = await createDatabase(config.database);
  try {
    const report = await migrate(database);
    process.stdout.write(
      report.applied.length > 0
        ? `Applied migrations ${report.applied.join(', ')}; schema is at version ${report.current}\n`
        : `Nothing to apply; schema is at version ${report.current}\n`,
    );
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`Migration failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
