import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** The entitlement and lease routes through the real app, with an account key (API.md). */
describe('POST /api/entitlements/check and /api/leases over HTTP', () => {
  let testApp: TestApp;
  let key: Record<string, string>;
  let otherKey: Record<string, string>;

  async function accountWithKey(name: string): Promise<Record<string, string>> {
    const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name } });
    expect(created.statusCode, created.body).toBe(201);
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${created.json().account.id}/keys`, headers: admin, payload: {} });
    expect(issued.statusCode, issued.body).toBe(201);
    return { 'x-api-key': issued.json().secret };
  }

  beforeAll(async () => {
    testApp = await createTestApp({ env: { RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }) } });
    key = await accountWithKey('entitled');
    otherKey = await accountWithKey('other');
  });
  afterAll(async () => testApp.close());

  it('answers a FREE account from the catalogue: 100 API calls a day, tracked atomically', async () => {
    const check = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: key, payload: { feature: 'api_calls_per_day' } });
    expect(check.statusCode, check.body).toBe(200);
    expect(check.json()).toMatchObject({ allowed: true, feature: 'api_calls_per_day', kind: 'metered', limit: 100, used: 0, remaining: 100 });
    const tracked = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: key, payload: { feature: 'api_calls_per_day', track: 5 } });
    expect(tracked.json()).toMatchObject({ allowed: true, used: 5, remaining: 95 });
    const unknown = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: key, payload: { feature: 'no_such_feature' } });
    expect(unknown.json()).toMatchObject({ allowed: false });
  });

  it.each([
    ['a string track', { feature: 'api_calls_per_day', track: '1' }, 'track'],
    ['a zero track', { feature: 'api_calls_per_day', track: 0 }, 'track'],
    ['a fractional track', { feature: 'api_calls_per_day', track: 1.5 }, 'track'],
    ['an unknown property', { feature: 'api_calls_per_day', accountId: 'acct_x' }, 'accountId'],
    ['a missing feature', {}, 'feature'],
  ])('refuses %s with 400 naming the field', async (_label, payload, field) => {
    const response = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: key, payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.details[0].field).toBe(field);
  });

  it('acquires a build slot (201), refuses past the limit (200 allowed:false), releases (204), and hides other accounts\u2019 leases (404)', async () => {
    const first = await testApp.app.inject({ method: 'POST', url: '/api/leases', headers: key, payload: { feature: 'concurrent_builds', ttlSeconds: 60 } });
    expect(first.statusCode, first.body).toBe(201);
    const leaseId = first.json().lease.id as string;
    const second = await testApp.app.inject({ method: 'POST', url: '/api/leases', headers: key, payload: { feature: 'concurrent_builds' } });
    expect(second.statusCode).toBe(200);
    expect(second.json()).toMatchObject({ allowed: false, limit: 1, used: 1 });
    const foreign = await testApp.app.inject({ method: 'DELETE', url: `/api/leases/${leaseId}`, headers: otherKey });
    expect(foreign.statusCode).toBe(404);
    const released = await testApp.app.inject({ method: 'DELETE', url: `/api/leases/${leaseId}`, headers: key });
    expect(released.statusCode).toBe(204);
    const again = await testApp.app.inject({ method: 'POST', url: '/api/leases', headers: key, payload: { feature: 'concurrent_builds' } });
    expect(again.statusCode).toBe(201);
  });

  it('requires credentials', async () => {
    const response = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', payload: { feature: 'api_calls_per_day' } });
    expect(response.statusCode).toBe(401);
  });
});

describe('plans that accounts carry (TIER-2, OWN-2)', () => {
  it('treats an account on an unknown plan as FREE, and an exempt account as its configured plan, marked exempt', async () => {
    const { asSystem } = await import('../../src/platform/database/access.js');
    const testApp = await createTestApp({ env: { RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }) } });
    try {
      const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
      const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'legacy' } });
      const accountId = created.json().account.id as string;
      const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: {} });
      const key = { 'x-api-key': issued.json().secret as string };
      await asSystem(testApp.deps.database, (tx) => tx.query(`UPDATE accounts SET plan = 'LEGACY_GOLD' WHERE id = $1`, [accountId]));
      const check = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: key, payload: { feature: 'api_calls_per_day' } });
      expect(check.json()).toMatchObject({ allowed: true, limit: 100 });
    } finally {
      await testApp.close();
    }
  });

  it('gives owner and test accounts their configured plan without payment, marked exempt in /api/account', async () => {
    const { asSystem } = await import('../../src/platform/database/access.js');
    const { insertAccount } = await import('../../src/modules/accounts/accounts.repository.js');
    const exemptId = 'acct_exempt_for_tests';
    const testApp = await createTestApp({
      env: { TEST_ACCOUNT_IDS: exemptId, EXEMPT_ACCOUNT_PLAN: 'PRO', RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }) },
    });
    try {
      const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
      await asSystem(testApp.deps.database, (tx) => insertAccount(tx, { id: exemptId, name: 'exempt', plan: 'FREE', at: testApp.deps.clock.now() }));
      const plainAccount = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name: 'plain' } });
      const keyOf = async (accountId: string) =>
        ({ 'x-api-key': (await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: {} })).json().secret as string });
      const exemptKey = await keyOf(exemptId);
      const account = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: exemptKey });
      expect(account.json().account).toMatchObject({ id: exemptId, plan: 'PRO', exempt: true, exemptKind: 'test' });
      const check = await testApp.app.inject({ method: 'POST', url: '/api/entitlements/check', headers: exemptKey, payload: { feature: 'api_calls_per_day' } });
      expect(check.json()).toMatchObject({ limit: 10_000 });
      const plainId = plainAccount.json().account.id as string;
      const plain = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: await keyOf(plainId) });
      expect(plain.json().account).toEqual({ id: plainId, plan: 'FREE', status: 'active' });
    } finally {
      await testApp.close();
    }
  });
});
