import { randomBytes } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

/**
 * Once per test run: finds PostgreSQL and Redis, names this run (its scratch databases
 * are all called bulwark_test_<runId>_*), and drops every one of them at the end.
 * In CI (CI=true) a missing PostgreSQL or Redis fails the run; elsewhere the tests that
 * need them are skipped with a warning and the embedded-database tests still run.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: { adminUrl: string; runId: string } | null;
    redisUrl: string | null;
  }
}

const inCi = process.env.CI === 'true' || process.env.CI === '1';
const adminUrl = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function postgresAnswers(): Promise<boolean> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

function redisAnswers(): Promise<boolean> {
  const url = new URL(redisUrl);
  return new Promise((resolve) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 6379) });
    socket.setTimeout(3_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
  });
}

async function dropRunDatabases(runId: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE $1`,
      [`bulwark_test_${runId}_%`],
    );
    for (const { datname } of rows) {
      await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
    }
  } finally {
    await client.end();
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runId = randomBytes(4).toString('hex');
  const [hasPostgres, hasRedis] = await Promise.all([postgresAnswers(), redisAnswers()]);
  const missing = [!hasPostgres && `PostgreSQL at ${adminUrl}`, !hasRedis && `Redis at ${redisUrl}`].filter(Boolean);
  if (missing.length > 0) {
    const message = `${missing.join(' and ')} did not answer`;
    if (inCi) throw new Error(`${message}; CI requires them (see README: "Running every test")`);
    console.warn(`\n[bulwark tests] ${message}: tests that need them are SKIPPED. See README: "Running every test".\n`);
  }
  project.provide('postgres', hasPostgres ? { adminUrl, runId } : null);
  project.provide('redisUrl', hasRedis ? redisUrl : null);
  return async () => {
    if (hasPostgres) await dropRunDatabases(runId);
  };
}
