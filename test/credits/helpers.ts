import { insertAccount } from '../../src/modules/accounts/accounts.repository.js';
import { CreditsService } from '../../src/modules/credits/credits.service.js';
import type { Clock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { newId } from '../../src/platform/ids.js';
import type { TestApp } from '../helpers/app.js';

export async function newAccount(database: Database, clock: Clock): Promise<string> {
  const id = newId('account');
  await asSystem(database, (tx) => insertAccount(tx, { id, name: null, plan: 'FREE', at: clock.now() }));
  return id;
}

/** The service on an app's own database (application role, RLS) and price list. */
export function creditsOf(testApp: TestApp, clock?: Clock): CreditsService {
  return new CreditsService({ database: testApp.deps.database, clock: clock ?? testApp.deps.clock, pricing: testApp.deps.plans });
}

export interface Snapshot {
  grants: Array<{ id: string; remaining: number; amount: number }>;
  reservations: Array<{ id: string; status: string; amount: number }>;
  ledgerCount: number;
}

/** Everything credits-related of one account, read as a system context, for "nothing changed" assertions. */
export async function snapshot(database: Database, accountId: string): Promise<Snapshot> {
  return asSystem(database, async (tx) => {
    const grants = await tx.query<{ id: string; remaining: number; amount: number }>(
      'SELECT id, remaining, amount FROM credit_grants WHERE account_id = $1 ORDER BY id',
      [accountId],
    );
    const reservations = await tx.query<{ id: string; status: string; amount: number }>(
      'SELECT id, status, amount FROM credit_reservations WHERE account_id = $1 ORDER BY id',
      [accountId],
    );
    const ledger = await tx.query<{ count: number }>('SELECT count(*)::int AS count FROM credit_ledger WHERE account_id = $1', [accountId]);
    return { grants: grants.rows, reservations: reservations.rows, ledgerCount: ledger.rows[0]?.count ?? 0 };
  });
}
