import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** The operator dashboard's read routes (UI-1): account search, an account's overview, the metrics summary. */
describe('operator dashboard routes', () => {
  let testApp: TestApp;
  let admin: Record<string, string>;

  beforeAll(async () => {
    testApp = await createTestApp({ env: { RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }) } });
    admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken ?? ''}` };
  });
  afterAll(async () => {
    await testApp?.close();
  });

  const inject = (method: 'GET' | 'POST', url: string, headers: Record<string, string> = admin, payload?: Record<string, unknown>) =>
    testApp.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });

  async function signUp(email: string, name?: string): Promise<{ accountId: string; bearer: Record<string, string> }> {
    const response = await inject('POST', '/auth/signup', {}, { email, password: 'a sturdy passphrase 42', ...(name ? { name } : {}) });
    expect(response.statusCode, response.body).toBe(201);
    return { accountId: response.json().account.id, bearer: { authorization: `Bearer ${response.json().accessToken as string}` } };
  }

  it('searches accounts by owner email, name or id prefix, with each owner email, and pages through the results', async () => {
    const ann = await signUp('ann@search.example', 'Ann Annson');
    await signUp('bob@search.example');
    await signUp('carol@elsewhere.example');
    const byEmail = await inject('GET', '/api/admin/accounts?q=SEARCH.example');
    expect(byEmail.statusCode, byEmail.body).toBe(200);
    expect(byEmail.json().items.map((item: { ownerEmail: string }) => item.ownerEmail).sort()).toEqual(['ann@search.example', 'bob@search.example']);
    expect((await inject('GET', '/api/admin/accounts?q=annson')).json().items).toMatchObject([{ id: ann.accountId, ownerEmail: 'ann@search.example' }]);
    expect((await inject('GET', `/api/admin/accounts?q=${ann.accountId.slice(0, 12)}`)).json().items.map((item: { id: string }) => item.id)).toContain(ann.accountId);
    // LIKE wildcards in the query are text, not patterns.
    expect((await inject('GET', '/api/admin/accounts?q=%25')).json().items).toEqual([]);
    expect((await inject('GET', '/api/admin/accounts?q=_')).json().items).toEqual([]);
    const first = (await inject('GET', '/api/admin/accounts?q=search.example&limit=1')).json();
    expect(first.items).toHaveLength(1);
    expect(first.nextCursor).toBe(first.items[0].id);
    const second = (await inject('GET', `/api/admin/accounts?q=search.example&limit=1&cursor=${first.nextCursor as string}`)).json();
    expect(second.items).toHaveLength(1);
    expect(second.items[0].id).not.toBe(first.items[0].id);
    expect(second.nextCursor).toBeNull();
    const control = await inject('GET', '/api/admin/accounts?q=%01');
    expect(control.statusCode).toBe(400);
    expect(control.json().error.details[0].field).toBe('query.q');
  });

  it("answers an account's overview: people, credits and ledger, keys, usage, audit; 404 for an unknown account, 401/403 for others", async () => {
    const { accountId, bearer } = await signUp('overview@example.com');
    const other = await signUp('other-overview@example.com');
    const granted = await inject('POST', `/api/admin/accounts/${accountId}/credits`, admin, { amount: 25, source: 'promotion' });
    expect(granted.statusCode, granted.body).toBe(201);
    expect((await inject('POST', '/api/keys', bearer, { label: 'ci' })).statusCode).toBe(201);
    await inject('POST', '/api/usage', bearer, { events: [{ idempotencyKey: 'one', jobType: 'story', quantity: 2 }] });

    const response = await inject('GET', `/api/admin/accounts/${accountId}/overview`);
    expect(response.statusCode, response.body).toBe(200);
    const overview = response.json();
    expect(overview.account).toMatchObject({ id: accountId, plan: 'FREE', status: 'active' });
    expect(overview.users).toEqual([expect.objectContaining({ email: 'overview@example.com', role: 'owner', status: 'active' })]);
    // The sign-up bonus (10) and the grant (25).
    expect(overview.credits).toMatchObject({ balance: 35, held: 0 });
    expect(overview.ledger.items.map((entry: { amount: number }) => entry.amount).sort()).toEqual([10, 25]);
    expect(overview.keys.items).toEqual([expect.objectContaining({ label: 'ci', revokedAt: null })]);
    expect(overview.keys.items[0]).not.toHaveProperty('secret');
    expect(overview.usage.recent).toEqual([expect.objectContaining({ jobType: 'story' })]);
    expect(overview.usage.daily).toHaveLength(30);
    expect(overview.usage.daily.at(-1)).toMatchObject({ reports: 1, quantity: 2 });
    const events = overview.audit.items.map((entry: { event: string }) => entry.event);
    expect(events).toEqual(expect.arrayContaining(['user.created', 'account.created', 'credits.granted', 'api_key.issued']));
    expect(overview.audit.items[0]).not.toHaveProperty('ip');
    // Nothing of the other account.
    expect(JSON.stringify(overview)).not.toContain(other.accountId);

    expect((await inject('GET', '/api/admin/accounts/acct_unknown/overview')).statusCode).toBe(404);
    expect((await inject('GET', `/api/admin/accounts/${accountId}/overview`, {})).statusCode).toBe(401);
    expect((await inject('GET', `/api/admin/accounts/${accountId}/overview`, bearer)).statusCode).toBe(403);
  });

  it("sums this instance's counters for the dashboard", async () => {
    await inject('GET', '/api/admin/accounts', { authorization: `Bearer ${'f'.repeat(64)}` });
    const response = await inject('GET', '/api/admin/summary');
    expect(response.statusCode, response.body).toBe(200);
    const summary = response.json();
    expect(summary.requests.total).toBeGreaterThan(10);
    expect(summary.requests.byStatusClass['2xx']).toBeGreaterThan(5);
    expect(summary.requests.byStatusClass['4xx']).toBeGreaterThanOrEqual(3);
    expect(summary.authentications.failed).toBeGreaterThanOrEqual(2);
    expect(summary.authentications.ok).toBeGreaterThan(5);
    expect(summary.creditOperations.grant).toBeGreaterThanOrEqual(1);
    expect(summary.instance.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(summary.instance.residentMemoryBytes).toBeGreaterThan(0);
  });
});
