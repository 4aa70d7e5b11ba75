import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem, forAccount } from '../../src/platform/database/access.js';
import { sqlStateOf } from '../../src/platform/database/database.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * ACC-3: row-level security as defence in depth. The service's database works as the
 * application role, so a query that forgets its account filter still sees nothing foreign.
 */
function isolationSuite(name: string, open: () => Promise<TestApp>, cleanup: () => Promise<void> = async () => undefined) {
  describe(name, () => {
    let testApp: TestApp;
    const accounts: string[] = [];

    beforeAll(async () => {
      testApp = await open();
      for (const email of ['alice@example.com', 'bob@example.com']) {
        const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: 'a sturdy passphrase 42' } });
        expect(response.statusCode).toBe(201);
        accounts.push(response.json().account.id);
      }
    });
    afterAll(async () => {
      await testApp?.close();
      await cleanup();
    });

    it('works as bulwark_app, which cannot bypass row-level security', async () => {
      const { rows } = await testApp.deps.database.query<{ role: string; bypass: boolean; superuser: boolean }>(
        `SELECT current_user AS role, rolbypassrls AS bypass, rolsuper AS superuser FROM pg_roles WHERE rolname = current_user`,
      );
      expect(rows[0]).toEqual({ role: 'bulwark_app', bypass: false, superuser: false });
    });

    it("shows a deliberately unfiltered query inside one account's transaction only that account's rows", async () => {
      const [alice, bob] = accounts as [string, string];
      const seen = await forAccount(testApp.deps.database, alice, async (tx) => ({
        accounts: (await tx.query<{ id: string }>('SELECT id FROM accounts')).rows.map((row) => row.id),
        users: (await tx.query<{ account_id: string }>('SELECT account_id FROM users')).rows.map((row) => row.account_id),
        sessions: (await tx.query<{ account_id: string }>('SELECT account_id FROM refresh_tokens')).rows.map((row) => row.account_id),
      }));
      expect(seen.accounts).toEqual([alice]);
      expect(new Set(seen.users)).toEqual(new Set([alice]));
      expect(new Set(seen.sessions)).toEqual(new Set([alice]));
      expect(seen.users).not.toContain(bob);
    });

    it('shows nothing at all outside an account or system context', async () => {
      const { rows } = await testApp.deps.database.query('SELECT id FROM users');
      expect(rows).toEqual([]);
    });

    it("refuses to write a row into another account from an account's transaction", async () => {
      const [alice, bob] = accounts as [string, string];
      const error = await forAccount(testApp.deps.database, alice, (tx) =>
        tx.query(`UPDATE accounts SET name = 'hijacked' WHERE id = $1 RETURNING id`, [bob]),
      ).then(
        (result) => result.rowCount,
        (caught: unknown) => caught,
      );
      // The foreign row is invisible, so the update touches nothing.
      expect(error).toBe(0);
      const insert = await forAccount(testApp.deps.database, alice, (tx) =>
        tx.query(
          `INSERT INTO users (id, account_id, email, role, created_at, updated_at) VALUES ('usr_x', $1, 'x@example.com', 'owner', now(), now())`,
          [bob],
        ),
      ).catch((caught: unknown) => caught);
      expect(sqlStateOf(insert)).toBe('42501');
      const names = await asSystem(testApp.deps.database, (tx) => tx.query<{ name: string | null }>('SELECT name FROM accounts WHERE id = $1', [bob]));
      expect(names.rows[0]?.name).toBeNull();
    });
  });
}

isolationSuite('row-level security on PGlite', () => createTestApp());

describeWithPostgres('row-level security on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  isolationSuite(
    'as the service connects',
    async () => {
      scratch = await createScratchDatabase();
      return createTestApp({ env: { DATABASE_URL: scratch.url } });
    },
    async () => scratch?.drop(),
  );
});
