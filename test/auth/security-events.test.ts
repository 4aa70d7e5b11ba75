import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asSystem } from '../../src/platform/database/access.js';
import { verifyAuditChain } from '../../src/modules/audit/audit.verify.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

const PASSWORD = 'a sturdy passphrase 42';

/** AUD-1 and KEY-5 through the real routes: what the audit trail records, and login limits. */
describe('security events in the audit trail, and the login limit', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    testApp = await createTestApp();
  });
  afterAll(async () => testApp.close());

  async function events(): Promise<Array<{ event: string; account_id: string | null; metadata: Record<string, unknown>; ip: string | null }>> {
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; account_id: string | null; metadata: Record<string, unknown>; ip: string | null }>(
        'SELECT event, account_id, metadata, ip FROM audit_log ORDER BY seq',
      ),
    );
    return rows;
  }

  it('records sign-up, login, failed login, failed authentication and logout, each tied to the account and client', async () => {
    const peer = '203.0.113.40';
    const signup = await testApp.app.inject({ method: 'POST', url: '/auth/signup', remoteAddress: peer, payload: { email: 'audited@example.com', password: PASSWORD } });
    expect(signup.statusCode).toBe(201);
    const accountId = signup.json().account.id as string;
    const wrong = await testApp.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: peer, payload: { email: 'audited@example.com', password: `${PASSWORD}!` } });
    expect(wrong.statusCode).toBe(401);
    const login = await testApp.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: peer, payload: { email: 'audited@example.com', password: PASSWORD } });
    expect(login.statusCode).toBe(200);
    const badToken = await testApp.app.inject({ method: 'GET', url: '/auth/me', remoteAddress: peer, headers: { authorization: 'Bearer not.a.token' } });
    expect(badToken.statusCode).toBe(401);

    const recorded = await events();
    const mine = recorded.filter((entry) => entry.ip === peer);
    expect(mine.map((entry) => entry.event)).toEqual(['account.created', 'user.created', 'auth.login_failed', 'auth.login', 'auth.failed']);
    expect(mine.slice(0, 4).every((entry) => entry.account_id === accountId)).toBe(true);
    expect(mine[2]?.metadata).toMatchObject({ reason: 'wrong_password' });
    expect(mine[4]?.metadata).toMatchObject({ credential: 'bearer', code: 'UNAUTHENTICATED', route: '/auth/me' });
    expect(await verifyAuditChain(testApp.deps.database)).toEqual({ valid: true, checked: recorded.length });
  });

  it('answers the 6th login in a minute from one IP with 429 and records the lockout once', async () => {
    const peer = '203.0.113.41';
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 7; attempt += 1) {
      const response = await testApp.app.inject({
        method: 'POST',
        url: '/auth/login',
        remoteAddress: peer,
        payload: { email: `someone-${attempt}@example.com`, password: PASSWORD },
      });
      statuses.push(response.statusCode);
      if (response.statusCode === 429) {
        expect(response.headers['retry-after']).toBeDefined();
        expect(response.json().error.code).toBe('RATE_LIMITED');
      }
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
    // Spoofing X-Forwarded-For from an untrusted peer does not give a fresh bucket.
    const spoofed = await testApp.app.inject({
      method: 'POST',
      url: '/auth/login',
      remoteAddress: peer,
      headers: { 'x-forwarded-for': '198.51.100.200' },
      payload: { email: 'someone-else@example.com', password: PASSWORD },
    });
    expect(spoofed.statusCode).toBe(429);
    await expect
      .poll(async () => (await events()).filter((entry) => entry.event === 'rate_limit.lockout' && entry.ip === peer).map((entry) => entry.metadata.policy))
      .toEqual(['login.ip']);
  });

  it('locks an email after repeated failures, the same way whether or not it exists', async () => {
    const lockedStatuses = async (email: string, ipBase: number) => {
      const statuses: number[] = [];
      for (let attempt = 0; attempt < 6; attempt += 1) {
        const response = await testApp.app.inject({
          method: 'POST',
          url: '/auth/login',
          remoteAddress: `198.51.100.${ipBase + attempt}`,
          payload: { email, password: `${PASSWORD} wrong` },
        });
        statuses.push(response.statusCode);
      }
      return statuses;
    };
    await testApp.app.inject({ method: 'POST', url: '/auth/signup', remoteAddress: '203.0.113.42', payload: { email: 'target@example.com', password: PASSWORD } });
    const known = await lockedStatuses('target@example.com', 10);
    const unknown = await lockedStatuses('nobody-here@example.com', 30);
    expect(known).toEqual([401, 401, 401, 401, 401, 429]);
    expect(unknown).toEqual(known);
    // Locked means locked: even the right password waits.
    const right = await testApp.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: '198.51.100.60', payload: { email: 'target@example.com', password: PASSWORD } });
    expect(right.statusCode).toBe(429);
    await expect.poll(async () => (await events()).filter((entry) => entry.event === 'auth.login_locked').length).toBe(2);
  });
});
