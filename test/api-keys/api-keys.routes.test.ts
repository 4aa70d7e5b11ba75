import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertUser } from '../../src/modules/accounts/accounts.repository.js';
import { hashPassword } from '../../src/modules/auth/passwords.js';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { newId } from '../../src/platform/ids.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

const PASSWORD = 'a sturdy passphrase 42';

/**
 * The key and operator account routes through the real app: the lead's authentication
 * hook resolves principals and the plugins are registered by app.ts.
 */
describe('API key and operator account routes (KEY-1, KEY-2, ACC-2, HTTP-5)', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-06-01T12:00:00Z');
  const secretsSeen: string[] = [];
  let admin: { authorization: string };

  async function signUp(email: string): Promise<{ accountId: string; userId: string; headers: { authorization: string } }> {
    const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: PASSWORD } });
    expect(response.statusCode).toBe(201);
    const body = response.json();
    return { accountId: body.account.id, userId: body.user.id, headers: { authorization: `Bearer ${body.accessToken}` } };
  }

  async function issue(headers: Record<string, string>, payload?: object) {
    const response = await testApp.app.inject(
      payload === undefined ? { method: 'POST', url: '/api/keys', headers } : { method: 'POST', url: '/api/keys', headers, payload },
    );
    if (response.statusCode === 201) secretsSeen.push(response.json().secret);
    return response;
  }

  function withKey(secret: string) {
    return testApp.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-api-key': secret } });
  }

  async function auditEvents(): Promise<{ event: string; account_id: string | null; subject_id: string | null }[]> {
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; account_id: string | null; subject_id: string | null }>('SELECT event, account_id, subject_id FROM audit_log ORDER BY seq'),
    );
    return rows;
  }

  beforeAll(async () => {
    // The routes as app.ts registers them; operator routes allow 10 requests an hour per IP
    // by default, and these tests make more.
    testApp = await createTestApp({
      clock,
      env: { API_KEY_PEPPER: randomBytes(32).toString('hex'), RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } }) },
    });
    admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
  });

  afterAll(async () => {
    await testApp?.close();
  });

  it('an owner issues a key (secret once, not cacheable), lists it without the secret, uses it, and revokes it', async () => {
    const owner = await signUp('owner-one@example.com');
    const created = await issue(owner.headers, { label: 'CI runner' });
    expect(created.statusCode).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const { key, secret } = created.json();
    expect(secret).toMatch(new RegExp(`^cust_${owner.accountId}_[A-Za-z0-9_-]{43}$`));
    expect(key).toMatchObject({ label: 'CI runner', prefix: secret.slice(0, `cust_${owner.accountId}_`.length + 4), revokedAt: null });

    const listed = await testApp.app.inject({ method: 'GET', url: '/api/keys', headers: owner.headers });
    expect(listed.statusCode).toBe(200);
    expect(listed.json()).toEqual({ items: [expect.objectContaining({ id: key.id, prefix: key.prefix, label: 'CI runner' })], nextCursor: null });
    expect(listed.body).not.toContain(secret.slice(-43));

    const used = await withKey(secret);
    expect(used.statusCode).toBe(200);
    expect(used.json().account.id).toBe(owner.accountId);

    const revoked = await testApp.app.inject({ method: 'DELETE', url: `/api/keys/${key.id}`, headers: owner.headers });
    expect(revoked.statusCode).toBe(204);
    expect((await withKey(secret)).statusCode).toBe(401);
    const again = await testApp.app.inject({ method: 'DELETE', url: `/api/keys/${key.id}`, headers: owner.headers });
    expect(again.statusCode).toBe(204);

    const events = (await auditEvents()).filter((entry) => entry.subject_id === key.id);
    expect(events).toEqual([
      { event: 'api_key.issued', account_id: owner.accountId, subject_id: key.id },
      { event: 'api_key.revoked', account_id: owner.accountId, subject_id: key.id },
    ]);
  });

  it('accepts POST /api/keys without a body', async () => {
    const owner = await signUp('owner-nobody@example.com');
    const created = await issue(owner.headers);
    expect(created.statusCode).toBe(201);
    expect(created.json().key.label).toBeNull();
  });

  it('refuses bad input with 400 naming the field, and creates nothing', async () => {
    const owner = await signUp('owner-bad-input@example.com');
    const cases: [object, string][] = [
      [{ label: 'x'.repeat(101) }, 'label'],
      [{ label: '' }, 'label'],
      [{ label: 42 }, 'label'],
      [{ label: 'tab\there' }, 'label'],
      [{ label: 'ok', accountId: 'acct_other' }, 'accountId'],
      [[], 'body'],
    ];
    for (const [payload, field] of cases) {
      const response = await issue(owner.headers, payload);
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().error.details[0].field).toBe(field);
    }
    const keyId = (await issue(owner.headers)).json().key.id;
    for (const [payload, field] of [
      [{ overlapSeconds: '60' }, 'overlapSeconds'],
      [{ overlapSeconds: -1 }, 'overlapSeconds'],
      [{ overlapSeconds: 1.5 }, 'overlapSeconds'],
      [{ overlapSeconds: 31 * 86_400 }, 'overlapSeconds'],
      [{ expiresAt: 'never' }, 'expiresAt'],
    ] as [unknown, string][]) {
      const response = await testApp.app.inject({ method: 'POST', url: `/api/keys/${keyId}/rotate`, headers: owner.headers, payload: payload as object });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().error.details[0].field).toBe(field);
    }
    const badId = await testApp.app.inject({ method: 'DELETE', url: '/api/keys/not%20an%20id', headers: owner.headers });
    expect(badId.statusCode).toBe(400);
    expect(badId.json().error.details[0].field).toBe('params.id');
    const badLimit = await testApp.app.inject({ method: 'GET', url: '/api/keys?limit=ten', headers: owner.headers });
    expect(badLimit.json().error.details[0].field).toBe('query.limit');
    const list = await testApp.app.inject({ method: 'GET', url: '/api/keys', headers: owner.headers });
    expect(list.json().items).toHaveLength(1);
  });

  it("answers 404 for another account's key, and the key keeps working", async () => {
    const alice = await signUp('alice-keys@example.com');
    const bob = await signUp('bob-keys@example.com');
    const { key, secret } = (await issue(alice.headers)).json();
    for (const request of [
      { method: 'DELETE' as const, url: `/api/keys/${key.id}` },
      { method: 'POST' as const, url: `/api/keys/${key.id}/rotate`, payload: {} },
    ]) {
      const response = await testApp.app.inject({ ...request, headers: bob.headers });
      expect(response.statusCode).toBe(404);
      expect(response.json().error.code).toBe('NOT_FOUND');
    }
    expect((await withKey(secret)).statusCode).toBe(200);
    const bobsList = await testApp.app.inject({ method: 'GET', url: '/api/keys', headers: bob.headers });
    expect(bobsList.json().items).toEqual([]);
  });

  it('rotates with an overlap: both keys work, then the old one stops', async () => {
    const owner = await signUp('owner-rotate@example.com');
    const old = (await issue(owner.headers, { label: 'deploy' })).json();
    const rotated = await testApp.app.inject({ method: 'POST', url: `/api/keys/${old.key.id}/rotate`, headers: owner.headers, payload: { overlapSeconds: 60 } });
    expect(rotated.statusCode).toBe(201);
    expect(rotated.headers['cache-control']).toBe('no-store');
    const replacement = rotated.json();
    secretsSeen.push(replacement.secret);
    expect(replacement.key.label).toBe('deploy');
    expect((await withKey(old.secret)).statusCode).toBe(200);
    expect((await withKey(replacement.secret)).statusCode).toBe(200);
    clock.advance(60_000);
    expect((await withKey(old.secret)).statusCode).toBe(401);
    expect((await withKey(replacement.secret)).statusCode).toBe(200);
    // Without a body: the default overlap.
    const again = await testApp.app.inject({ method: 'POST', url: `/api/keys/${replacement.key.id}/rotate`, headers: owner.headers });
    expect(again.statusCode).toBe(201);
    secretsSeen.push(again.json().secret);
    const listed = await testApp.app.inject({ method: 'GET', url: '/api/keys', headers: owner.headers });
    const previous = listed.json().items.find((item: { id: string }) => item.id === replacement.key.id);
    expect(previous.expiresAt).toBe(new Date(clock.now().getTime() + 86_400_000).toISOString());
  });

  it('lets only the owner manage keys: members, API keys, admins and anonymous callers are refused', async () => {
    const owner = await signUp('owner-roles@example.com');
    const { secret } = (await issue(owner.headers)).json();
    const memberEmail = 'member-roles@example.com';
    await asSystem(testApp.deps.database, async (tx) =>
      insertUser(tx, {
        id: newId('user'),
        accountId: owner.accountId,
        email: memberEmail,
        name: null,
        passwordHash: await hashPassword(PASSWORD),
        role: 'member',
        at: clock.now(),
      }),
    );
    const login = await testApp.app.inject({ method: 'POST', url: '/auth/login', payload: { email: memberEmail, password: PASSWORD } });
    expect(login.statusCode).toBe(200);
    const member = { authorization: `Bearer ${login.json().accessToken}` };

    for (const [headers, status] of [
      [member, 403],
      [{ 'x-api-key': secret }, 403],
      [admin, 403],
      [{}, 401],
    ] as [Record<string, string>, number][]) {
      for (const request of [
        { method: 'GET' as const, url: '/api/keys' },
        { method: 'POST' as const, url: '/api/keys', payload: {} },
      ]) {
        const response = await testApp.app.inject({ ...request, headers });
        expect(response.statusCode, `${request.method} ${JSON.stringify(Object.keys(headers))}`).toBe(status);
      }
    }
  });

  it('operators create, list, read and update accounts', async () => {
    const created = await testApp.app.inject({
      method: 'POST',
      url: '/api/admin/accounts',
      headers: admin,
      payload: { plan: 'PRO', email: 'ops-created@example.com', name: 'Acme' },
    });
    expect(created.statusCode).toBe(201);
    const { account, user } = created.json();
    expect(account).toMatchObject({ plan: 'PRO', status: 'active', name: 'Acme' });
    expect(user).toMatchObject({ email: 'ops-created@example.com', role: 'owner', accountId: account.id });

    const bare = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin });
    expect(bare.statusCode).toBe(201);
    expect(bare.json()).toMatchObject({ account: { plan: 'FREE' }, user: null });

    const duplicate = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { email: 'OPS-created@example.com' } });
    expect(duplicate.statusCode).toBe(409);

    const read = await testApp.app.inject({ method: 'GET', url: `/api/admin/accounts/${account.id}`, headers: admin });
    expect(read.json()).toEqual({ account });
    expect((await testApp.app.inject({ method: 'GET', url: `/api/admin/accounts/${newId('account')}`, headers: admin })).statusCode).toBe(404);

    const page = await testApp.app.inject({ method: 'GET', url: '/api/admin/accounts?limit=1', headers: admin });
    expect(page.json().items).toHaveLength(1);
    expect(page.json().nextCursor).toEqual(expect.any(String));
    const next = await testApp.app.inject({ method: 'GET', url: `/api/admin/accounts?limit=1&cursor=${page.json().nextCursor}`, headers: admin });
    expect(next.json().items[0].id > page.json().items[0].id).toBe(true);

    const patched = await testApp.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${account.id}`, headers: admin, payload: { plan: 'ENTERPRISE', name: null } });
    expect(patched.statusCode).toBe(200);
    expect(patched.json().account).toMatchObject({ plan: 'ENTERPRISE', name: null, status: 'active' });

    for (const [payload, field] of [
      [{ status: 'deleted' }, 'status'],
      [{ plan: 'GOLD' }, 'plan'],
      [{ plan: 'pro' }, 'plan'],
      [{}, 'body'],
      [{ owner: 'x' }, 'owner'],
    ] as [object, string][]) {
      const response = await testApp.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${account.id}`, headers: admin, payload });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
      expect(response.json().error.details[0].field).toBe(field);
    }
    const badEmail = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { email: 'not-an-email' } });
    expect(badEmail.json().error.details[0].field).toBe('email');

    const events = (await auditEvents()).filter((entry) => entry.account_id === account.id).map((entry) => entry.event);
    expect(events).toEqual(['account.created', 'user.created', 'account.updated']);
  });

  it('operators issue and revoke keys for any account; suspension refuses the key (ACC-4)', async () => {
    const { account } = (await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: {} })).json();
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${account.id}/keys`, headers: admin, payload: { label: 'ops' } });
    expect(issued.statusCode).toBe(201);
    expect(issued.headers['cache-control']).toBe('no-store');
    const { key, secret } = issued.json();
    secretsSeen.push(secret);
    expect((await withKey(secret)).statusCode).toBe(200);

    await testApp.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${account.id}`, headers: admin, payload: { status: 'suspended' } });
    const suspended = await withKey(secret);
    expect(suspended.statusCode).toBe(403);
    expect(suspended.json().error.code).toBe('ACCOUNT_SUSPENDED');
    await testApp.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${account.id}`, headers: admin, payload: { status: 'active' } });
    expect((await withKey(secret)).statusCode).toBe(200);

    expect((await testApp.app.inject({ method: 'DELETE', url: `/api/admin/keys/${key.id}`, headers: admin })).statusCode).toBe(204);
    expect((await withKey(secret)).statusCode).toBe(401);
    expect((await testApp.app.inject({ method: 'DELETE', url: `/api/admin/keys/${newId('apiKey')}`, headers: admin })).statusCode).toBe(404);
    expect((await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${newId('account')}/keys`, headers: admin })).statusCode).toBe(404);
  });

  it('refuses account principals on operator routes', async () => {
    const owner = await signUp('owner-not-admin@example.com');
    const { secret } = (await issue(owner.headers)).json();
    for (const headers of [owner.headers, { 'x-api-key': secret }]) {
      for (const request of [
        { method: 'GET' as const, url: '/api/admin/accounts' },
        { method: 'POST' as const, url: `/api/admin/accounts/${owner.accountId}/keys`, payload: {} },
        { method: 'PATCH' as const, url: `/api/admin/accounts/${owner.accountId}`, payload: { plan: 'ENTERPRISE' } },
      ]) {
        expect((await testApp.app.inject({ ...request, headers })).statusCode).toBe(403);
      }
    }
    const read = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: owner.headers });
    expect(read.json().account.plan).toBe('FREE');
  });

  it('documents every route in the OpenAPI document', async () => {
    const response = await testApp.app.inject({ method: 'GET', url: '/docs/openapi.json' });
    expect(response.statusCode).toBe(200);
    const paths = response.json().paths;
    for (const path of ['/api/keys', '/api/keys/{id}', '/api/keys/{id}/rotate', '/api/admin/accounts', '/api/admin/accounts/{id}', '/api/admin/accounts/{id}/keys', '/api/admin/keys/{id}']) {
      expect(paths, path).toHaveProperty([path]);
    }
    expect(paths['/api/admin/accounts/{id}']).toHaveProperty('patch');
  });

  it('never writes a key secret to the logs', () => {
    expect(secretsSeen.length).toBeGreaterThan(5);
    const logs = testApp.logs.text;
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of secretsSeen) {
      expect(logs).not.toContain(secret.slice(-43));
      expect(logs).not.toContain(secret.slice(-43, -20));
    }
  });
});
