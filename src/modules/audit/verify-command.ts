import type { Database } from '../../platform/database/database.js';
import { verifyAuditChain, type ChainBreak } from './audit.verify.js';

const EXPLANATIONS: Record<ChainBreak, string> = {
  prev_hash_mismatch: 'it does not follow the entry before it: an entry was removed or replaced before it',
  hash_mismatch: 'its content does not match its hash: it was altered',
  personal_data_mismatch: 'its personal data does not match its digest: it was altered',
  missing_tail: 'the chain head names it but it is gone: entries were removed from the end',
  head_mismatch: 'it disagrees with the chain head: entries were added or altered outside the chain',
};

export interface VerifyCommandIo {
  readonly stdout: { write(text: string): unknown };
  readonly json?: boolean;
}

/**
 * `npm run audit:verify`: verifies the chain and prints the result. Resolves to the exit
 * code: 0 when the chain is valid, 1 when it is broken.
 */
export async function runAuditVerify(database: Database, io: VerifyCommandIo): Promise<number> {
  const result = await verifyAuditChain(database);
  if (io.json) {
    io.stdout.write(
      `${JSON.stringify(result.valid ? { valid: true, checked: result.checked } : { valid: false, brokenAt: result.brokenAt, reason: result.reason })}\n`,
    );
  } else if (result.valid) {
    io.stdout.write(`Audit chain valid: ${result.checked} entries checked\n`);
  } else {
    io.stdout.write(
      `Audit chain BROKEN at entry ${result.brokenAt}: ${EXPLANATIONS[result.reason]} (${result.checked} entries before it verified)\n`,
    );
  }
  return result.valid ? 0 : 1;
}
