import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPostgresDatabase } from '../../src/platform/database/postgres-database.js';
import { createScratchDatabase, describeWithPostgres, postgresSetup, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * DATABASE_SSL really asks the server for TLS: against a server with TLS the session is
 * encrypted; against one without, the connection is refused rather than silently
 * falling back to plain text. Which case applies depends on the local server's `ssl`.
 */
describeWithPostgres('DATABASE_SSL', () => {
  let scratch: ScratchDatabase;
  let serverHasTls = false;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const client = new pg.Client({ connectionString: postgresSetup?.adminUrl });
    await client.connect();
    serverHasTls = (await client.query<{ ssl: string }>('SHOW ssl')).rows[0]?.ssl === 'on';
    await client.end();
  });
  afterAll(async () => scratch.drop());

  function open(ssl: 'disable' | 'require') {
    return createPostgresDatabase({
      kind: 'postgres',
      url: scratch.url,
      poolMax: 1,
      connectTimeoutMs: 3_000,
      statementTimeoutMs: 5_000,
      idleTimeoutMs: 5_000,
      ssl,
      sslCaPath: undefined,
    });
  }

  it('uses a plain connection with DATABASE_SSL=disable', async () => {
    const database = open('disable');
    try {
      const { rows } = await database.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      expect(rows[0]?.ssl).toBe(false);
    } finally {
      await database.close();
    }
  });

  it('encrypts, or refuses to connect, with DATABASE_SSL=require', async () => {
    const database = open('require');
    try {
      const query = database.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      if (serverHasTls) {
        expect((await query).rows[0]?.ssl).toBe(true);
      } else {
        await expect(query).rejects.toThrow(/does not support SSL/i);
      }
    } finally {
      await database.close();
    }
  });
});
