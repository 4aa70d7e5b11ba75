import pg from 'pg';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createApiKeysModule, type ApiKeysModule } from '../../src/modules/api-keys/api-keys.module.js';
import { PostgresRevocationFeed } from '../../src/modules/api-keys/revocation-feed.js';
import { systemClock } from '../../src/platform/clock.js';
import { APPLICATION_ROLE, forAccount } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { migrate } from '../../src/platform/database/migrate.js';
import { createPostgresDatabase } from '../../src/platform/database/postgres-database.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { PEPPER, USER_ACTOR, createAccount } from './fixtures.js';

type PostgresConfig = Extract<Config['database'], { kind: 'postgres' }>;

/**
 * KEY-2 across instances, the way production runs: each instance has its own pool and
 * its own listening connection, on one real PostgreSQL database.
 */
describeWithPostgres('API keys on PostgreSQL: two instances', () => {
  let scratch: ScratchDatabase;
  let config: Config;
  let databaseConfig: PostgresConfig;
  let owner: pg.Client;
  let pool1: Database;
  let pool2: Database;
  let instance1: ApiKeysModule;
  let instance2: ApiKeysModule;
  let accountA: string;
  let accountB: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    config = loadConfig({ NODE_ENV: 'test', DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '10', API_KEY_PEPPER: PEPPER });
    if (config.database.kind !== 'postgres') throw new Error('expected a PostgreSQL configuration');
    databaseConfig = config.database;
    // As src/dependencies.ts does: migrate as the owner, then work as the application role.
    const migrator = createPostgresDatabase({ ...databaseConfig, poolMax: 1 });
    try {
      await migrate(migrator);
    } finally {
      await migrator.close();
    }
    pool1 = createPostgresDatabase(databaseConfig, { role: APPLICATION_ROLE });
    pool2 = createPostgresDatabase(databaseConfig, { role: APPLICATION_ROLE });
    instance1 = createApiKeysModule({ config, database: pool1, clock: systemClock });
    instance2 = createApiKeysModule({ config, database: pool2, clock: systemClock });
    owner = new pg.Client({ connectionString: scratch.url });
    await owner.connect();
    accountA = await createAccount(pool1);
    accountB = await createAccount(pool1);
    await vi.waitFor(
      () => {
        if (!instance1.verifier.cacheEnabled || !instance2.verifier.cacheEnabled) throw new Error('listeners not yet established');
      },
      { timeout: 10_000 },
    );
  });

  afterAll(async () => {
    await instance1?.close();
    await instance2?.close();
    await pool1?.close();
    await pool2?.close();
    await owner?.end();
    await scratch?.drop();
  });

  it('works as the application role: row-level security hides keys outside their account', async () => {
    await instance1.service.issue(accountB, {}, USER_ACTOR);
    expect((await pool1.query('SELECT id FROM api_keys')).rows).toEqual([]);
    const seenByA = await forAccount(pool1, accountA, (tx) => tx.query<{ account_id: string }>('SELECT account_id FROM api_keys'));
    expect(seenByA.rows.filter((row) => row.account_id !== accountA)).toEqual([]);
  });

  it('a key revoked through instance 1 is refused by instance 2 within 1 s, although instance 2 had cached it', async () => {
    const issued = await instance1.service.issue(accountA, {}, USER_ACTOR);
    const expected = { accountId: accountA, keyId: issued.key.id };
    expect(await instance1.verifier.verify(issued.secret)).toEqual(expected);
    const cachedBefore = instance2.verifier.cacheSize;
    expect(await instance2.verifier.verify(issued.secret)).toEqual(expected);
    expect(instance2.verifier.cacheSize).toBe(cachedBefore + 1);
    // Cached: a second answer comes from memory.
    expect(await instance2.verifier.verify(issued.secret)).toEqual(expected);

    await instance1.service.revoke(accountA, issued.key.id, USER_ACTOR);
    expect(await instance1.verifier.verify(issued.secret)).toBeUndefined();
    // KEY-2's correctness bound, not a performance measurement.
    await expect.poll(() => instance2.verifier.verify(issued.secret), { timeout: 1_000, interval: 10 }).toBeUndefined();
  });

  it('a rotation that ends the overlap now reaches the other instance within 1 s too', async () => {
    const old = await instance2.service.issue(accountA, {}, USER_ACTOR);
    expect(await instance1.verifier.verify(old.secret)).toBeDefined();
    const replacement = await instance2.service.rotate(accountA, old.key.id, { overlapSeconds: 0 }, USER_ACTOR);
    await expect.poll(() => instance1.verifier.verify(old.secret), { timeout: 1_000, interval: 10 }).toBeUndefined();
    expect(await instance1.verifier.verify(replacement.secret)).toEqual({ accountId: accountA, keyId: replacement.key.id });
  });

  it('20 concurrent verifications of a valid key all succeed, on both instances', async () => {
    const issued = await instance1.service.issue(accountA, {}, USER_ACTOR);
    const expected = { accountId: accountA, keyId: issued.key.id };
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, index) => (index % 2 === 0 ? instance1 : instance2).verifier.verify(issued.secret)),
    );
    expect(results).toEqual(Array.from({ length: 20 }, () => expected));
    const more = await Promise.all(Array.from({ length: 20 }, () => instance2.verifier.verify(issued.secret)));
    expect(more).toEqual(Array.from({ length: 20 }, () => expected));
    await Promise.all([instance1.verifier.settled(), instance2.verifier.settled()]);
    const { rows } = await owner.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [issued.key.id]);
    expect(rows[0]?.last_used_at).toBeInstanceOf(Date);
  });

  it('when the listening connection drops, the cache is cleared and unused until LISTEN is back', async () => {
    const feed = new PostgresRevocationFeed({ database: databaseConfig, role: APPLICATION_ROLE, reconnectMinMs: 1_500 });
    const instance3 = createApiKeysModule({ config, database: pool2, clock: systemClock, feed });
    try {
      await expect.poll(() => instance3.verifier.cacheEnabled, { timeout: 10_000 }).toBe(true);
      const issued = await instance3.service.issue(accountA, {}, USER_ACTOR);
      expect(await instance3.verifier.verify(issued.secret)).toBeDefined();
      expect(instance3.verifier.cacheSize).toBe(1);

      const pid = feed.backendPid;
      expect(pid).toBeTypeOf('number');
      await owner.query('SELECT pg_terminate_backend($1)', [pid]);
      await expect.poll(() => instance3.verifier.cacheEnabled, { timeout: 5_000, interval: 10 }).toBe(false);
      expect(instance3.verifier.cacheSize).toBe(0);

      // A revocation nobody is told about (no NOTIFY): only a database read can see it.
      await owner.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [issued.key.id]);
      expect(await instance3.verifier.verify(issued.secret)).toBeUndefined();

      await expect.poll(() => feed.sessions, { timeout: 15_000 }).toBe(2);
      expect(instance3.verifier.cacheEnabled).toBe(true);
      expect(await instance3.verifier.verify(issued.secret)).toBeUndefined();

      // And the cache works again after reconnecting.
      const fresh = await instance3.service.issue(accountA, {}, USER_ACTOR);
      expect(await instance3.verifier.verify(fresh.secret)).toBeDefined();
      expect(instance3.verifier.cacheSize).toBe(1);
    } finally {
      await instance3.close();
    }
  });
});
