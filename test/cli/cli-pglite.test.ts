import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { openMigratedDatabase } from '../../src/dependencies.js';
import { AdminAccountsService } from '../../src/modules/accounts/admin-accounts.routes.js';
import { ApiKeyService } from '../../src/modules/api-keys/api-keys.service.js';
import { auditRecorder } from '../../src/modules/api-keys/audit-hook.js';
import { CreditsService } from '../../src/modules/credits/credits.service.js';
import { PlanCatalogue } from '../../src/modules/plans/plan-catalogue.js';
import { seedCatalogue } from '../../src/modules/plans/seed.js';
import { systemClock } from '../../src/platform/clock.js';
import { openPglite, wrapPglite } from '../../src/platform/database/pglite-database.js';
import { cli, everyRow, hostileName, runtimeSecrets } from './helpers.js';

async function snapshotOf(dataDir: string): Promise<Record<string, string[]>> {
  const pglite = await openPglite(dataDir);
  try {
    return await everyRow(wrapPglite(pglite));
  } finally {
    await pglite.close();
  }
}

/** Backup and restore of the embedded database (OPS-6): PGlite's own dump, no external program. */
describe('bulwark backup and restore on the embedded database', () => {
  let folder: string;
  let dataDir: string;
  let env: Record<string, string>;
  const marker = path.join(tmpdir(), `bulwark-pwn-${randomBytes(4).toString('hex')}`);
  const name = hostileName(marker);

  beforeAll(async () => {
    folder = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-pglite-'));
    env = { NODE_ENV: 'test', DATA_DIR: path.join(folder, 'data'), ...runtimeSecrets() };
    const config = loadConfig(env);
    if (config.database.kind !== 'pglite') throw new Error('expected the embedded database');
    dataDir = config.database.dataDir;
    // Data made through the services, as the running service would have made it.
    const { database } = await openMigratedDatabase(config, undefined, () => undefined);
    try {
      const pricing = new PlanCatalogue(database, undefined);
      await seedCatalogue(database, systemClock, { planCatalogue: pricing });
      const actor = { actorType: 'admin', actorId: null, ip: '203.0.113.9' };
      const { account } = await new AdminAccountsService({ database, clock: systemClock }).create({ name, email: 'pglite@example.com' }, actor);
      await new ApiKeyService({ database, clock: systemClock, pepper: env.API_KEY_PEPPER ?? '', audit: auditRecorder(systemClock) }).issueForAccount(account.id, { label: null }, actor);
      const credits = new CreditsService({ database, clock: systemClock, pricing });
      await credits.grant(account.id, { amount: 40, source: 'admin' }, actor);
      const { reservation } = await credits.reserve(account.id, { jobId: 'job-1', jobType: 'render', amount: 15, idempotencyKey: 'k-1' });
      await credits.confirm(account.id, reservation.id);
    } finally {
      await database.close();
    }
  });
  afterAll(() => {
    rmSync(folder, { recursive: true, force: true });
    rmSync(marker, { force: true });
  });

  it('backs up, wipes, restores: the same rows and a verifying audit chain; the hostile name ran nothing', async () => {
    const before = await snapshotOf(dataDir);
    expect(JSON.stringify(before.accounts)).toContain('$(touch');
    expect(before.credit_ledger?.length).toBeGreaterThan(0);

    const file = path.join(folder, 'nightly $(whoami).tar.gz');
    const backedUp = await cli(['backup', '--out', file, '--json'], env);
    expect(backedUp.code, backedUp.stderr).toBe(0);
    expect(backedUp.json()).toMatchObject({ engine: 'pglite', file, summary: { auditChain: { valid: true }, creditLedger: { valid: true } } });
    expect(statSync(file).mode & 0o777).toBe(0o600);

    rmSync(dataDir, { recursive: true });
    const restored = await cli(['restore', file], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/audit chain valid \(\d+ entries\); credit ledger reconciles \(1 accounts\)/);
    expect(await snapshotOf(dataDir)).toEqual(before);
    expect(existsSync(marker)).toBe(false);

    // Over a database that is there: refused, unless --force, which keeps the old folder aside.
    const refused = await cli(['restore', file, '--json'], env);
    expect(refused.code).toBe(1);
    expect(refused.json()).toMatchObject({ error: { code: 'NOT_EMPTY' } });
    const forced = await cli(['restore', file, '--force', '--json'], env);
    expect(forced.code, forced.stderr).toBe(0);
    const replaced = forced.json<{ replacedDirectory: string }>().replacedDirectory;
    expect(existsSync(path.join(replaced, 'PG_VERSION'))).toBe(true);
    expect(await snapshotOf(dataDir)).toEqual(before);
    // Nothing half-restored is left behind.
    expect(readdirSync(path.dirname(dataDir)).filter((entry) => entry.includes('.restoring-'))).toEqual([]);
  });

  it('refuses a PostgreSQL backup and a file that is no backup, and leaves the database alone', async () => {
    const before = readdirSync(path.dirname(dataDir)).sort();
    const postgresDump = path.join(folder, 'from-postgres.dump');
    writeFileSync(postgresDump, 'PGDMP\u0001\u000e\u0000');
    const wrongKind = await cli(['restore', postgresDump, '--force'], env);
    expect(wrongKind.code).toBe(1);
    expect(wrongKind.stderr).toContain('is a PostgreSQL backup (pg_dump custom format); restore it with DATABASE_URL set');
    const junk = path.join(folder, 'junk.bin');
    writeFileSync(junk, 'hello');
    const notBackup = await cli(['restore', junk, '--force'], env);
    expect(notBackup.code).toBe(1);
    expect(notBackup.stderr).toContain('is not a Bulwark backup');
    expect(readdirSync(path.dirname(dataDir)).sort()).toEqual(before);
  });
});
