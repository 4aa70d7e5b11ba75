import { randomBytes } from 'node:crypto';
import { insertAccount, insertUser } from '../../src/modules/accounts/accounts.repository.js';
import type { AuditEntryInput, AuditRecorder } from '../../src/modules/api-keys/audit-hook.js';
import type { RevocationFeed, RevocationHandlers } from '../../src/modules/api-keys/revocation-feed.js';
import { APPLICATION_ROLE, asSystem } from '../../src/platform/database/access.js';
import type { Database, QueryResult } from '../../src/platform/database/database.js';
import { newId } from '../../src/platform/ids.js';
import { createTestPglite } from '../helpers/pglite.js';

export const PEPPER = randomBytes(32).toString('hex');
export const USER_ACTOR = { actorType: 'user', actorId: 'usr_test', ip: '203.0.113.7' } as const;

/** A migrated PGlite working as the application role, so row-level security applies as in production. */
export async function createAppRolePglite(): Promise<Database> {
  const database = await createTestPglite();
  await database.exec(`SET ROLE ${APPLICATION_ROLE}`);
  return database;
}

export async function createAccount(database: Database, at = new Date('2026-01-01T00:00:00Z'), status: 'active' | 'deleted' = 'active'): Promise<string> {
  return asSystem(database, async (tx) => {
    const account = await insertAccount(tx, { id: newId('account'), name: null, plan: 'FREE', at });
    if (status !== 'active') await tx.query('UPDATE accounts SET status = $2 WHERE id = $1', [account.id, status]);
    return account.id;
  });
}

export async function createOwner(database: Database, accountId: string, email: string): Promise<string> {
  return asSystem(database, async (tx) => {
    const user = await insertUser(tx, { id: newId('user'), accountId, email, name: null, passwordHash: null, role: 'owner', at: new Date('2026-01-01T00:00:00Z') });
    return user.id;
  });
}

/** Every stored column of every key row, as text, for "the secret is nowhere" assertions. */
export async function allKeyRowsAsText(database: Database): Promise<string> {
  const { rows } = await asSystem(database, (tx) => tx.query('SELECT * FROM api_keys'));
  return JSON.stringify(rows);
}

/** An audit recorder that keeps entries in memory, and proves it ran inside the transaction by using it. */
export function memoryAudit(): { entries: AuditEntryInput[]; recorder: AuditRecorder } {
  const entries: AuditEntryInput[] = [];
  return {
    entries,
    recorder: async (tx, entry) => {
      await tx.query('SELECT 1');
      entries.push(entry);
    },
  };
}

/** A revocation feed the test switches on and off (the database underneath stays real). */
export class SwitchableFeed implements RevocationFeed {
  live = true;
  handlers: RevocationHandlers | undefined;

  isLive(): boolean {
    return this.live;
  }

  start(handlers: RevocationHandlers): void {
    this.handlers = handlers;
  }

  async close(): Promise<void> {}
}

/** The real database, counting the statements that reach it. */
export function countingDatabase(database: Database): { database: Database; statements: () => number } {
  let count = 0;
  const counted: Database = {
    driver: database.driver,
    query<Row>(text: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
      count += 1;
      return database.query<Row>(text, params);
    },
    exec: (script) => database.exec(script),
    transaction: (work, options) =>
      database.transaction(
        (tx) =>
          work({
            query<Row>(text: string, params?: readonly unknown[]): Promise<QueryResult<Row>> {
              count += 1;
              return tx.query<Row>(text, params);
            },
            exec: (script) => tx.exec(script),
          }),
        options,
      ),
    close: () => database.close(),
  };
  return { database: counted, statements: () => count };
}
