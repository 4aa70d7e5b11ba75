// The servers a scenario can point at. Each is started once per run, as its own process,
// and reused by every scenario and round. `prepare` only describes the process (the runner
// spawns it), so an aborted run never leaves a server behind. A system may also return
// `secrets` (name -> value) for the setup steps in scenarios.mjs; the runner never prints
// them and refuses to write RESULTS.md if one appears in it.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bulwarkEnv, bulwarkNodeArgs } from './lib/child.mjs';
import { freePort } from './lib/net.mjs';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const PROJECT_DIR = path.resolve(BENCH_DIR, '..');

/** A minimal environment: nothing from the caller's shell (SENTRY_DSN, ALLOWED_HOSTS...) leaks in. */
function baseEnv() {
  return { PATH: process.env.PATH ?? '', ...(process.env.SYSTEMROOT ? { SYSTEMROOT: process.env.SYSTEMROOT } : {}) };
}

/**
 * usage_report.account (default 60 reports an hour per account) would answer 429 almost at
 * once under load; 1,000,000 an hour is the most RATE_LIMITS accepts (MAX_LIMIT).
 */
const USAGE_RATE_LIMITS = JSON.stringify({ 'usage_report.account': { limit: 1_000_000, windowSeconds: 3600 } });

export const systems = {
  bare: {
    label: 'bare node:http',
    description: 'bench/bare-server.mjs: node:http, one handler, same status, content type and body',
    readyPath: '/health',
    async prepare({ settings }) {
      const port = await freePort(settings.host);
      return {
        name: 'bare node:http reference',
        command: process.execPath,
        args: [path.join(BENCH_DIR, 'bare-server.mjs')],
        cwd: PROJECT_DIR,
        env: { ...baseEnv(), HOST: settings.host, PORT: String(port) },
        host: settings.host,
        port,
      };
    },
  },
  bulwark: {
    label: 'Bulwark',
    description:
      'node dist/server.js (NODE_ENV=development, LOG_LEVEL=warn, JOBS_ENABLED=false, STRIPE_SANDBOX_START=false, PostgreSQL with the default pool ' +
      '(DATABASE_POOL_MAX 10); ADMIN_API_TOKEN a fresh random 64-hex value per run, used only by the setup step and never written out; ' +
      `RATE_LIMITS=${USAGE_RATE_LIMITS}: the per-account usage report limit raised from its default of 60 an hour so that ` +
      'the usage ingestion benchmark measures ingestion, not the limiter; every other limit at its default)',
    readyPath: '/health',
    async prepare({ settings, databaseUrl, dataDir }) {
      const port = await freePort(settings.host);
      // The operator token for this run only: setup steps use it to create what they need.
      const adminToken = randomBytes(32).toString('hex');
      return {
        name: 'Bulwark',
        command: process.execPath,
        args: [...bulwarkNodeArgs(), path.join(PROJECT_DIR, 'dist', 'server.js')],
        cwd: PROJECT_DIR,
        env: bulwarkEnv({ settings, port, dataDir, databaseUrl, adminToken, rateLimits: USAGE_RATE_LIMITS }),
        host: settings.host,
        port,
        secrets: { adminToken },
      };
    },
  },
};
