import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { verifyPassword } from '../../src/modules/auth/passwords.js';
import type { Database } from '../../src/platform/database/database.js';
import { openPglite, wrapPglite } from '../../src/platform/database/pglite-database.js';
import { cli, runtimeSecrets } from './helpers.js';
import { ADA_PASSWORD, MALFORMED, MALFORMED_PROBLEMS, SAMPLE_FOLDER, expectSampleImported, legacySet, snapshot, type ImportJson } from './legacy-import-helpers.js';

async function withDatabase<T>(env: Record<string, string>, work: (database: Database) => Promise<T>): Promise<T> {
  const config = loadConfig(env);
  if (config.database.kind !== 'pglite') throw new Error('expected the embedded database');
  const pglite = await openPglite(config.database.dataDir);
  try {
    return await work(wrapPglite(pglite));
  } finally {
    await pglite.close();
  }
}

/** `bulwark import` on the embedded database (OPS-9, CLI-1): the sample set twice, a malformed set, exit codes. */
describe('bulwark import on the embedded database', () => {
  let folder: string;
  const secrets = runtimeSecrets();
  const envFor = (name: string) => ({ NODE_ENV: 'test', DATA_DIR: path.join(folder, name), ...secrets });

  beforeAll(() => {
    folder = mkdtempSync(path.join(tmpdir(), 'bulwark-import-pglite-'));
  });
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it('imports the sample set; a second run reports every record as already imported and changes no row', async () => {
    const env = envFor('sample');
    const first = await cli(['import', SAMPLE_FOLDER, '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.json<ImportJson>()).toMatchObject({ ok: true, totals: { imported: 12, unchanged: 0, changed: 0, rejected: 0 }, passwordsDropped: 2, creditsGranted: 170, problems: [] });
    const before = await withDatabase(env, async (database) => {
      await expectSampleImported(database);
      const { rows } = await database.query<{ password_hash: string }>(`SELECT password_hash FROM users WHERE email = 'ada@example.com'`);
      expect(await verifyPassword(rows[0]?.password_hash ?? '', ADA_PASSWORD)).toBe(true);
      return snapshot(database);
    });

    const second = await cli(['import', SAMPLE_FOLDER], env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('0 imported, 12 already imported, 0 changed since their import (not applied), 0 rejected.');
    const after = await withDatabase(env, (database) => snapshot(database));
    expect(after.data).toEqual(before.data);
    // The audit trail: one more entry, the second run's, and the chain still verifies.
    expect(after.audit).toEqual(expect.arrayContaining(before.audit));
    const runs = await withDatabase(env, (database) =>
      database.query<{ actor_type: string; metadata: Record<string, unknown> }>(`SELECT actor_type, metadata FROM audit_log WHERE event = 'legacy_import.completed' ORDER BY seq`),
    );
    expect(runs.rows.map((row) => row.actor_type)).toEqual(['cli', 'cli']);
    // What the first run made is audited record by record, by the command line (AUD-1).
    const events = await withDatabase(env, (database) =>
      database.query<{ event: string; actor_type: string; n: number }>(
        `SELECT event, actor_type, count(*)::int AS n FROM audit_log WHERE event <> 'legacy_import.completed' GROUP BY 1, 2 ORDER BY 1`,
      ),
    );
    expect(events.rows).toEqual([
      { event: 'account.created', actor_type: 'cli', n: 3 },
      { event: 'account.updated', actor_type: 'cli', n: 2 },
      { event: 'credits.granted', actor_type: 'cli', n: 2 },
      { event: 'subscription.created', actor_type: 'cli', n: 3 },
      { event: 'user.created', actor_type: 'cli', n: 5 },
    ]);
    expect(runs.rows[1]?.metadata).toMatchObject({ files: { 'users.jsonl': { records: 5, imported: 0, unchanged: 5, rejected: 0 } }, creditsGranted: 0 });
    expect(after.audit.length).toBe(before.audit.length + 1);
    const verified = await cli(['audit', 'verify'], env);
    expect(verified.code, verified.stdout).toBe(0);
  });

  // On the database of the first test, which holds the sample set: the sample's lines are
  // already imported, and the snapshot shows that nothing of the malformed records is written.
  it('reports each malformed record with its file and line and writes nothing of it', async () => {
    const env = envFor('sample');
    const before = await withDatabase(env, (database) => snapshot(database));
    const set = legacySet(path.join(folder, 'malformed-set'), MALFORMED);
    const json = await cli(['import', set, '--json'], env);
    expect(json.code, json.stderr).toBe(1);
    const report = json.json<ImportJson>();
    expect(report).toMatchObject({ ok: false, totals: { imported: 0, unchanged: 12, changed: 0, rejected: MALFORMED_PROBLEMS.length } });
    expect(report.problems.map(({ message: _message, ...problem }) => problem)).toEqual(MALFORMED_PROBLEMS);
    expect((await withDatabase(env, (database) => snapshot(database))).data).toEqual(before.data);

    const text = await cli(['import', set], env);
    expect(text.code).toBe(1);
    const lines = text.stdout.split('\n');
    expect(lines).toContain('users.jsonl:8: record u_2002: email is already in use by another user (rejected, nothing of it written)');
    expect(lines).toContain('users.jsonl:10: record: is not valid JSON (Unexpected end of JSON input) (rejected, nothing of it written)');
    expect(lines).toContain('payments.jsonl:7: record p_11: user_id names user u_9999, which is not imported (rejected, nothing of it written)');
    expect(text.stdout).toContain(`0 imported, 12 already imported, 0 changed since their import (not applied), ${MALFORMED_PROBLEMS.length} rejected.`);
  });

  it('reports a record changed since its import without applying it; clear exit codes for a wrong folder; a progress bar on a terminal', async () => {
    const env = envFor('sample');
    const set = legacySet(path.join(folder, 'changed-set'));
    const users = path.join(set, 'users.jsonl');
    writeFileSync(users, readFileSync(users, 'utf8').replace('"name":"Ada Lovelace"', '"name":"Ada King"'));
    const changed = await cli(['import', set, '--json'], env, { tty: true });
    expect(changed.code).toBe(1);
    expect(changed.json<ImportJson>()).toMatchObject({ totals: { imported: 0, unchanged: 11, changed: 1, rejected: 0 }, problems: [{ file: 'users.jsonl', line: 1, id: 'u_1001', outcome: 'changed' }] });
    // The bar, redrawn in place on stderr: carriage return, erase line, [###....] done/total file:line.
    expect(changed.stderr).toContain('\r\u001b[2K[');
    expect(changed.stderr).toMatch(/\[#+\.*\] \d+\/13 users\.jsonl:1/);
    const names = await withDatabase(env, (database) => database.query<{ name: string }>(`SELECT name FROM users WHERE email = 'ada@example.com'`));
    expect(names.rows).toEqual([{ name: 'Ada Lovelace' }]);

    const missing = await cli(['import', path.join(folder, 'nowhere'), '--json'], env);
    expect(missing.code).toBe(2);
    expect(missing.json()).toEqual({ error: { code: 'USAGE', message: `${path.join(folder, 'nowhere')} does not exist` } });
    const arrays = path.join(folder, 'arrays');
    legacySet(arrays);
    rmSync(path.join(arrays, 'users.jsonl'));
    rmSync(path.join(arrays, 'subscriptions.jsonl'));
    rmSync(path.join(arrays, 'payments.jsonl'));
    writeFileSync(path.join(arrays, 'users.json'), '[]');
    const misnamed = await cli(['import', arrays], env);
    expect(misnamed.code).toBe(2);
    expect(misnamed.stderr).toContain('holds none of users.jsonl, subscriptions.jsonl, payments.jsonl (found users.json: the import reads JSON Lines files');
    expect((await cli(['import'], env)).code).toBe(2);
  });
});
