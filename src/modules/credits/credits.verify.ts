import { asSystem } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';

/**
 * The ledger identity (issue 5 item 6), per account:
 *
 *   granted = remaining + held + spent + writtenOff
 *
 * where granted and remaining come from credit_grants (remaining includes expired grants
 * not yet written off), held and spent from credit_reservations, and writtenOff from the
 * ledger's 'expiry' and 'refund_reversal' entries. The ledger must also agree with the
 * tables it describes, movement by movement (see the sign convention in migration 0009):
 * its grants with the grants, its grant+hold+release+expiry+refund_reversal with the
 * remaining, its holds less releases and spends with what is held, its spends with what
 * was spent; and every reservation's allocations must add up to its amount.
 */
export interface CreditAccountTotals {
  readonly accountId: string;
  readonly granted: number;
  readonly remaining: number;
  readonly held: number;
  readonly spent: number;
  readonly writtenOff: number;
  readonly ledgerGranted: number;
  readonly ledgerRemaining: number;
  readonly ledgerHeld: number;
  readonly ledgerSpent: number;
  /** Reservations of the account whose allocations do not sum to their amount. */
  readonly badAllocations: number;
}

export interface CreditMismatch extends CreditAccountTotals {
  readonly problems: readonly string[];
}

export interface CreditVerification {
  readonly valid: boolean;
  readonly checked: number;
  readonly mismatches: readonly CreditMismatch[];
}

const TOTALS_SQL = `
WITH g AS (
  SELECT account_id, sum(amount) AS granted, sum(remaining) AS remaining FROM credit_grants GROUP BY account_id
), r AS (
  SELECT account_id,
         coalesce(sum(amount) FILTER (WHERE status = 'held'), 0) AS held,
         coalesce(sum(amount) FILTER (WHERE status = 'confirmed'), 0) AS spent
  FROM credit_reservations GROUP BY account_id
), l AS (
  SELECT account_id,
         coalesce(sum(amount) FILTER (WHERE kind = 'grant'), 0) AS ledger_granted,
         coalesce(sum(amount) FILTER (WHERE kind IN ('grant', 'hold', 'release', 'expiry', 'refund_reversal')), 0) AS ledger_remaining,
         coalesce(sum(-amount) FILTER (WHERE kind IN ('hold', 'release')), 0)
           + coalesce(sum(amount) FILTER (WHERE kind = 'spend'), 0) AS ledger_held,
         coalesce(sum(-amount) FILTER (WHERE kind = 'spend'), 0) AS ledger_spent,
         coalesce(sum(-amount) FILTER (WHERE kind IN ('expiry', 'refund_reversal')), 0) AS written_off
  FROM credit_ledger GROUP BY account_id
), a AS (
  SELECT res.account_id, count(*) AS bad_allocations
  FROM credit_reservations AS res
  LEFT JOIN (SELECT reservation_id, sum(amount) AS allocated FROM credit_reservation_allocations GROUP BY reservation_id) AS al
    ON al.reservation_id = res.id
  WHERE coalesce(al.allocated, 0) <> res.amount
  GROUP BY res.account_id
), accounts_seen AS (
  SELECT account_id FROM g UNION SELECT account_id FROM r UNION SELECT account_id FROM l UNION SELECT account_id FROM a
)
SELECT s.account_id,
       coalesce(g.granted, 0)::bigint AS granted,
       coalesce(g.remaining, 0)::bigint AS remaining,
       coalesce(r.held, 0)::bigint AS held,
       coalesce(r.spent, 0)::bigint AS spent,
       coalesce(l.written_off, 0)::bigint AS written_off,
       coalesce(l.ledger_granted, 0)::bigint AS ledger_granted,
       coalesce(l.ledger_remaining, 0)::bigint AS ledger_remaining,
       coalesce(l.ledger_held, 0)::bigint AS ledger_held,
       coalesce(l.ledger_spent, 0)::bigint AS ledger_spent,
       coalesce(a.bad_allocations, 0)::bigint AS bad_allocations
FROM accounts_seen AS s
LEFT JOIN g ON g.account_id = s.account_id
LEFT JOIN r ON r.account_id = s.account_id
LEFT JOIN l ON l.account_id = s.account_id
LEFT JOIN a ON a.account_id = s.account_id
WHERE $1::text IS NULL OR s.account_id = $1
ORDER BY s.account_id`;

interface TotalsRow {
  account_id: string;
  granted: number;
  remaining: number;
  held: number;
  spent: number;
  written_off: number;
  ledger_granted: number;
  ledger_remaining: number;
  ledger_held: number;
  ledger_spent: number;
  bad_allocations: number;
}

export function problemsOf(totals: CreditAccountTotals): string[] {
  const problems: string[] = [];
  if (totals.granted !== totals.remaining + totals.held + totals.spent + totals.writtenOff) {
    problems.push('granted != remaining + held + spent + written off');
  }
  if (totals.ledgerGranted !== totals.granted) problems.push('ledger grants != grants');
  if (totals.ledgerRemaining !== totals.remaining) problems.push('ledger balance != remaining of the grants');
  if (totals.ledgerHeld !== totals.held) problems.push('ledger holds != held reservations');
  if (totals.ledgerSpent !== totals.spent) problems.push('ledger spends != confirmed reservations');
  if (totals.remaining < 0 || totals.held < 0) problems.push('negative balance');
  if (totals.badAllocations > 0) problems.push(`${totals.badAllocations} reservation(s) whose allocations do not sum to their amount`);
  return problems;
}

/**
 * Checks the identity for every account (or one), as a system context. Read-only; one
 * REPEATABLE READ snapshot, so a check never sees half of a concurrent transaction.
 */
export async function verifyCreditLedger(database: Database, options: { accountId?: string } = {}): Promise<CreditVerification> {
  const { rows } = await asSystem(database, (tx) => tx.query<TotalsRow>(TOTALS_SQL, [options.accountId ?? null]), { isolation: 'repeatable read' });
  const mismatches: CreditMismatch[] = [];
  for (const row of rows) {
    const totals: CreditAccountTotals = {
      accountId: row.account_id,
      granted: row.granted,
      remaining: row.remaining,
      held: row.held,
      spent: row.spent,
      writtenOff: row.written_off,
      ledgerGranted: row.ledger_granted,
      ledgerRemaining: row.ledger_remaining,
      ledgerHeld: row.ledger_held,
      ledgerSpent: row.ledger_spent,
      badAllocations: row.bad_allocations,
    };
    const problems = problemsOf(totals);
    if (problems.length > 0) mismatches.push({ ...totals, problems });
  }
  return { valid: mismatches.length === 0, checked: rows.length, mismatches };
}
