import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withTimeout } from './time.mjs';

const CLIENT_OPTIONS = { connectionTimeoutMillis: 5_000, query_timeout: 30_000, statement_timeout: 30_000 };

async function withAdmin(adminUrl, work) {
  const client = new pg.Client({ connectionString: adminUrl, application_name: 'bulwark-bench', ...CLIENT_OPTIONS });
  // An error on an idle admin connection must not crash the benchmark.
  client.on('error', () => {});
  await withTimeout(client.connect(), 10_000, 'connecting to the PostgreSQL admin URL');
  try {
    return await work(client);
  } finally {
    await withTimeout(client.end(), 5_000, 'closing the PostgreSQL admin connection').catch(() => {});
  }
}

/** The admin URL with any password hidden, for messages and the results file. */
export function describeUrl(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** Creates a fresh, uniquely named database for this run; returns { name, url }. */
export async function createScratchDatabase(adminUrl) {
  const name = `bulwark_bench_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE "${name}"`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString() };
}

/** DROP DATABASE ... WITH (FORCE): also ends any connection a killed server left behind. */
export async function dropScratchDatabase(adminUrl, name) {
  if (!/^bulwark_bench_[0-9a-f]+$/.test(name)) throw new Error(`refusing to drop unexpected database ${name}`);
  await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
}
