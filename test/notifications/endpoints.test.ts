import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { guardedLookup, isPublicAddress, webhookUrlProblem } from '../../src/modules/notifications/url-policy.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { adminHeaders, createEndpoint, NOTIFY_LIMITS } from './helpers.js';

describe('webhook endpoint routes (OUT-1, operator)', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-07-04T10:00:00Z');
  const count = async (sql: string): Promise<number> =>
    (await asSystem(testApp.deps.database, (tx) => tx.query<{ n: number }>(sql))).rows[0]?.n ?? -1;

  beforeAll(async () => {
    testApp = await createTestApp({ clock, env: { RATE_LIMITS: NOTIFY_LIMITS } });
  });
  afterAll(async () => {
    await testApp.close();
  });

  it('refuses bad input with a 400 naming the field, and creates nothing', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{}, 'url'],
      [{ url: 'ftp://example.com/hook' }, 'url'],
      [{ url: 'not a url' }, 'url'],
      // Built at run time: a URL with credentials in the source would trip the secret scan (CFG-3).
      [{ url: `http://${['someone', 'pw'].join(':')}@example.com/hook` }, 'url'],
      [{ url: 'https://example.com/hook', eventTypes: ['auth.password_reset'] }, 'eventTypes[0]'],
      [{ url: 'https://example.com/hook', eventTypes: ['nope'] }, 'eventTypes[0]'],
      [{ url: 'https://example.com/hook', description: 'x'.repeat(501) }, 'description'],
      [{ url: 'https://example.com/hook', secret: 'whsec_mine' }, 'secret'],
      [{ url: 'https://example.com/hook', eventTypes: 'payment.failed' }, 'eventTypes'],
    ];
    for (const [payload, field] of cases) {
      const response = await testApp.app.inject({ method: 'POST', url: '/api/admin/webhook-endpoints', headers: adminHeaders(testApp), payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().error.code).toBe('VALIDATION_FAILED');
      expect(response.json().error.details[0].field, JSON.stringify(payload)).toBe(field);
    }
    expect(await count('SELECT count(*)::int AS n FROM webhook_endpoints')).toBe(0);
  });

  it('are in the OpenAPI document', async () => {
    const document = (await testApp.app.inject({ method: 'GET', url: '/docs/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(document.paths['/api/admin/webhook-endpoints'] ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(document.paths['/api/admin/webhook-endpoints/{id}'] ?? {}).sort()).toEqual(['delete', 'patch']);
    expect(Object.keys(document.paths['/api/admin/webhook-endpoints/{id}/deliveries'] ?? {})).toEqual(['get']);
    expect(Object.keys(document.paths['/api/admin/notification-deliveries/{id}/redeliver'] ?? {})).toEqual(['post']);
  });

  it('is for the operator only', async () => {
    const anonymous = await testApp.app.inject({ method: 'GET', url: '/api/admin/webhook-endpoints' });
    expect(anonymous.statusCode).toBe(401);
    const wrong = await testApp.app.inject({ method: 'POST', url: '/api/admin/webhook-endpoints', headers: { authorization: 'Bearer not-the-token' }, payload: { url: 'http://127.0.0.1/x' } });
    expect(wrong.statusCode).toBe(401);
  });

  it('shows the secret once, lists without secrets, changes and disables, audits every change without the secret', async () => {
    const created = await testApp.app.inject({
      method: 'POST',
      url: '/api/admin/webhook-endpoints',
      headers: adminHeaders(testApp),
      payload: { url: 'http://127.0.0.1:9/hooks?team=7', eventTypes: ['subscription.activated', 'subscription.canceled'], description: 'VPN provisioning' },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const { endpoint, secret } = created.json() as { endpoint: { id: string }; secret: string };
    expect(endpoint).toEqual({
      id: expect.stringMatching(/^whe_/),
      url: 'http://127.0.0.1:9/hooks?team=7',
      description: 'VPN provisioning',
      eventTypes: ['subscription.activated', 'subscription.canceled'],
      enabled: true,
      createdAt: '2026-07-04T10:00:00.000Z',
      updatedAt: '2026-07-04T10:00:00.000Z',
    });

    const list = await testApp.app.inject({ method: 'GET', url: '/api/admin/webhook-endpoints', headers: adminHeaders(testApp) });
    expect(list.json().items).toEqual([endpoint]);
    expect(list.body).not.toContain(secret.slice(6));

    clock.advance(1_000);
    const patched = await testApp.app.inject({
      method: 'PATCH',
      url: `/api/admin/webhook-endpoints/${endpoint.id}`,
      headers: adminHeaders(testApp),
      payload: { eventTypes: [], description: null },
    });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(patched.json().endpoint).toMatchObject({ eventTypes: [], description: null, enabled: true, updatedAt: '2026-07-04T10:00:01.000Z' });
    const empty = await testApp.app.inject({ method: 'PATCH', url: `/api/admin/webhook-endpoints/${endpoint.id}`, headers: adminHeaders(testApp), payload: {} });
    expect(empty.statusCode).toBe(400);
    const unknown = await testApp.app.inject({ method: 'PATCH', url: '/api/admin/webhook-endpoints/whe_missing', headers: adminHeaders(testApp), payload: { enabled: true } });
    expect(unknown.statusCode).toBe(404);
    const disabled = await testApp.app.inject({ method: 'DELETE', url: `/api/admin/webhook-endpoints/${endpoint.id}`, headers: adminHeaders(testApp) });
    expect(disabled.json().endpoint.enabled).toBe(false);
    const log = await testApp.app.inject({ method: 'GET', url: `/api/admin/webhook-endpoints/${endpoint.id}/deliveries?limit=500`, headers: adminHeaders(testApp) });
    expect(log.json()).toEqual({ items: [], nextCursor: null });
    expect((await testApp.app.inject({ method: 'GET', url: '/api/admin/webhook-endpoints/whe_missing/deliveries', headers: adminHeaders(testApp) })).statusCode).toBe(404);

    const audit = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; metadata: Record<string, unknown> }>(`SELECT event, metadata FROM audit_log WHERE subject_id = $1 ORDER BY seq`, [endpoint.id]),
    );
    expect(audit.rows.map((row) => row.event)).toEqual(['webhook_endpoint.created', 'webhook_endpoint.updated', 'webhook_endpoint.disabled']);
    expect(audit.rows[0]?.metadata).toEqual({ host: '127.0.0.1:9', eventTypes: ['subscription.activated', 'subscription.canceled'] });
    expect(JSON.stringify(audit.rows)).not.toContain(secret.slice(6));
    const stored = await asSystem(testApp.deps.database, (tx) => tx.query(`SELECT 1 FROM audit_log WHERE metadata::text LIKE '%whsec_%'`));
    expect(stored.rowCount).toBe(0);
  });

  it('pages the delivery log newest first', async () => {
    const { id } = await createEndpoint(testApp, { url: 'http://127.0.0.1:9/paged' });
    for (let index = 0; index < 3; index++) {
      clock.advance(1_000);
      await asSystem(testApp.deps.database, (tx) => testApp.deps.notifier.emit(tx, { type: 'payment.succeeded', accountId: null, data: { index } }));
    }
    const first = await testApp.app.inject({ method: 'GET', url: `/api/admin/webhook-endpoints/${id}/deliveries?limit=2`, headers: adminHeaders(testApp) });
    const page = first.json() as { items: { createdAt: string; status: string }[]; nextCursor: string };
    expect(page.items.map((item) => item.createdAt)).toEqual(['2026-07-04T10:00:04.000Z', '2026-07-04T10:00:03.000Z']);
    expect(page.items.every((item) => item.status === 'pending')).toBe(true);
    const second = await testApp.app.inject({ method: 'GET', url: `/api/admin/webhook-endpoints/${id}/deliveries?limit=2&cursor=${page.nextCursor}`, headers: adminHeaders(testApp) });
    expect(second.json().items.map((item: { createdAt: string }) => item.createdAt)).toEqual(['2026-07-04T10:00:02.000Z']);
    expect(second.json().nextCursor).toBeNull();
  });
});

describe('where webhooks may go (SSRF)', () => {
  it('outside production: any http(s) URL', () => {
    expect(webhookUrlProblem('http://127.0.0.1:3000/hooks', { strict: false })).toBeUndefined();
    expect(webhookUrlProblem('http://localhost/hooks', { strict: false })).toBeUndefined();
  });

  it('in production: https and public hosts only', () => {
    expect(webhookUrlProblem('https://hooks.example.com/bulwark', { strict: true })).toBeUndefined();
    expect(webhookUrlProblem('https://93.184.216.34/x', { strict: true })).toBeUndefined();
    for (const url of [
      'http://hooks.example.com/bulwark',
      'https://127.0.0.1/x',
      'https://10.1.2.3/x',
      'https://172.20.0.1/x',
      'https://192.168.1.1/x',
      'https://169.254.169.254/latest/meta-data',
      'https://100.64.0.1/x',
      'https://[::1]/x',
      'https://[fd00::1]/x',
      'https://[::ffff:127.0.0.1]/x',
      'https://localhost/x',
      'https://intranet/x',
    ]) {
      expect(webhookUrlProblem(url, { strict: true }), url).toBeDefined();
    }
    expect(isPublicAddress('8.8.8.8')).toBe(true);
    expect(isPublicAddress('2606:4700::1111')).toBe(true);
    expect(isPublicAddress('::ffff:10.0.0.1')).toBe(false);
  });

  it('refuses, at connection time, a name that resolves to a non-public address', async () => {
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) => guardedLookup('localhost', {}, (problem) => resolve(problem)));
    expect(error?.code).toBe('ADDRESS_NOT_ALLOWED');
  });
});
