import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { DatabaseConfig } from '../../src/config/config.js';
import { recordAudit, listAuditEntries } from '../../src/modules/audit/audit.service.js';
import { verifyAuditChain } from '../../src/modules/audit/audit.verify.js';
import { ManualClock } from '../../src/platform/clock.js';
import { APPLICATION_ROLE, asSystem, forAccount } from '../../src/platform/database/access.js';
import { SqlState, sqlStateOf, type Database } from '../../src/platform/database/database.js';
import { migrate } from '../../src/platform/database/migrate.js';
import { createPostgresDatabase } from '../../src/platform/database/postgres-database.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { chainLinks, rejectionOf, resetAuditLog, sampleEntry, tamper } from './helpers.js';

type PostgresConfig = Extract<DatabaseConfig, { kind: 'postgres' }>;

const root = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

function postgresConfig(url: string, poolMax: number): PostgresConfig {
  return {
    kind: 'postgres',
    url,
    poolMax,
    connectTimeoutMs: 10_000,
    statementTimeoutMs: 20_000,
    idleTimeoutMs: 10_000,
    ssl: 'disable',
    sslCaPath: undefined,
  };
}

/** Runs the CLI as a process (TypeScript through tsx; `npm run audit:verify` runs the same file compiled). */
async function auditVerifyCommand(url: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/audit-verify.ts', ...args], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', NODE_ENV: 'test', DATABASE_URL: url },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/**
 * The audit chain on real PostgreSQL: concurrent recorders in separate transactions and
 * connections, the application role as production uses it (set at connection start-up),
 * and the audit:verify command as a process.
 */
describeWithPostgres('audit trail on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let owner: Database;
  let app: Database;
  const clock = new ManualClock('2026-05-01T00:00:00Z');

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    owner = createPostgresDatabase(postgresConfig(scratch.url, 2));
    await migrate(owner);
    app = createPostgresDatabase(postgresConfig(scratch.url, 20), { role: APPLICATION_ROLE });
  });

  afterAll(async () => {
    await app?.close();
    await owner?.close();
    await scratch?.drop();
  });

  beforeEach(async () => {
    await resetAuditLog(owner);
  });

  it('keeps one linear chain when 50 transactions record at the same time', async () => {
    const accounts = ['acct_a', 'acct_b', 'acct_c'];
    const recorded = await Promise.all(
      Array.from({ length: 50 }, (_, index) => {
        const accountId = accounts[index % accounts.length] ?? 'acct_a';
        const work = async (tx: Parameters<Parameters<Database['transaction']>[0]>[0]) => {
          // Some work of the action before and after recording, so transactions overlap
          // and each holds the chain head while others wait for it.
          await tx.query('SELECT pg_sleep(0.005)');
          const entry = await recordAudit(tx, sampleEntry(index, { accountId }), clock);
          await tx.query('SELECT pg_sleep(0.002)');
          return entry;
        };
        return index % 2 === 0 ? forAccount(app, accountId, work) : asSystem(app, work);
      }),
    );
    const links = await chainLinks(owner);
    expect(links).toHaveLength(50);
    expect(new Set(links.map((link) => link.id))).toEqual(new Set(recorded.map((entry) => entry.id)));
    expect(links[0]?.prev_hash).toBe('0'.repeat(64));
    for (let index = 1; index < links.length; index += 1) {
      expect(links[index]?.prev_hash).toBe(links[index - 1]?.hash);
    }
    expect(await verifyAuditChain(app)).toEqual({ valid: true, checked: 50 });
  });

  it('never forks under REPEATABLE READ: a recorder whose snapshot predates the head fails with 40001', async () => {
    await asSystem(app, (tx) => recordAudit(tx, sampleEntry(1), clock));
    let snapshotTaken!: () => void;
    const snapshot = new Promise<void>((resolve) => (snapshotTaken = resolve));
    let otherCommitted!: () => void;
    const committed = new Promise<void>((resolve) => (otherCommitted = resolve));

    const stale = app.transaction(
      async (tx) => {
        await tx.query(`SELECT set_config('app.system', 'on', true)`);
        await tx.query('SELECT count(*) FROM audit_log'); // takes the transaction's snapshot
        snapshotTaken();
        await committed;
        return recordAudit(tx, sampleEntry(3), clock);
      },
      { isolation: 'repeatable read' },
    );
    await snapshot;
    await asSystem(app, (tx) => recordAudit(tx, sampleEntry(2), clock));
    otherCommitted();
    const error = await rejectionOf(stale);
    expect(sqlStateOf(error)).toBe(SqlState.serializationFailure);

    // Retried, as REPEATABLE READ callers do, it continues the chain.
    await app.transaction(
      async (tx) => {
        await tx.query(`SELECT set_config('app.system', 'on', true)`);
        await recordAudit(tx, sampleEntry(3), clock);
      },
      { isolation: 'repeatable read' },
    );
    expect(await verifyAuditChain(app)).toEqual({ valid: true, checked: 3 });
  });

  it('refuses UPDATE, DELETE and TRUNCATE to the owner (trigger) and to the application role (privileges)', async () => {
    await asSystem(app, (tx) => recordAudit(tx, sampleEntry(1), clock));
    expect((await rejectionOf(owner.query(`UPDATE audit_log SET metadata = '{}'`))).message).toMatch(/append-only: UPDATE refused/);
    expect((await rejectionOf(owner.query('DELETE FROM audit_log'))).message).toMatch(/append-only: DELETE refused/);
    expect((await rejectionOf(owner.query('TRUNCATE audit_log'))).message).toMatch(/TRUNCATE refused/);
    for (const sql of [`UPDATE audit_log SET metadata = '{}'`, 'DELETE FROM audit_log', 'TRUNCATE audit_log']) {
      const error = await rejectionOf(asSystem(app, (tx) => tx.query(sql)));
      expect(sqlStateOf(error), sql).toBe('42501');
    }
    expect(await verifyAuditChain(app)).toEqual({ valid: true, checked: 1 });
  });

  it('isolates reading by account through row-level security', async () => {
    await asSystem(app, async (tx) => {
      await recordAudit(tx, sampleEntry(1, { accountId: 'acct_a' }), clock);
      await recordAudit(tx, sampleEntry(2, { accountId: 'acct_b' }), clock);
    });
    const seen = await forAccount(app, 'acct_b', (tx) => listAuditEntries(tx));
    expect(seen.items.map((item) => item.accountId)).toEqual(['acct_b']);
    const raw = await app.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log');
    expect(raw.rows[0]?.n).toBe(0);
  });

  it('audit:verify, run as a process, exits 0 on a valid chain and 1 naming a tampered entry', async () => {
    const entries = [];
    for (let index = 1; index <= 4; index += 1) entries.push(await asSystem(app, (tx) => recordAudit(tx, sampleEntry(index), clock)));
    const valid = await auditVerifyCommand(scratch.url);
    expect(valid).toMatchObject({ code: 0, stdout: 'Audit chain valid: 4 entries checked\n' });

    await tamper(owner, `UPDATE audit_log SET metadata = '{"index": 2, "label": "edited"}' WHERE id = $1`, [entries[1]?.id]);
    const broken = await auditVerifyCommand(scratch.url);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`Audit chain BROKEN at entry ${entries[1]?.id}:`);
    const json = await auditVerifyCommand(scratch.url, ['--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ valid: false, brokenAt: entries[1]?.id, reason: 'hash_mismatch' });
  }, 120_000);
});
