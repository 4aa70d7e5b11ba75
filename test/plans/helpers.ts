import type { Database } from '../../src/platform/database/database.js';
import { ManualClock } from '../../src/platform/clock.js';
import type { PlanCatalogue } from '../../src/modules/plans/plan-catalogue.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

export const RATE_LIMITS = JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } });

export interface PlansTestApp {
  readonly testApp: TestApp;
  readonly catalogue: PlanCatalogue;
  /** The database the plans module works on (on PostgreSQL: its own pool, as the application role). */
  readonly database: Database;
  readonly clock: ManualClock;
  readonly admin: { authorization: string };
  close(): Promise<void>;
}

/**
 * The real app, with the plans module as app.ts and dependencies.ts wire it: the
 * catalogue seeded at start-up, its cache and change feed, the plan routes.
 */
export async function createPlansApp(options: { databaseUrl?: string; env?: Record<string, string> } = {}): Promise<PlansTestApp> {
  const clock = new ManualClock('2026-03-01T00:00:00Z');
  const env = { RATE_LIMITS, ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}), ...options.env };
  const testApp = await createTestApp({ env, clock });
  return {
    testApp,
    catalogue: testApp.deps.plans,
    database: testApp.deps.database,
    clock,
    admin: { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` },
    close: () => testApp.close(),
  };
}
