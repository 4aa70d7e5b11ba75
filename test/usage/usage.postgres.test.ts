import { afterAll, beforeAll, expect, it } from 'vitest';
import { APPLICATION_ROLE } from '../../src/platform/database/access.js';
import { accountWithKey, auditEvents, countReports, createUsageTestApp, events, GENEROUS_LIMITS, type UsageTestApp } from './helpers.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * USE-1 and USE-6 the way production runs: two app instances, each with its own pool,
 * on one PostgreSQL database, receiving the same batch at the same moment.
 */
describeWithPostgres('usage reports across two instances on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let first: UsageTestApp;
  let second: UsageTestApp;
  const limits = JSON.stringify(GENEROUS_LIMITS);

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    first = await createUsageTestApp({ env: { DATABASE_URL: scratch.url, RATE_LIMITS: limits } });
    // Both instances share the pepper (to verify each other's keys) and the admin token.
    second = await createUsageTestApp({
      env: {
        DATABASE_URL: scratch.url,
        RATE_LIMITS: limits,
        API_KEY_PEPPER: first.config.secrets.apiKeyPepper ?? '',
        ADMIN_API_TOKEN: first.config.secrets.adminApiToken ?? '',
      },
    });
  });
  afterAll(async () => {
    await first?.close();
    await second?.close();
    await scratch?.drop();
  });

  it('stores a batch sent to both instances at once exactly once, and audits its anomaly once', async () => {
    const { accountId, headers } = await accountWithKey(first);
    const batch = events(500, 'race');
    const answers = await Promise.all(
      [first, second].map((instance) => instance.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: batch } })),
    );
    for (const answer of answers) expect(answer.statusCode, answer.body).toBe(202);
    const results = answers.map((answer) => answer.json() as { accepted: number; duplicates: number });
    expect(results.reduce((sum, result) => sum + result.accepted, 0)).toBe(500);
    expect(results.reduce((sum, result) => sum + result.duplicates, 0)).toBe(500);
    expect(await countReports(first.deps.database, accountId)).toBe(500);
    // 500 events on a day with no history crosses the line once, whichever batch won.
    expect(await auditEvents(first.deps.database, 'usage.anomaly', accountId)).toHaveLength(1);
  });

  it('overlapping batches in opposite orders neither deadlock nor double count', async () => {
    const { accountId, headers } = await accountWithKey(first, 'Overlap Co');
    const shared = events(300, 'shared');
    const left = [...events(100, 'left'), ...shared];
    const right = [...shared].reverse().concat(events(100, 'right'));
    for (let round = 0; round < 3; round += 1) {
      const suffix = `r${round}`;
      const rename = (list: typeof left) => list.map((event) => ({ ...event, idempotencyKey: `${event.idempotencyKey}-${suffix}` }));
      const answers = await Promise.all([
        first.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: rename(left) } }),
        second.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: rename(right) } }),
      ]);
      for (const answer of answers) expect(answer.statusCode, answer.body).toBe(202);
      const accepted = answers.map((answer) => (answer.json() as { accepted: number }).accepted);
      expect(accepted[0]! + accepted[1]!).toBe(500);
    }
    expect(await countReports(first.deps.database, accountId)).toBe(1500);
  });

  it('works as the application role: without an account context no usage row is visible', async () => {
    const { rows } = await first.deps.database.query<{ role: string; count: number }>(
      'SELECT current_user AS role, (SELECT count(*)::int FROM usage_reports) AS count',
    );
    expect(rows[0]).toEqual({ role: APPLICATION_ROLE, count: 0 });
    const list = await second.app.inject({ method: 'GET', url: '/api/usage?limit=1000', headers: (await accountWithKey(second, 'Empty Co')).headers });
    expect(list.json()).toEqual({ items: [], nextCursor: null });
  });
});
