import { createDatabase } from '../platform/database/create-database.js';
import { runCreditsVerify } from '../modules/credits/credits-verify-command.js';
import { loadCliConfig } from './cli-config.js';

/**
 * `npm run credits:verify [-- --json]`: checks the credit ledger identity for every
 * account (granted = balance + held + spent + written off, and the ledger agrees with the
 * tables). Exit code 0 when it holds, 1 when an account does not reconcile, 2 when it
 * could not run. Read-only; connects as the migrating (owner) role like `npm run migrate`.
 */
async function main(): Promise<void> {
  const config = loadCliConfig(2);
  if (!config) return;
  const database = await createDatabase(config.database);
  try {
    process.exitCode = await runCreditsVerify(database, { stdout: process.stdout, json: process.argv.includes('--json') });
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`Credit ledger verification failed to run: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
