import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { recordAudit, type RecordedAuditEntry } from '../../src/modules/audit/audit.service.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import type { Database } from '../../src/platform/database/database.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createTestPglite } from '../helpers/pglite.js';
import { sampleEntry, tamper } from './helpers.js';

const clock = new ManualClock('2026-05-01T12:00:00Z');
const opened: TestApp[] = [];
afterEach(async () => {
  for (const testApp of opened.splice(0)) await testApp.close();
});

interface AuditApp {
  readonly testApp: TestApp;
  readonly database: Database;
  readonly token: string;
  get(url: string, token?: string): Promise<LightMyRequestResponse>;
}

/**
 * The real app, with the audit routes as app.ts registers them. Operator routes are limited
 * to 10 requests an hour per IP by default; these tests make more, so they raise it unless
 * a test asks for a specific limit.
 */
async function openAuditApp(adminLimit = 1_000): Promise<AuditApp> {
  const token = randomBytes(32).toString('hex');
  const database = await createTestPglite();
  const testApp = await createTestApp({
    database,
    env: { ADMIN_API_TOKEN: token, RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: adminLimit, windowSeconds: 3600 } }) },
  });
  opened.push(testApp);
  expect(testApp.config.secrets.adminApiToken).toBe(token);
  return {
    testApp,
    database,
    token,
    get: (url, bearer = token) => testApp.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${bearer}` } }),
  };
}

async function seed(database: Database, count: number): Promise<RecordedAuditEntry[]> {
  return asSystem(database, async (tx) => {
    const entries: RecordedAuditEntry[] = [];
    for (let index = 1; index <= count; index += 1) {
      clock.advance(1_000);
      entries.push(await recordAudit(tx, sampleEntry(index, { personal: { email: `user${index}@example.com` } }), clock));
    }
    return entries;
  });
}

describe('GET /api/admin/audit', () => {
  it('requires the operator admin token', async () => {
    const { testApp, get } = await openAuditApp();
    for (const url of ['/api/admin/audit', '/api/admin/audit/verify']) {
      const missing = await testApp.app.inject({ method: 'GET', url });
      expect(missing.statusCode, url).toBe(401);
      expect(missing.json().error.code).toBe('UNAUTHENTICATED');
      expect((await get(url, 'a'.repeat(64))).statusCode, url).toBe(401);
      const basic = await testApp.app.inject({ method: 'GET', url, headers: { authorization: 'Basic abc' } });
      expect(basic.statusCode, url).toBe(401);
      expect((await get(url)).statusCode, url).toBe(200);
    }
    // Documented in the OpenAPI document like every route.
    const openapi = (await testApp.app.inject({ method: 'GET', url: '/docs/openapi.json' })).json() as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(['/api/admin/audit', '/api/admin/audit/verify']));
  });

  it('is limited like every operator route (admin.ip, RL-1)', async () => {
    const { testApp, get } = await openAuditApp(2);
    expect((await get('/api/admin/audit')).statusCode).toBe(200);
    expect((await get('/api/admin/audit/verify')).statusCode).toBe(200);
    const limited = await get('/api/admin/audit');
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['retry-after']).toBeDefined();
    expect((await testApp.app.inject({ method: 'GET', url: '/api/admin/audit' })).statusCode).toBe(401);
  });

  it('lists entries newest first in the API shape, page by page with the cursor', async () => {
    const { database, get } = await openAuditApp();
    const entries = await seed(database, 5);
    const seen: Array<Record<string, unknown>> = [];
    let url = '/api/admin/audit?limit=2';
    for (let pages = 0; pages < 10; pages += 1) {
      const response = await get(url);
      expect(response.statusCode).toBe(200);
      expect(response.headers['cache-control']).toBe('no-store');
      const body = response.json() as { items: Array<Record<string, unknown>>; nextCursor: string | null };
      expect(body.items.length).toBeLessThanOrEqual(2);
      seen.push(...body.items);
      if (body.nextCursor === null) break;
      url = `/api/admin/audit?limit=2&cursor=${body.nextCursor}`;
    }
    // Newest first: the seeded entries, then whatever the app recorded at start-up (the plan catalogue).
    expect(seen.slice(0, entries.length).map((item) => item.id)).toEqual(entries.map((entry) => entry.id).reverse());
    const newest = entries[4];
    expect(seen[0]).toEqual({
      id: newest?.id,
      at: newest?.at,
      event: 'api_key.issued',
      actorType: 'user',
      actorId: 'usr_5',
      subjectType: 'api_key',
      subjectId: 'key_5',
      ip: '203.0.113.5',
      metadata: { index: 5, label: 'key 5', email: 'user5@example.com' },
    });
  });

  it('clamps the limit to 1..100 and defaults to 50', async () => {
    const { database, get } = await openAuditApp();
    await seed(database, 105);
    const count = async (query: string) => {
      const body = (await get(`/api/admin/audit${query}`)).json() as { items: unknown[]; nextCursor: string | null };
      return { items: body.items.length, more: body.nextCursor !== null };
    };
    expect(await count('?limit=0')).toEqual({ items: 1, more: true });
    expect(await count('?limit=-5')).toEqual({ items: 1, more: true });
    expect(await count('?limit=1000')).toEqual({ items: 100, more: true });
    expect(await count('')).toEqual({ items: 50, more: true });
  });

  it('answers 400 naming the field for a bad limit or cursor', async () => {
    const { get } = await openAuditApp();
    for (const [query, field] of [
      ['limit=abc', 'query.limit'],
      ['limit=1.5', 'query.limit'],
      ['cursor=abc', 'query.cursor'],
      ['cursor=0', 'query.cursor'],
      ['cursor=99999999999999999999', 'query.cursor'],
    ] as const) {
      const response = await get(`/api/admin/audit?${query}`);
      expect(response.statusCode, query).toBe(400);
      const { error } = response.json() as { error: { code: string; details: Array<{ field: string }> } };
      expect(error.code).toBe('VALIDATION_FAILED');
      expect(error.details[0]?.field).toBe(field);
    }
  });
});

describe('GET /api/admin/audit/verify', () => {
  it('answers {valid:true, checked}, then {valid:false, brokenAt} after tampering, and raises an alert', async () => {
    const { database, get, testApp } = await openAuditApp();
    const alertLines = () => testApp.logs.lines.filter((line) => line.includes('"alert":true'));
    // The app records some entries at start-up (the plan catalogue seed).
    const atStart = (await get('/api/admin/audit/verify')).json().checked as number;
    const entries = await seed(database, 4);
    const valid = await get('/api/admin/audit/verify');
    expect(valid.statusCode).toBe(200);
    expect(valid.json()).toEqual({ valid: true, checked: atStart + 4 });
    expect(alertLines()).toEqual([]);

    await tamper(database, `UPDATE audit_log SET subject_id = 'key_other' WHERE id = $1`, [entries[2]?.id]);
    const broken = await get('/api/admin/audit/verify');
    expect(broken.statusCode).toBe(200);
    expect(broken.json()).toEqual({ valid: false, brokenAt: entries[2]?.id });
    await expect.poll(() => alertLines().length).toBe(1);
    const alert = JSON.parse(alertLines()[0] ?? '{}') as Record<string, unknown>;
    expect(alert).toMatchObject({ level: 60, alert: true, severity: 'critical', alertKind: 'audit_chain_broken', brokenAt: entries[2]?.id });
  });
});
