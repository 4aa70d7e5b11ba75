import { loadCliConfig } from './cli-config.js';
import { createDatabase } from '../platform/database/create-database.js';
import { runAuditVerify } from '../modules/audit/verify-command.js';

/**
 * `npm run audit:verify [-- --json]`: recomputes the audit hash chain (AUD-2) and prints
 * the result. Exit code 0 when valid, 1 when broken, 2 when it could not verify
 * (configuration, database). Read-only; connects as the migrating (owner) role like
 * `npm run migrate`. On the embedded database, stop the server first (one process at a time).
 */
async function main(): Promise<void> {
  const config = loadCliConfig(2);
  if (!config) return;
  const database = await createDatabase(config.database);
  try {
    process.exitCode = await runAuditVerify(database, { stdout: process.stdout, json: process.argv.includes('--json') });
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`Audit verification failed to run: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
