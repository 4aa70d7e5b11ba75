import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem, forAccount } from '../../src/platform/database/access.js';
import {
  accountWithKey,
  auditEvents,
  countReports,
  createUsageTestApp,
  events,
  GENEROUS_LIMITS,
  signedUpUser,
  type UsageTestApp,
} from './helpers.js';

const DAY = 24 * 60 * 60 * 1000;

describe('usage reporting (USE-1..5)', () => {
  let testApp: UsageTestApp;

  beforeAll(async () => {
    testApp = await createUsageTestApp();
  });
  afterAll(async () => {
    await testApp?.close();
  });

  const post = (headers: Record<string, string>, payload: unknown) =>
    testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: payload as Record<string, unknown> });

  it('stores a batch of 500 once: the replay is all duplicates (USE-1)', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    const batch = events(500);
    const first = await post(headers, { events: batch });
    expect(first.statusCode, first.body).toBe(202);
    expect(first.json()).toEqual({ accepted: 500, duplicates: 0 });
    const replay = await post(headers, { events: batch });
    expect(replay.statusCode, replay.body).toBe(202);
    expect(replay.json()).toEqual({ accepted: 0, duplicates: 500 });
    expect(await countReports(testApp.deps.database, accountId)).toBe(500);
  });

  it('counts a key repeated within one batch as a duplicate; a partly new batch stores only the new events', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    const [a, b] = events(2, 'in-batch');
    const response = await post(headers, { events: [a, b, a] });
    expect(response.json()).toEqual({ accepted: 2, duplicates: 1 });
    const more = await post(headers, { events: [...events(2, 'in-batch'), ...events(3, 'later')] });
    expect(more.json()).toEqual({ accepted: 3, duplicates: 2 });
    expect(await countReports(testApp.deps.database, accountId)).toBe(5);
  });

  it('refuses a key reused for a different event (422) and stores nothing of that batch', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    const [original] = events(1, 'reuse');
    expect((await post(headers, { events: [original] })).statusCode).toBe(202);
    const changed = { ...original, quantity: 99 };
    const response = await post(headers, { events: [...events(3, 'fresh'), changed] });
    expect(response.statusCode, response.body).toBe(422);
    expect(response.json().error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(response.json().error.details[0].field).toBe('events[3].idempotencyKey');
    const inBatch = await post(headers, { events: [...events(1, 'twice'), { ...events(1, 'twice')[0], description: 'other' }] });
    expect(inBatch.statusCode).toBe(422);
    expect(inBatch.json().error.details[0].field).toBe('events[1].idempotencyKey');
    expect(await countReports(testApp.deps.database, accountId)).toBe(1);
  });

  it('refuses a metadata key outside the allowlist, naming it, and stores nothing of the batch (USE-4)', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    const batch = events(5, 'meta');
    batch[3] = { ...batch[3]!, metadata: { model: 'small', secret_prompt: 'hello' } };
    const response = await post(headers, { events: batch });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json().error.code).toBe('VALIDATION_FAILED');
    expect(response.json().error.details).toEqual([{ field: 'events[3].metadata.secret_prompt', message: 'is not an allowed metadata key' }]);
    expect(await countReports(testApp.deps.database, accountId)).toBe(0);
  });

  it('validates bodies strictly and names the batch item (HTTP-5)', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    const cases: Array<[unknown, string]> = [
      [{ events: [] }, 'events'],
      [{ events: events(1001) }, 'events'],
      [{ events: [...events(2), { ...events(1, 'q')[0], quantity: 0 }] }, 'events[2].quantity'],
      [{ events: [{ ...events(1)[0], quantity: '2' }] }, 'events[0].quantity'],
      [{ events: [{ ...events(1)[0], quantity: 1_000_001 }] }, 'events[0].quantity'],
      [{ events: [{ ...events(1)[0], jobType: 'Bad Type' }] }, 'events[0].jobType'],
      [{ events: [{ ...events(1)[0], idempotencyKey: 'k'.repeat(129) }] }, 'events[0].idempotencyKey'],
      [{ events: [{ ...events(1)[0], description: 'd'.repeat(501) }] }, 'events[0].description'],
      [{ events: [{ ...events(1)[0], metadata: { model: { nested: true } } }] }, 'events[0].metadata.model'],
      [{ events: [{ ...events(1)[0], accountId: 'acct_other' }] }, 'events[0].accountId'],
      [{ events: events(1), accountId: 'acct_other' }, 'accountId'],
    ];
    for (const [payload, field] of cases) {
      const response = await post(headers, payload);
      expect(response.statusCode, `${field}: ${response.body}`).toBe(400);
      expect(response.json().error.details[0].field).toBe(field);
    }
    const tooManyKeys = Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`k${index}`, index]));
    expect((await post(headers, { events: [{ ...events(1)[0], metadata: tooManyKeys }] })).statusCode).toBe(400);
    expect(await countReports(testApp.deps.database, accountId)).toBe(0);
  });

  it('needs an account principal: anonymous 401, operator 403', async () => {
    expect((await post({}, { events: events(1) })).statusCode).toBe(401);
    expect((await post(testApp.adminHeaders, { events: events(1) })).statusCode).toBe(403);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/usage' })).statusCode).toBe(401);
  });

  it('clamps limit to 1..100 and pages newest first without gaps or repeats (USE-2)', async () => {
    const { headers } = await accountWithKey(testApp);
    // Several batches so that created_at differs between some rows and ties within others.
    for (let batch = 0; batch < 3; batch += 1) {
      expect((await post(headers, { events: events(40, `page${batch}`) })).statusCode).toBe(202);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const get = (query: string) => testApp.app.inject({ method: 'GET', url: `/api/usage${query}`, headers });
    const zero = await get('?limit=0');
    expect(zero.statusCode, zero.body).toBe(200);
    expect(zero.json().items).toHaveLength(1);
    const negative = await get('?limit=-5');
    expect(negative.json().items).toHaveLength(1);
    const big = await get('?limit=1000');
    expect(big.statusCode).toBe(200);
    expect(big.json().items).toHaveLength(100);
    expect(big.json().nextCursor).toEqual(expect.any(String));
    expect((await get('?limit=ten')).statusCode).toBe(400);
    expect((await get('?cursor=not-a-cursor')).statusCode).toBe(400);
    expect((await get('')).json().items).toHaveLength(50);

    const seen: string[] = [];
    const createdAt: string[] = [];
    let cursor: string | null = null;
    do {
      const page: ReturnType<typeof JSON.parse> = (await get(`?limit=7${cursor ? `&cursor=${cursor}` : ''}`)).json();
      for (const item of page.items as Array<{ id: string; createdAt: string }>) {
        seen.push(item.id);
        createdAt.push(item.createdAt);
      }
      cursor = page.nextCursor as string | null;
    } while (cursor);
    expect(seen).toHaveLength(120);
    expect(new Set(seen).size).toBe(120);
    expect([...createdAt].sort().reverse()).toEqual(createdAt);
  });

  it('shows each account only its own reports (ACC-2, ACC-3)', async () => {
    const a = await signedUpUser(testApp, 'usage-a@example.com');
    const b = await accountWithKey(testApp, 'B');
    expect((await post(a.headers, { events: events(3, 'same-key') })).json()).toEqual({ accepted: 3, duplicates: 0 });
    // Idempotency keys are scoped per account: B's identical keys are new events.
    expect((await post(b.headers, { events: events(2, 'same-key') })).json()).toEqual({ accepted: 2, duplicates: 0 });
    const listA = (await testApp.app.inject({ method: 'GET', url: '/api/usage?limit=100', headers: a.headers })).json();
    const listB = (await testApp.app.inject({ method: 'GET', url: '/api/usage?limit=100', headers: b.headers })).json();
    expect(listA.items).toHaveLength(3);
    expect(listB.items).toHaveLength(2);
    const idsA = new Set((listA.items as Array<{ id: string }>).map((item) => item.id));
    expect((listB.items as Array<{ id: string }>).some((item) => idsA.has(item.id))).toBe(false);
    // Row-level security: B's context sees none of A's rows even without a filter.
    const visible = await forAccount(testApp.deps.database, b.accountId, (tx) =>
      tx.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_reports WHERE account_id = $1', [a.accountId]),
    );
    expect(visible.rows[0]?.count).toBe(0);
    const outside = await testApp.deps.database.query<{ count: number }>('SELECT count(*)::int AS count FROM usage_reports');
    expect(outside.rows[0]?.count).toBe(0);
  });

  it('exposes only the USE-3 fields, never metadata or quantity', async () => {
    const { headers } = await accountWithKey(testApp);
    await post(headers, { events: [{ idempotencyKey: 'only', jobType: 'book.render', metadata: { model: 'secret-model', region: 'eu' } }] });
    const response = await testApp.app.inject({ method: 'GET', url: '/api/usage', headers });
    const [item] = response.json().items;
    expect(Object.keys(item).sort()).toEqual(['createdAt', 'creditsUsed', 'description', 'id', 'jobId', 'jobType', 'status']);
    expect(item).toMatchObject({ jobId: null, jobType: 'book.render', creditsUsed: 0, status: 'recorded', description: null });
    expect(item.id).toMatch(/^use_/);
    expect(response.body).not.toContain('secret-model');
    expect(response.headers['cache-control']).toBe('no-store');
  });
});

