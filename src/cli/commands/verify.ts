import { runAuditVerify } from '../../modules/audit/verify-command.js';
import { runCreditsVerify } from '../../modules/credits/credits-verify-command.js';
import type { Database } from '../../platform/database/database.js';
import { EXIT_OK, type CliCommand, type CommandResult } from '../cli-io.js';
import { withOwnerDatabase } from '../cli-database.js';

type VerifyCommand = (database: Database, io: { stdout: { write(text: string): unknown }; json?: boolean }) => Promise<number>;

/**
 * Runs one of the existing verification commands (the same code as `npm run
 * audit:verify` / `npm run credits:verify`) and turns what it prints into a result:
 * its JSON answer for --json, its lines for people; exit 1 when it found a problem.
 */
async function captured(verify: VerifyCommand, database: Database, json: boolean): Promise<CommandResult> {
  const chunks: string[] = [];
  const exitCode = await verify(database, { stdout: { write: (text: string) => chunks.push(text) }, json });
  const text = chunks.join('');
  const lines = text.split('\n').filter((line) => line.length > 0);
  const data = json ? (JSON.parse(text) as Record<string, unknown>) : { output: lines };
  return { data, lines, exitCode: exitCode === EXIT_OK ? EXIT_OK : 1 };
}

/** `bulwark audit verify`: recomputes the hash chain (AUD-2); exit 1 names the first broken entry. */
export const auditVerify: CliCommand = {
  name: 'audit verify',
  summary: 'Verify the audit trail\u2019s hash chain; exit 1 names the first broken entry',
  usage: '',
  options: {},
  positionals: [0, 0],
  run: ({ config, io, values }) => withOwnerDatabase(config, io, (database) => captured(runAuditVerify, database, values.json === true)),
};

/** `bulwark credits verify`: the ledger identity for every account; exit 1 lists those that do not reconcile. */
export const creditsVerify: CliCommand = {
  name: 'credits verify',
  summary: 'Check the credit ledger identity of every account; exit 1 lists those that do not reconcile',
  usage: '',
  options: {},
  positionals: [0, 0],
  run: ({ config, io, values }) => withOwnerDatabase(config, io, (database) => captured(runCreditsVerify, database, values.json === true)),
};
