import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyCreditLedger } from '../../src/modules/credits/credits.verify.js';
import { ManualClock } from '../../src/platform/clock.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { signUp } from '../privacy/helpers.js';

const GENEROUS_LIMITS = { 'admin.ip': { limit: 1_000, windowSeconds: 3600 } };

describe('credit routes (API.md: Account and Operator)', () => {
  let testApp: TestApp;
  let admin: Record<string, string>;
  const clock = new ManualClock('2026-10-01T08:00:00Z');

  beforeAll(async () => {
    // The routes as app.ts registers them, priced by the app's own catalogue.
    testApp = await createTestApp({ clock, env: { RATE_LIMITS: JSON.stringify(GENEROUS_LIMITS) } });
    admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken ?? ''}` };
  });
  afterAll(async () => testApp.close());

  async function accountWithKey(): Promise<{ accountId: string; headers: Record<string, string> }> {
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'Credits Co' } });
    expect(created.statusCode, created.body).toBe(201);
    const accountId = created.json().account.id as string;
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: { label: 'credits' } });
    expect(issued.statusCode, issued.body).toBe(201);
    return { accountId, headers: { 'x-api-key': issued.json().secret as string } };
  }

  const grant = (accountId: string, payload: Record<string, unknown>) =>
    testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/credits`, headers: admin, payload });

  it('the operator grants credits (201); the account reads its balance and ledger', async () => {
    const { accountId, headers } = await accountWithKey();
    const granted = await grant(accountId, { amount: 25, source: 'promotion', expiresAt: '2026-12-01T00:00:00Z' });
    expect(granted.statusCode, granted.body).toBe(201);
    expect(granted.json()).toEqual({
      grant: { id: expect.stringMatching(/^grant_/), source: 'promotion', amount: 25, remaining: 25, expiresAt: '2026-12-01T00:00:00.000Z' },
    });
    const balance = await testApp.app.inject({ method: 'GET', url: '/api/credits', headers });
    expect(balance.statusCode).toBe(200);
    expect(balance.json()).toEqual({ balance: 25, held: 0, grants: [granted.json().grant] });
    const ledger = await testApp.app.inject({ method: 'GET', url: '/api/credits/ledger?limit=500', headers });
    expect(ledger.json()).toMatchObject({ items: [{ kind: 'grant', amount: 25, grantId: granted.json().grant.id }], nextCursor: null });
  });

  it('refuses bad operator grants with a 400 naming the field, an unknown account with 404, and non-operators', async () => {
    const { accountId, headers } = await accountWithKey();
    for (const [payload, field] of [
      [{ amount: 0, source: 'admin' }, 'amount'],
      [{ amount: 1.5, source: 'admin' }, 'amount'],
      [{ amount: '10', source: 'admin' }, 'amount'],
      [{ amount: 1_000_001, source: 'admin' }, 'amount'],
      [{ amount: 10, source: 'signup_bonus' }, 'source'],
      [{ amount: 10, source: 'admin', expiresAt: 'tomorrow' }, 'expiresAt'],
      [{ amount: 10, source: 'admin', expiresAt: '2020-01-01T00:00:00Z' }, 'expiresAt'],
      [{ amount: 10, source: 'admin', extra: true }, ''],
    ] as const) {
      const response = await grant(accountId, payload);
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().error.message, JSON.stringify(payload)).toContain(field);
    }
    expect((await grant('acct_missing', { amount: 10, source: 'admin' })).statusCode).toBe(404);
    const asAccount = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/credits`, headers, payload: { amount: 10, source: 'admin' } });
    expect([401, 403]).toContain(asAccount.statusCode);
    const balance = await testApp.app.inject({ method: 'GET', url: '/api/credits', headers });
    expect(balance.json()).toMatchObject({ balance: 0 });
  });

  it('reserve (201), replay (200, same reservation), confirm and release (200), state conflicts (409)', async () => {
    const { accountId, headers } = await accountWithKey();
    await grant(accountId, { amount: 30, source: 'purchase' });
    const body = { jobId: 'book-1', jobType: 'book', units: 4, idempotencyKey: 'book-1-try' };
    const reserved = await testApp.app.inject({ method: 'POST', url: '/api/credits/reservations', headers, payload: body });
    expect(reserved.statusCode, reserved.body).toBe(201);
    const reservation = reserved.json().reservation;
    expect(reservation).toEqual({ id: expect.stringMatching(/^res_/), jobId: 'book-1', jobType: 'book', amount: 8, status: 'held', expiresAt: '2026-10-01T08:15:00.000Z' });
    const replay = await testApp.app.inject({ method: 'POST', url: '/api/credits/reservations', headers, payload: body });
    expect(replay.statusCode).toBe(200);
    expect(replay.json()).toEqual({ reservation });
    const reused = await testApp.app.inject({ method: 'POST', url: '/api/credits/reservations', headers, payload: { ...body, units: 5 } });
    expect(reused.statusCode).toBe(422);
    expect(reused.json().error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers })).json()).toMatchObject({ balance: 22, held: 8 });

    const confirm = () => testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${reservation.id}/confirm`, headers });
    expect((await confirm()).json()).toEqual({ reservation: { ...reservation, status: 'confirmed' } });
    expect((await confirm()).statusCode).toBe(200);
    const release = await testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${reservation.id}/release`, headers });
    expect(release.statusCode).toBe(409);
    expect(release.json().error.code).toBe('CONFLICT');

    const second = await testApp.app.inject({ method: 'POST', url: '/api/credits/reservations', headers, payload: { jobId: 'r', jobType: 'render', amount: 3, idempotencyKey: 'r' } });
    expect(second.statusCode).toBe(201);
    const id = second.json().reservation.id as string;
    const released = await testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${id}/release`, headers });
    expect(released.json()).toMatchObject({ reservation: { id, status: 'released', amount: 3 } });
    expect((await testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${id}/confirm`, headers })).statusCode).toBe(409);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers })).json()).toMatchObject({ balance: 22, held: 0 });
    expect((await verifyCreditLedger(testApp.deps.database, { accountId })).valid).toBe(true);
  });

  it('402 INSUFFICIENT_CREDITS says "Insufficient credits" and nothing about amounts', async () => {
    const { accountId, headers } = await accountWithKey();
    await grant(accountId, { amount: 9, source: 'admin' });
    const response = await testApp.app.inject({
      method: 'POST',
      url: '/api/credits/reservations',
      headers,
      payload: { jobId: 's', jobType: 'story', units: 2, idempotencyKey: 's' },
    });
    expect(response.statusCode).toBe(402);
    expect(response.json().error).toEqual({ code: 'INSUFFICIENT_CREDITS', message: 'Insufficient credits', requestId: expect.any(String) });
    expect(response.body).not.toMatch(/\b(9|10)\b/);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers })).json()).toMatchObject({ balance: 9, held: 0 });
  });

  it('validates reserve bodies strictly: a 400 names the field and nothing is held', async () => {
    const { accountId, headers } = await accountWithKey();
    await grant(accountId, { amount: 100, source: 'admin' });
    const base = { jobId: 'j', idempotencyKey: 'k' };
    for (const [payload, field] of [
      [{ ...base, jobType: 'book', units: 0 }, 'units'],
      [{ ...base, jobType: 'book', units: -2 }, 'units'],
      [{ ...base, jobType: 'book', units: 2.5 }, 'units'],
      [{ ...base, jobType: 'book', units: '3' }, 'units'],
      [{ ...base, jobType: 'book', units: 1e12 }, 'units'],
      [{ ...base, jobType: 'book' }, 'units'],
      [{ ...base, jobType: 'book', units: 2, amount: 4 }, 'amount'],
      [{ ...base, jobType: 'render' }, 'amount'],
      [{ ...base, jobType: 'render', amount: 0 }, 'amount'],
      [{ ...base, jobType: 'render', amount: true }, 'amount'],
      [{ ...base, jobType: 'render', amount: 5, units: 1 }, 'units'],
      [{ jobId: 'j', jobType: 'render', amount: 5 }, 'idempotencyKey'],
      [{ ...base, jobType: 'render', amount: 5, price: 1 }, ''],
    ] as const) {
      const response = await testApp.app.inject({ method: 'POST', url: '/api/credits/reservations', headers, payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().error.message, JSON.stringify(payload)).toContain(field);
    }
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers })).json()).toMatchObject({ balance: 100, held: 0 });
  });

  it("another account's reservation is 404 and unchanged; no credentials is 401", async () => {
    const a = await accountWithKey();
    const b = await accountWithKey();
    await grant(a.accountId, { amount: 10, source: 'admin' });
    const reserved = await testApp.app.inject({
      method: 'POST',
      url: '/api/credits/reservations',
      headers: a.headers,
      payload: { jobId: 'j', jobType: 'render', amount: 6, idempotencyKey: 'k' },
    });
    const id = reserved.json().reservation.id as string;
    for (const action of ['confirm', 'release']) {
      const response = await testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${id}/${action}`, headers: b.headers });
      expect(response.statusCode).toBe(404);
    }
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers: a.headers })).json()).toMatchObject({ balance: 4, held: 6 });
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits' })).statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'POST', url: `/api/credits/reservations/${id}/confirm` })).statusCode).toBe(401);
  });

  it('pages the ledger with a cursor; a bad cursor is 400', async () => {
    const { accountId, headers } = await accountWithKey();
    for (let index = 1; index <= 3; index += 1) await grant(accountId, { amount: index, source: 'admin' });
    const first = await testApp.app.inject({ method: 'GET', url: '/api/credits/ledger?limit=2', headers });
    expect(first.json().items.map((item: { amount: number }) => item.amount)).toEqual([3, 2]);
    const next = await testApp.app.inject({ method: 'GET', url: `/api/credits/ledger?limit=2&cursor=${first.json().nextCursor as string}`, headers });
    expect(next.json()).toMatchObject({ items: [{ amount: 1 }], nextCursor: null });
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits/ledger?limit=0', headers })).json().items).toHaveLength(1);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits/ledger?cursor=abc', headers })).statusCode).toBe(400);
  });

  it('limits a person to 30 balance and ledger reads a minute together (RL-1 balance_read.user); an account key is limited by its plan instead', async () => {
    const person = await signUp(testApp.app, { email: `reader.${Date.now()}@example.com`, name: 'Reader', ip: '10.61.0.1' });
    const asPerson = { authorization: `Bearer ${person.accessToken}` };
    const statuses: number[] = [];
    for (let i = 0; i < 30; i += 1) {
      const url = i % 2 === 0 ? '/api/credits' : '/api/credits/ledger';
      statuses.push((await testApp.app.inject({ method: 'GET', url, headers: asPerson })).statusCode);
    }
    expect(statuses.every((status) => status === 200)).toBe(true);
    const refused = await testApp.app.inject({ method: 'GET', url: '/api/credits/ledger', headers: asPerson });
    expect(refused.statusCode).toBe(429);
    expect(refused.json().error.code).toBe('RATE_LIMITED');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
    // The next minute reads again.
    clock.advance(61_000);
    expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers: asPerson })).statusCode).toBe(200);

    const { headers } = await accountWithKey();
    for (let i = 0; i < 31; i += 1) expect((await testApp.app.inject({ method: 'GET', url: '/api/credits', headers })).statusCode).toBe(200);
  });

  it('documents the routes in the OpenAPI document', async () => {
    const document = (await testApp.app.inject({ method: 'GET', url: '/docs/openapi.json' })).json();
    for (const path of ['/api/credits', '/api/credits/ledger', '/api/credits/reservations', '/api/credits/reservations/{id}/confirm', '/api/admin/accounts/{id}/credits']) {
      expect(document.paths[path], path).toBeDefined();
    }
  });
});
