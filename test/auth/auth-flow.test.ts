import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { readOutbox } from '../helpers/outbox.js';

const PASSWORD = 'a sturdy passphrase 42';

interface Session {
  cookies: Record<string, string>;
  csrfToken: string;
  accessToken: string;
  accountId: string;
  userId: string;
}

function cookiesOf(setCookie: string | string[] | undefined): Record<string, string> {
  const list = Array.isArray(setCookie) ? setCookie : setCookie ? [setCookie] : [];
  return Object.fromEntries(list.map((line) => line.split(';', 1)[0]!.split('=') as [string, string]));
}

function cookieHeader(cookies: Record<string, string>, names = Object.keys(cookies)): string {
  return names.map((name) => `${name}=${cookies[name]}`).join('; ');
}

describe('people: sign-up, login, tokens, CSRF (AUTH-1..5)', () => {
  let testApp: TestApp;
  const clock = new ManualClock('2026-06-01T12:00:00Z');

  beforeAll(async () => {
    testApp = await createTestApp({ clock });
  });
  afterAll(async () => testApp.close());

  async function signUp(email: string): Promise<Session> {
    const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email, password: PASSWORD, name: 'Ada' } });
    expect(response.statusCode, response.body).toBe(201);
    const body = response.json();
    return {
      cookies: cookiesOf(response.headers['set-cookie']),
      csrfToken: body.csrfToken,
      accessToken: body.accessToken,
      accountId: body.account.id,
      userId: body.user.id,
    };
  }

  it('signs up an owner of a new FREE account and sets the three cookies', async () => {
    const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email: 'Owner@Example.com', password: PASSWORD } });
    expect(response.statusCode).toBe(201);
    const body = response.json();
    expect(body.user).toMatchObject({ email: 'owner@example.com', role: 'owner' });
    expect(body.account).toMatchObject({ plan: 'FREE', status: 'active' });
    expect(body.account.id).toMatch(/^acct_/);
    const setCookie = ([] as string[]).concat(response.headers['set-cookie'] ?? []);
    expect(setCookie.find((line) => line.startsWith('access_token='))).toMatch(/HttpOnly/);
    expect(setCookie.find((line) => line.startsWith('refresh_token='))).toMatch(/Path=\/auth;.*HttpOnly.*SameSite=Strict/);
    const csrfCookie = setCookie.find((line) => line.startsWith('csrf_token='));
    expect(csrfCookie).not.toMatch(/HttpOnly/);
    expect(csrfCookie).toContain(`csrf_token=${body.csrfToken}`);
    expect(body.csrfToken).toMatch(/^[A-Za-z0-9_-]+$/);
    // The password is stored as an argon2id hash with OWASP parameters.
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ password_hash: string }>('SELECT password_hash FROM users WHERE email = $1', ['owner@example.com']),
    );
    expect(rows[0]?.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
  });

  it.each([
    ['too short', 'short pass', /at least 12/],
    ['common', 'password1234', /too common/],
    ['one repeated character', 'aaaaaaaaaaaaaaaa', /too simple|too common/],
  ])('refuses a %s password with a 400 naming the field', async (_label, password, message) => {
    const response = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email: `weak-${password.length}@example.com`, password } });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.details[0]).toMatchObject({ field: 'password', message: expect.stringMatching(message) });
  });

  it('logs in, answers /auth/me by cookie and by Bearer header', async () => {
    const session = await signUp('login@example.com');
    const login = await testApp.app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'LOGIN@example.com', password: PASSWORD } });
    expect(login.statusCode).toBe(200);
    const cookies = cookiesOf(login.headers['set-cookie']);
    const byCookie = await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { cookie: cookieHeader(cookies, ['access_token']) } });
    expect(byCookie.statusCode).toBe(200);
    expect(byCookie.json().user.id).toBe(session.userId);
    const byBearer = await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${login.json().accessToken}` } });
    expect(byBearer.json().account.id).toBe(session.accountId);
  });

  it('answers an unknown email and a wrong password identically (AUTH-6)', async () => {
    await signUp('known@example.com');
    const unknown = await testApp.app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'nobody@example.com', password: PASSWORD } });
    const wrong = await testApp.app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'known@example.com', password: `${PASSWORD}x` } });
    expect(unknown.statusCode).toBe(401);
    expect(wrong.statusCode).toBe(401);
    const strip = (body: string) => ({ ...JSON.parse(body).error, requestId: undefined });
    expect(strip(unknown.body)).toEqual(strip(wrong.body));
  });

  describe('access tokens (AUTH-2)', () => {
    let session: Session;
    beforeAll(async () => {
      session = await signUp('tokens@example.com');
    });

    async function me(token: string) {
      return testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${token}` } });
    }

    function encode(part: object): string {
      return Buffer.from(JSON.stringify(part)).toString('base64url');
    }

    it('accepts the issued token', async () => {
      expect((await me(session.accessToken)).statusCode).toBe(200);
    });

    it('refuses alg none', async () => {
      const [, payload] = session.accessToken.split('.');
      const unsigned = `${encode({ alg: 'none', typ: 'at+jwt', kid: 'dev' })}.${payload}.`;
      expect((await me(unsigned)).statusCode).toBe(401);
    });

    it('refuses HS/RS confusion and a token signed with another key', async () => {
      const claims = JSON.parse(Buffer.from(session.accessToken.split('.')[1]!, 'base64url').toString());
      const otherKey = new TextEncoder().encode('another-secret-that-is-long-enough-1234');
      const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: 'dev' }).sign(otherKey);
      expect((await me(forged)).statusCode).toBe(401);
      const [header, payload, signature] = session.accessToken.split('.');
      const headerJson = JSON.parse(Buffer.from(header!, 'base64url').toString());
      const rsHeader = encode({ ...headerJson, alg: 'RS256' });
      expect((await me(`${rsHeader}.${payload}.${signature}`)).statusCode).toBe(401);
    });

    it('refuses an expired token', async () => {
      // The clock only moves forward: rate limits and sessions rely on it.
      clock.advance(16 * 60 * 1000);
      expect((await me(session.accessToken)).statusCode).toBe(401);
    });

    it("refuses a deleted user's token", async () => {
      const doomed = await signUp('doomed@example.com');
      await asSystem(testApp.deps.database, (tx) => tx.query(`UPDATE users SET status = 'deleted' WHERE id = $1`, [doomed.userId]));
      expect((await me(doomed.accessToken)).statusCode).toBe(401);
    });

    it('refuses a suspended account with 403 ACCOUNT_SUSPENDED (ACC-4)', async () => {
      const suspended = await signUp('suspended@example.com');
      await asSystem(testApp.deps.database, (tx) => tx.query(`UPDATE accounts SET status = 'suspended' WHERE id = $1`, [suspended.accountId]));
      const response = await me(suspended.accessToken);
      expect(response.statusCode).toBe(403);
      expect(response.json().error.code).toBe('ACCOUNT_SUSPENDED');
    });
  });

  describe('refresh tokens', () => {
    it('rotates on every use; a reused token gives 401 and revokes the newest token of the family too', async () => {
      const session = await signUp('refresh@example.com');
      const first = await testApp.app.inject({
        method: 'POST',
        url: '/auth/refresh',
        headers: { cookie: cookieHeader(session.cookies), 'x-csrf-token': session.csrfToken },
      });
      expect(first.statusCode).toBe(200);
      const rotated = cookiesOf(first.headers['set-cookie']);
      expect(rotated.refresh_token).not.toBe(session.cookies.refresh_token);
      // The CSRF token is bound to the family: unchanged across refreshes.
      expect(first.json().csrfToken).toBe(session.csrfToken);

      const replay = await testApp.app.inject({
        method: 'POST',
        url: '/auth/refresh',
        headers: { cookie: cookieHeader(session.cookies), 'x-csrf-token': session.csrfToken },
      });
      expect(replay.statusCode).toBe(401);

      const newest = await testApp.app.inject({
        method: 'POST',
        url: '/auth/refresh',
        headers: { cookie: cookieHeader({ ...session.cookies, ...rotated }), 'x-csrf-token': session.csrfToken },
      });
      expect(newest.statusCode).toBe(401);
      // The family is revoked, so its access tokens stop working at once too.
      const me = await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${first.json().accessToken}` } });
      expect(me.statusCode).toBe(401);
    });
  });

  describe('CSRF (AUTH-4)', () => {
    it('refuses a cookie-authenticated POST without or with a wrong token (403, nothing changed); a Bearer call needs none', async () => {
      const session = await signUp('csrf@example.com');
      const other = await signUp('csrf-other@example.com');
      const cookie = cookieHeader(session.cookies);
      const missing = await testApp.app.inject({ method: 'POST', url: '/auth/logout', headers: { cookie } });
      expect(missing.statusCode).toBe(403);
      expect(missing.json().error.code).toBe('CSRF_FAILED');
      const foreign = await testApp.app.inject({ method: 'POST', url: '/auth/logout', headers: { cookie, 'x-csrf-token': other.csrfToken } });
      expect(foreign.statusCode).toBe(403);
      // Nothing changed: the session still works.
      const me = await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { cookie: cookieHeader(session.cookies, ['access_token']) } });
      expect(me.statusCode).toBe(200);
      const noRefresh = await testApp.app.inject({ method: 'POST', url: '/auth/refresh', headers: { cookie } });
      expect(noRefresh.statusCode).toBe(403);
      const refreshed = await testApp.app.inject({ method: 'POST', url: '/auth/refresh', headers: { cookie, 'x-csrf-token': session.csrfToken } });
      expect(refreshed.statusCode).toBe(200);
    });

    it('logs out with the right token: 204, family revoked, cookies cleared', async () => {
      const session = await signUp('logout@example.com');
      const response = await testApp.app.inject({
        method: 'POST',
        url: '/auth/logout',
        headers: { cookie: cookieHeader(session.cookies), 'x-csrf-token': session.csrfToken },
      });
      expect(response.statusCode).toBe(204);
      const cleared = ([] as string[]).concat(response.headers['set-cookie'] ?? []);
      expect(cleared.find((line) => line.startsWith('access_token=;'))).toBeDefined();
      const me = await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${session.accessToken}` } });
      expect(me.statusCode).toBe(401);
    });
  });

  it('refuses two kinds of credential at once with 400 AMBIGUOUS_CREDENTIALS', async () => {
    const session = await signUp('ambiguous@example.com');
    const response = await testApp.app.inject({
      method: 'GET',
      url: '/api/account',
      headers: { cookie: cookieHeader(session.cookies, ['access_token']), 'x-api-key': 'cust_x_y' },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('AMBIGUOUS_CREDENTIALS');
  });

  it('GET /api/account answers for the caller only, and an admin token cannot act as an account', async () => {
    const session = await signUp('account@example.com');
    const response = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: { authorization: `Bearer ${session.accessToken}` } });
    expect(response.json()).toEqual({ account: { id: session.accountId, plan: 'FREE', status: 'active' }, subscription: null });
    const admin = await testApp.app.inject({
      method: 'GET',
      url: '/api/account',
      headers: { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` },
    });
    expect(admin.statusCode).toBe(403);
  });

  describe('password reset (AUTH-5)', () => {
    it('answers 202 for known and unknown emails, mails a single-use link, and revokes every session when used', async () => {
      const session = await signUp('reset@example.com');
      const outbox = testApp.config.mail.outboxDir;
      const unknown = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'ghost@example.com' } });
      const known = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'reset@example.com' } });
      expect(unknown.statusCode).toBe(202);
      expect(known.statusCode).toBe(202);
      expect(unknown.body).toBe(known.body);
      // Queued in the request's transaction (which ends after the 202), sent by the delivery worker.
      const mails = await expect
        .poll(async () => {
          await testApp.deps.notifications.deliverDue();
          return readOutbox(outbox).filter((message) => message.kind === 'password_reset');
        })
        .toHaveLength(1)
        .then(() => readOutbox(outbox).filter((message) => message.kind === 'password_reset'));
      const mail = mails[0]!;
      expect(mail.to).toBe('reset@example.com');
      expect(mail.subject).toBe('Reset your Bulwark password');
      const token = /\/reset\?token=([A-Za-z0-9_-]+)/.exec(mail.text)?.[1];
      expect(token).toBeDefined();

      const newPassword = 'another sturdy passphrase 7';
      const confirm = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset/confirm', payload: { token, password: newPassword } });
      expect(confirm.statusCode).toBe(204);
      const again = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset/confirm', payload: { token, password: 'yet another passphrase 9' } });
      expect(again.statusCode).toBe(400);
      const oldSession = await testApp.app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${session.accessToken}` } });
      expect(oldSession.statusCode).toBe(401);
      const login = await testApp.app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'reset@example.com', password: newPassword } });
      expect(login.statusCode).toBe(200);
    });

    it('refuses an expired reset token', async () => {
      await signUp('late@example.com');
      await testApp.app.inject({ method: 'POST', url: '/auth/password-reset', payload: { email: 'late@example.com' } });
      const outbox = testApp.config.mail.outboxDir;
      await expect
        .poll(async () => {
          await testApp.deps.notifications.deliverDue();
          return readOutbox(outbox).filter((message) => message.kind === 'password_reset').length;
        })
        .toBe(2);
      const latest = readOutbox(outbox).filter((message) => message.kind === 'password_reset').at(-1)!;
      const token = /token=([A-Za-z0-9_-]+)/.exec(latest.text)?.[1];
      clock.advance(31 * 60 * 1000);
      const confirm = await testApp.app.inject({ method: 'POST', url: '/auth/password-reset/confirm', payload: { token, password: 'late but sturdy passphrase' } });
      expect(confirm.statusCode).toBe(400);
    });
  });
});
