import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { resolveDevelopmentSecrets } from '../../src/config/development-secrets.js';
import { createDependencies, type DependencyOverrides } from '../../src/dependencies.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { createLogger } from '../../src/platform/observability/logger.js';
import { usageRoutes } from '../../src/modules/usage/usage.routes.js';
import { UsageService, type UsageServiceOptions } from '../../src/modules/usage/usage.service.js';
import { LogCapture, type TestApp } from '../helpers/app.js';
import { createTestPglite } from '../helpers/pglite.js';

/** Generous limits, so only the test that checks a limit ever meets one. */
export const GENEROUS_LIMITS = {
  'admin.ip': { limit: 1_000, windowSeconds: 3600 },
  'usage_report.account': { limit: 1_000, windowSeconds: 3600 },
  'balance_read.user': { limit: 1_000, windowSeconds: 60 },
};

export interface UsageTestApp extends TestApp {
  readonly usage: UsageService;
  readonly adminHeaders: Record<string, string>;
}

export interface UsageTestAppOptions extends Omit<DependencyOverrides, 'logger'> {
  readonly env?: Record<string, string>;
  readonly service?: Omit<UsageServiceOptions, 'database' | 'clock'>;
}

/**
 * createTestApp (test/helpers/app.ts) with the usage routes registered the way app.ts
 * will register them: the routes need the app's own rate limiter, database and clock,
 * which createTestApp's beforeReady cannot reach, so this mirrors it with a hook after
 * createDependencies.
 */
export async function createUsageTestApp(options: UsageTestAppOptions = {}): Promise<UsageTestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-usage-test-'));
  const { config } = resolveDevelopmentSecrets(
    loadConfig({
      NODE_ENV: 'test',
      DATA_DIR: dataDir,
      LOG_LEVEL: 'info',
      JOBS_ENABLED: 'false',
      RATE_LIMITS: JSON.stringify(GENEROUS_LIMITS),
      ...options.env,
    }),
  );
  const logs = new LogCapture();
  const logger = createLogger(config, logs);
  const database = options.database ?? (config.database.kind === 'pglite' ? await createTestPglite() : undefined);
  const { service, env: _env, ...overrides } = options;
  const deps = await createDependencies(config, { ...overrides, logger, ...(database ? { database } : {}) });
  const app = await buildApp(deps);
  const usage = new UsageService({ database: deps.database, clock: deps.clock, ...service });
  // Once app.ts registers the usage routes itself, they are used as wired there (default options).
  if (!app.hasRoute({ method: 'POST', url: '/api/usage' })) {
    await app.register(usageRoutes, { service: usage, limiter: deps.rateLimiting.limiter });
  }
  await app.ready();
  return {
    app,
    deps,
    config,
    logs,
    usage,
    adminHeaders: { authorization: `Bearer ${config.secrets.adminApiToken ?? ''}` },
    async close() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An account created by the operator, with an API key: headers for X-API-Key. */
export async function accountWithKey(testApp: UsageTestApp, name = 'Usage Co'): Promise<{ accountId: string; headers: Record<string, string> }> {
  const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: testApp.adminHeaders, payload: { name } });
  if (created.statusCode !== 201) throw new Error(`account creation failed: ${created.statusCode} ${created.body}`);
  const accountId = created.json().account.id as string;
  const issued = await testApp.app.inject({
    method: 'POST',
    url: `/api/admin/accounts/${accountId}/keys`,
    headers: testApp.adminHeaders,
    payload: { label: 'usage' },
  });
  if (issued.statusCode !== 201) throw new Error(`key issue failed: ${issued.statusCode} ${issued.body}`);
  return { accountId, headers: { 'x-api-key': issued.json().secret as string } };
}

/** A signed-up user (owner of a new account): Bearer headers. */
export async function signedUpUser(testApp: UsageTestApp, email: string): Promise<{ accountId: string; headers: Record<string, string> }> {
  const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: 'a sturdy passphrase 42' } });
  if (response.statusCode !== 201) throw new Error(`signup failed: ${response.statusCode} ${response.body}`);
  const body = response.json();
  return { accountId: body.account.id as string, headers: { authorization: `Bearer ${body.accessToken as string}` } };
}

export interface EventInput {
  idempotencyKey: string;
  jobType: string;
  jobId?: string;
  quantity?: number;
  description?: string;
  metadata?: Record<string, string | number | boolean>;
}

export function events(count: number, prefix = 'evt', extra: Partial<EventInput> = {}): EventInput[] {
  return Array.from({ length: count }, (_, index) => ({
    idempotencyKey: `${prefix}-${index}`,
    jobType: 'story.generate',
    jobId: `job-${prefix}-${index}`,
    quantity: 1 + (index % 3),
    description: `event ${index}`,
    metadata: { model: 'small', tokens: 10 + index },
    ...extra,
  }));
}

export async function countReports(database: Database, accountId?: string): Promise<number> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM usage_reports WHERE $1::text IS NULL OR account_id = $1`,
      [accountId ?? null],
    ),
  );
  return rows[0]?.count ?? 0;
}

export async function auditEvents(database: Database, event: string, accountId?: string): Promise<Array<{ account_id: string | null; metadata: Record<string, unknown> }>> {
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ account_id: string | null; metadata: Record<string, unknown> }>(
      `SELECT account_id, metadata FROM audit_log WHERE event = $1 AND ($2::text IS NULL OR account_id = $2) ORDER BY seq`,
      [event, accountId ?? null],
    ),
  );
  return rows;
}
