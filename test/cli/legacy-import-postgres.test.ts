import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eraseLocalPersonalData } from '../../src/modules/privacy/privacy.repository.js';
import type { Database } from '../../src/platform/database/database.js';
import { createTestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, openPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { cli, runtimeSecrets } from './helpers.js';
import { ADA_PASSWORD, MALFORMED, MALFORMED_PROBLEMS, SAMPLE_FOLDER, expectSampleImported, legacySet, snapshot, type ImportJson } from './legacy-import-helpers.js';

/**
 * `bulwark import` on PostgreSQL (OPS-9, CLI-1): two runs at once import each record once,
 * a later run changes nothing, and records that fail at the database after their first
 * rows were written leave nothing behind.
 */
describeWithPostgres('bulwark import on PostgreSQL', () => {
  const scratches: ScratchDatabase[] = [];
  let folder: string;
  const secrets = runtimeSecrets();

  async function freshDatabase(): Promise<{ env: Record<string, string>; database: Database }> {
    const scratch = await createScratchDatabase();
    scratches.push(scratch);
    return { env: { NODE_ENV: 'test', DATABASE_URL: scratch.url, DATA_DIR: path.join(folder, scratch.name), ...secrets }, database: openPostgres(scratch.url) };
  }

  beforeAll(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'bulwark-import-pg-'));
  });
  afterAll(async () => {
    rmSync(folder, { recursive: true, force: true });
    for (const scratch of scratches) await scratch.drop();
  });

  it('two imports at once bring in every record once; a third changes no row; the kept password logs in; an erased person is not brought back', async () => {
    const { env, database } = await freshDatabase();
    try {
      // Migrate first, so that the two runs race on the records, not on the migrations.
      expect((await cli(['accounts', 'list'], env)).code).toBe(0);
      const runs = await Promise.all([cli(['import', SAMPLE_FOLDER, '--json'], env), cli(['import', SAMPLE_FOLDER, '--json'], env)]);
      for (const run of runs) expect(run.code, run.stderr).toBe(0);
      const [a, b] = runs.map((run) => run.json<ImportJson>().totals);
      expect((a?.imported ?? 0) + (b?.imported ?? 0)).toBe(12);
      expect((a?.unchanged ?? 0) + (b?.unchanged ?? 0)).toBe(12);
      await expectSampleImported(database);
      const before = await snapshot(database);

      const third = await cli(['import', SAMPLE_FOLDER, '--json'], env);
      expect(third.code, third.stderr).toBe(0);
      expect(third.json<ImportJson>().totals).toEqual({ imported: 0, unchanged: 12, changed: 0, rejected: 0 });
      const after = await snapshot(database);
      expect(after.data).toEqual(before.data);
      expect(after.audit).toEqual(expect.arrayContaining(before.audit));
      expect(after.audit.length).toBe(before.audit.length + 1);
      expect((await cli(['audit', 'verify'], env)).code).toBe(0);

      // The service on the imported data: Ada's argon2id hash logs her in; Grace's bcrypt hash was not kept.
      const service = await createTestApp({ env: { DATABASE_URL: env.DATABASE_URL ?? '', DATABASE_POOL_MAX: '2' } });
      try {
        const login = (email: string, password: string) => service.app.inject({ method: 'POST', url: '/auth/login', payload: { email, password } });
        expect((await login('ADA@example.com', ADA_PASSWORD)).statusCode).toBe(200);
        expect((await login('grace@example.com', ADA_PASSWORD)).statusCode).toBe(401);
      } finally {
        await service.close();
      }

      // GDPR-2: erasing Margaret's account drops the digests of her account's legacy user
      // records; a later run counts them as imported and brings no one back.
      const { rows: margaret } = await database.query<{ account_id: string }>(`SELECT account_id FROM users WHERE email = 'margaret@example.com'`);
      const accountId = margaret[0]?.account_id ?? '';
      await database.transaction((tx) => eraseLocalPersonalData(tx, accountId, new Date()));
      const { rows: digests } = await database.query<{ digests: number }>(
        `SELECT count(record_sha256)::int AS digests FROM legacy_import_records WHERE account_id = $1 AND kind = 'user'`,
        [accountId],
      );
      expect(digests).toEqual([{ digests: 0 }]);
      const afterErasure = await cli(['import', SAMPLE_FOLDER, '--json'], env);
      expect(afterErasure.json<ImportJson>().totals).toEqual({ imported: 0, unchanged: 12, changed: 0, rejected: 0 });
      const { rows: people } = await database.query<{ n: number }>(`SELECT count(*)::int AS n FROM users WHERE email IN ('margaret@example.com', 'mary@example.com')`);
      expect(people).toEqual([{ n: 0 }]);
    } finally {
      await database.close();
    }
  });

  it('imports the good records of a malformed set and nothing of the bad ones, even those refused after their first rows were written', async () => {
    const { env, database } = await freshDatabase();
    try {
      const set = legacySet(path.join(folder, 'malformed-set'), MALFORMED);
      const run = await cli(['import', set, '--json'], env);
      expect(run.code, run.stderr).toBe(1);
      const report = run.json<ImportJson>();
      expect(report.totals).toEqual({ imported: 12, unchanged: 0, changed: 0, rejected: MALFORMED_PROBLEMS.length });
      expect(report.problems.map(({ message: _message, ...problem }) => problem)).toEqual(MALFORMED_PROBLEMS);
      expect(report.problems.find((problem) => problem.id === 'u_2003')?.message).toBe('must be in the future');
      await expectSampleImported(database);
      const { rows } = await database.query<{ accounts: number; users: number; grants: number; records: number; partial: number }>(
        `SELECT (SELECT count(*) FROM accounts)::int AS accounts, (SELECT count(*) FROM users)::int AS users,
                (SELECT count(*) FROM credit_grants)::int AS grants, (SELECT count(*) FROM legacy_import_records)::int AS records,
                (SELECT count(*) FROM accounts WHERE name = 'Partial Person')::int AS partial`,
      );
      expect(rows[0]).toEqual({ accounts: 3, users: 5, grants: 2, records: 12, partial: 0 });
    } finally {
      await database.close();
    }
  });
});
