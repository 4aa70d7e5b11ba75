import type { Database } from '../../platform/database/database.js';
import { verifyCreditLedger } from './credits.verify.js';

export interface CreditsVerifyIo {
  readonly stdout: { write(text: string): unknown };
  readonly json?: boolean;
}

/**
 * `npm run credits:verify`: checks the credit ledger identity for every account and prints
 * the result. Resolves to the exit code: 0 when every account reconciles, 1 otherwise.
 * Amounts only, no personal data; account ids identify what to look at.
 */
export async function runCreditsVerify(database: Database, io: CreditsVerifyIo): Promise<number> {
  const result = await verifyCreditLedger(database);
  if (io.json) {
    io.stdout.write(`${JSON.stringify({ valid: result.valid, checked: result.checked, mismatches: result.mismatches })}\n`);
  } else if (result.valid) {
    io.stdout.write(`Credit ledger reconciles: ${result.checked} accounts checked\n`);
  } else {
    io.stdout.write(`Credit ledger does NOT reconcile for ${result.mismatches.length} of ${result.checked} accounts:\n`);
    for (const mismatch of result.mismatches) {
      io.stdout.write(
        `  ${mismatch.accountId}: ${mismatch.problems.join('; ')} (granted ${mismatch.granted}, remaining ${mismatch.remaining}, ` +
          `held ${mismatch.held}, spent ${mismatch.spent}, written off ${mismatch.writtenOff})\n`,
      );
    }
  }
  return result.valid ? 0 : 1;
}