describe('usage report rate limit (RL-1)', () => {
  let testApp: UsageTestApp | undefined;
  afterEach(async () => {
    await testApp?.close();
  });

  it('limits reports per account, a batch counting once; the refused batch stores nothing', async () => {
    const limits = { ...GENEROUS_LIMITS, 'usage_report.account': { limit: 2, windowSeconds: 3600 } };
    testApp = await createUsageTestApp({ env: { RATE_LIMITS: JSON.stringify(limits) } });
    const { accountId, headers } = await accountWithKey(testApp);
    const other = await accountWithKey(testApp, 'Other');
    const post = (h: Record<string, string>, prefix: string) =>
      testApp!.app.inject({ method: 'POST', url: '/api/usage', headers: h, payload: { events: events(100, prefix) } });
    expect((await post(headers, 'one')).statusCode).toBe(202);
    expect((await post(headers, 'two')).statusCode).toBe(202);
    const refused = await post(headers, 'three');
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBeDefined();
    expect(await countReports(testApp.deps.database, accountId)).toBe(200);
    // Another account has its own budget.
    expect((await post(other.headers, 'one')).statusCode).toBe(202);
  });
});

describe('usage retention (USE-5)', () => {
  let testApp: UsageTestApp;
  const clock = new ManualClock('2026-01-01T12:00:00Z');

  beforeAll(async () => {
    testApp = await createUsageTestApp({ clock });
  });
  afterAll(async () => {
    await testApp?.close();
  });

  it('DELETE /api/usage/cleanup deletes only reports older than N days, audited; operators only', async () => {
    const { accountId, headers } = await accountWithKey(testApp);
    const post = (prefix: string, count: number) =>
      testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(count, prefix) } });
    clock.set('2026-01-01T12:00:00Z');
    expect((await post('old', 3)).statusCode).toBe(202);
    clock.set('2026-03-01T12:00:00Z'); // 59 days later
    expect((await post('middle', 2)).statusCode).toBe(202);
    clock.set('2026-04-05T12:00:00Z'); // old: 94 days, middle: 35 days
    expect((await post('new', 4)).statusCode).toBe(202);

    const cleanup = (options: { url?: string; payload?: Record<string, unknown>; headers?: Record<string, string> } = {}) =>
      testApp.app.inject({
        method: 'DELETE',
        url: options.url ?? '/api/usage/cleanup',
        headers: options.headers ?? testApp.adminHeaders,
        ...(options.payload ? { payload: options.payload } : {}),
      });
    expect((await cleanup({ headers })).statusCode).toBe(403);
    expect((await cleanup({ headers: {} })).statusCode).toBe(401);
    expect((await cleanup({ payload: { olderThanDays: 0 } })).statusCode).toBe(400);
    expect((await cleanup({ url: '/api/usage/cleanup?olderThanDays=3651' })).statusCode).toBe(400);
    expect((await cleanup({ payload: { olderThanDays: '30' } })).statusCode).toBe(400);

    const byDefault = await cleanup();
    expect(byDefault.statusCode, byDefault.body).toBe(200);
    expect(byDefault.json()).toEqual({ deleted: 3 });
    expect(await countReports(testApp.deps.database, accountId)).toBe(6);

    const byBody = await cleanup({ payload: { olderThanDays: 30 } });
    expect(byBody.json()).toEqual({ deleted: 2 });
    const byQuery = await cleanup({ url: '/api/usage/cleanup?olderThanDays=30' });
    expect(byQuery.json()).toEqual({ deleted: 0 });
    expect(await countReports(testApp.deps.database, accountId)).toBe(4);

    const audited = await auditEvents(testApp.deps.database, 'usage.cleanup');
    expect(audited.map((entry) => entry.metadata.deleted)).toEqual([3, 2, 0]);
    expect(audited[0]?.metadata.olderThanDays).toBe(90);
  });

  it('the daily retention job deletes reports older than 90 days, once per slot', async () => {
    const { accountId, headers } = await accountWithKey(testApp, 'Job Co');
    clock.set('2026-06-01T00:30:00Z');
    await testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(5, 'job-old') } });
    clock.set('2026-09-15T00:30:00Z');
    await testApp.app.inject({ method: 'POST', url: '/api/usage', headers, payload: { events: events(2, 'job-new') } });
    // The job as dependencies.ts registers it.
    expect(testApp.deps.scheduler.registeredJobs).toContain('usage.retention');
    expect((await testApp.deps.scheduler.tick())['usage.retention']).toBe('ran');
    expect(await countReports(testApp.deps.database, accountId)).toBe(2);
    expect((await testApp.deps.scheduler.tick())['usage.retention']).toBe('not-due');
    const entries = await auditEvents(testApp.deps.database, 'usage.cleanup');
    expect(entries.at(-1)?.metadata).toMatchObject({ olderThanDays: 90 });
    // Every account's old rows went, not just this one's (earlier test's rows are older too).
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ count: number }>(`SELECT count(*)::int AS count FROM usage_reports WHERE created_at < $1`, [new Date(clock.now().getTime() - 90 * DAY)]),
    );
    expect(rows[0]?.count).toBe(0);
  });
});
