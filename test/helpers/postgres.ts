import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { describe, inject } from 'vitest';
import type { Database } from '../../src/platform/database/database.js';
import { createPostgresDatabase } from '../../src/platform/database/postgres-database.js';

export const postgresSetup = inject('postgres');

/** A describe block that needs a real PostgreSQL: skipped (with the run's warning) only outside CI. */
export const describeWithPostgres = describe.skipIf(postgresSetup === null);

export interface ScratchDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** A fresh, empty database for one test file or test; dropped by drop() and, failing that, at the end of the run. */
export async function createScratchDatabase(): Promise<ScratchDatabase> {
  if (!postgresSetup) throw new Error('PostgreSQL is not available in this run');
  const name = `bulwark_test_${postgresSetup.runId}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: postgresSetup.adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(postgresSetup.adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = new pg.Client({ connectionString: postgresSetup?.adminUrl });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A small pool on `url` as the connecting (owner) role, for a test's own checks of what the service wrote. */
export function openPostgres(url: string): Database {
  return createPostgresDatabase({
    kind: 'postgres',
    url,
    poolMax: 2,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 30_000,
    idleTimeoutMs: 10_000,
    ssl: 'disable',
    sslCaPath: undefined,
  });
}
