import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { coversRoute, requestHash } from '../../src/platform/http/idempotency.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

const GENEROUS_LIMITS = { 'admin.ip': { limit: 1_000, windowSeconds: 3600 } };
const ADMIN_ONLY = { auth: { allow: ['admin'] as const } };

describe('the Idempotency-Key header (API.md)', () => {
  let testApp: TestApp;
  let admin: Record<string, string>;
  let accountId: string;
  let apiKey: Record<string, string>;
  const clock = new ManualClock(new Date('2026-12-02T10:00:00Z'));
  let flakyCalls = 0;
  let slowCalls = 0;
  let releaseSlow: () => void = () => undefined;

  beforeAll(async () => {
    testApp = await createTestApp({
      clock,
      env: { RATE_LIMITS: JSON.stringify(GENEROUS_LIMITS) },
      beforeReady: (app) => {
        // Routes added after buildApp pass through its onRoute hooks like any other.
        app.post('/api/admin/test/flaky', { config: ADMIN_ONLY }, async (_request, reply) => {
          flakyCalls += 1;
          if (flakyCalls === 1) return reply.status(500).send({ error: { code: 'INTERNAL_ERROR', message: 'first call fails' } });
          return reply.status(201).send({ call: flakyCalls });
        });
        app.post('/api/admin/test/slow', { config: ADMIN_ONLY }, async () => {
          slowCalls += 1;
          await new Promise<void>((resolve) => {
            releaseSlow = resolve;
          });
          return { call: slowCalls };
        });
      },
    });
    admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken ?? ''}` };
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'Idempotent Co' } });
    accountId = created.json().account.id;
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'idem' } });
    apiKey = { 'x-api-key': issued.json().secret ?? issued.json().key?.secret };
    expect(apiKey['x-api-key']).toMatch(/^cust_/);
  });

  afterAll(async () => {
    await testApp?.close();
  });

  const grant = (payload: unknown, key?: string) =>
    testApp.app.inject({
      method: 'POST',
      url: `/api/admin/accounts/${accountId}/credits`,
      headers: { ...admin, ...(key !== undefined ? { 'idempotency-key': key } : {}) },
      payload: payload as Record<string, unknown>,
    });

  const grantCount = () =>
    asSystem(testApp.deps.database, async (tx) => (await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM credit_grants WHERE account_id = $1', [accountId])).rows[0]?.n);

  it('replays the first answer to a retry with the same key and body, and grants once', async () => {
    const before = await grantCount();
    const first = await grant({ amount: 25, source: 'admin' }, 'grant-1');
    expect(first.statusCode).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    // The same body in another key order is the same request.
    const again = await grant({ source: 'admin', amount: 25 }, 'grant-1');
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    expect(await grantCount()).toBe((before ?? 0) + 1);
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED to the same key with another body, and changes nothing', async () => {
    const before = await grantCount();
    const reused = await grant({ amount: 26, source: 'admin' }, 'grant-1');
    expect(reused.statusCode).toBe(422);
    expect(reused.json().error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await grantCount()).toBe(before);
  });

  it('scopes keys to the principal: an account may use the operator key names', async () => {
    const check = await testApp.app.inject({
      method: 'POST',
      url: '/api/entitlements/check',
      headers: { ...apiKey, 'idempotency-key': 'grant-1' },
      payload: { feature: 'api_calls' },
    });
    expect(check.statusCode).toBe(200);
    expect(check.headers['idempotent-replayed']).toBeUndefined();
  });

  it('without the header every request runs', async () => {
    const before = await grantCount();
    await grant({ amount: 5, source: 'admin' });
    await grant({ amount: 5, source: 'admin' });
    expect(await grantCount()).toBe((before ?? 0) + 2);
  });

  it('refuses a malformed key with 400 naming the header, before anything runs', async () => {
    const before = await grantCount();
    const bad = await grant({ amount: 5, source: 'admin' }, 'has space');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('Idempotency-Key');
    const long = await grant({ amount: 5, source: 'admin' }, 'x'.repeat(256));
    expect(long.statusCode).toBe(400);
    expect(await grantCount()).toBe(before);
  });

  it('keeps no 5xx answer: the retry runs again and its answer is kept', async () => {
    const call = () => testApp.app.inject({ method: 'POST', url: '/api/admin/test/flaky', headers: { ...admin, 'idempotency-key': 'flaky-1' }, payload: {} });
    expect((await call()).statusCode).toBe(500);
    const second = await call();
    expect(second.statusCode).toBe(201);
    expect(second.json()).toEqual({ call: 2 });
    const third = await call();
    expect(third.json()).toEqual({ call: 2 });
    expect(third.headers['idempotent-replayed']).toBe('true');
    expect(flakyCalls).toBe(2);
  });

  it('answers 409 while the first request is still running, then replays its answer', async () => {
    const call = () => testApp.app.inject({ method: 'POST', url: '/api/admin/test/slow', headers: { ...admin, 'idempotency-key': 'slow-1' }, payload: {} });
    const first = call();
    await expect.poll(() => slowCalls).toBe(1);
    const during = await call();
    expect(during.statusCode).toBe(409);
    expect(during.json().error.code).toBe('CONFLICT');
    releaseSlow();
    expect((await first).statusCode).toBe(200);
    const after = await call();
    expect(after.json()).toEqual({ call: 1 });
    expect(slowCalls).toBe(1);
  });

  it('lets a claim whose request never answered (its process died) be taken over after the lease, and forgets answers after 24 hours', async () => {
    const hash = requestHash('POST', '/api/admin/accounts/:id/credits', { id: accountId }, {}, { amount: 7, source: 'admin' });
    await asSystem(testApp.deps.database, (tx) =>
      tx.query(
        `INSERT INTO idempotency_requests (scope, key, method, route, request_hash, status, claimed_at, expires_at)
         VALUES ('admin', 'orphan-1', 'POST', '/api/admin/accounts/:id/credits', $1, 'running', $2, $3)`,
        [hash, clock.now(), new Date(clock.now().getTime() + 86_400_000)],
      ),
    );
    expect((await grant({ amount: 7, source: 'admin' }, 'orphan-1')).statusCode).toBe(409);
    clock.advance(5 * 60 * 1000 + 1);
    const taken = await grant({ amount: 7, source: 'admin' }, 'orphan-1');
    expect(taken.statusCode).toBe(201);
    expect(taken.headers['idempotent-replayed']).toBeUndefined();

    clock.advance(24 * 60 * 60 * 1000);
    const before = await grantCount();
    const later = await grant({ amount: 25, source: 'admin' }, 'grant-1');
    expect(later.statusCode).toBe(201);
    expect(later.headers['idempotent-replayed']).toBeUndefined();
    expect(await grantCount()).toBe((before ?? 0) + 1);
  });

  it('covers authenticated POST routes only, never those whose answers carry secrets or cookies', () => {
    const auth = { auth: { allow: ['user'] as const } };
    expect(coversRoute({ method: 'POST', url: '/api/credits/reservations', config: auth })).toBe(true);
    expect(coversRoute({ method: 'POST', url: '/api/billing/checkout', config: auth })).toBe(true);
    expect(coversRoute({ method: 'GET', url: '/api/credits', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/auth/login', config: {} })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/auth/logout', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/api/keys', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/api/admin/accounts/:id/keys', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/api/keys/:id/rotate', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/api/admin/webhook-endpoints', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/api/admin/session', config: auth })).toBe(false);
    expect(coversRoute({ method: 'POST', url: '/api/usage', config: { ...auth, idempotency: false } })).toBe(false);
  });

  it('stores no key answer with a secret in it: issuing a key twice with one header issues two', async () => {
    const issue = () =>
      testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: { ...admin, 'idempotency-key': 'key-1' }, payload: { label: 'twice' } });
    const one = await issue();
    const two = await issue();
    expect(one.statusCode).toBe(201);
    expect(two.statusCode).toBe(201);
    expect(two.headers['idempotent-replayed']).toBeUndefined();
    const stored = await asSystem(testApp.deps.database, async (tx) => (await tx.query<{ body: string | null }>('SELECT response_body AS body FROM idempotency_requests')).rows);
    expect(stored.some((row) => (row.body ?? '').includes('cust_'))).toBe(false);
  });
});
