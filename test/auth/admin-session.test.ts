import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import { asSystem } from '../../src/platform/database/access.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

/**
 * The operator dashboard's session (UI-1): the admin token exchanged once for an
 * HttpOnly, SameSite=Strict, path-scoped cookie that expires, can be ended, needs CSRF
 * on changes, and is refused when forged.
 */
const opened: TestApp[] = [];
afterEach(async () => {
  for (const testApp of opened.splice(0)) await testApp.close();
});

interface Opened {
  readonly testApp: TestApp;
  readonly token: string;
  readonly clock: ManualClock;
}

async function open(env: Record<string, string> = {}): Promise<Opened> {
  const token = randomBytes(32).toString('hex');
  const clock = new ManualClock('2026-06-01T12:00:00Z');
  const testApp = await createTestApp({ clock, env: { ADMIN_API_TOKEN: token, ...env } });
  opened.push(testApp);
  return { testApp, token, clock };
}

function cookieOf(response: LightMyRequestResponse, name: string) {
  return response.cookies.find((cookie) => cookie.name === name);
}

async function signIn({ testApp, token }: Opened): Promise<{ cookie: string; csrfToken: string; response: LightMyRequestResponse }> {
  const response = await testApp.app.inject({ method: 'POST', url: '/api/admin/session', payload: { token } });
  expect(response.statusCode, response.body).toBe(201);
  const cookie = cookieOf(response, 'admin_session');
  if (!cookie) throw new Error('no admin_session cookie');
  return { cookie: cookie.value, csrfToken: response.json().csrfToken as string, response };
}

async function auditEvents(testApp: TestApp): Promise<{ event: string; actor_id: string | null }[]> {
  const { rows } = await asSystem(testApp.deps.database, (tx) =>
    tx.query<{ event: string; actor_id: string | null }>(`SELECT event, actor_id FROM audit_log ORDER BY seq`),
  );
  return rows;
}

describe('operator dashboard sessions (UI-1)', () => {
  it('exchanges the admin token for an HttpOnly, SameSite=Strict cookie scoped to /api/admin; the token is never sent back', async () => {
    const opened = await open();
    const { response, csrfToken } = await signIn(opened);
    const cookie = cookieOf(response, 'admin_session');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/api/admin', maxAge: 1800 });
    expect(cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(response.headers['cache-control']).toBe('no-store');
    expect(response.json()).toEqual({ session: { expiresAt: '2026-06-01T12:30:00.000Z' }, csrfToken });
    // Nowhere in the answer, its headers or the logs.
    expect(response.body).not.toContain(opened.token);
    expect(JSON.stringify(response.headers)).not.toContain(opened.token);
    expect(opened.testApp.logs.text).not.toContain(opened.token);
    // Only a hash of the cookie is stored.
    const { rows } = await asSystem(opened.testApp.deps.database, (tx) => tx.query<{ token_hash: string }>(`SELECT token_hash FROM admin_sessions`));
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).not.toContain(cookie?.value);
    expect((await auditEvents(opened.testApp)).map((entry) => entry.event)).toContain('admin.session_started');
  });

  it('refuses a wrong token with 401, sets no cookie and records the failure', async () => {
    const opened = await open();
    const response = await opened.testApp.app.inject({ method: 'POST', url: '/api/admin/session', payload: { token: 'b'.repeat(64) } });
    expect(response.statusCode).toBe(401);
    expect(response.json().error.code).toBe('UNAUTHENTICATED');
    expect(cookieOf(response, 'admin_session')).toBeUndefined();
    const events = (await auditEvents(opened.testApp)).map((entry) => entry.event).filter((event) => event.startsWith('auth.') || event.startsWith('admin.'));
    expect(events).toEqual(['auth.failed']);
    const missing = await opened.testApp.app.inject({ method: 'POST', url: '/api/admin/session', payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.details[0].field).toBe('token');
  });

  it('lets the cookie act as the operator, with CSRF on every change; the audit trail names the session', async () => {
    const opened = await open();
    const { cookie, csrfToken } = await signIn(opened);
    const { app } = opened.testApp;
    const list = await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie } });
    expect(list.statusCode, list.body).toBe(200);

    const withoutCsrf = await app.inject({ method: 'POST', url: '/api/admin/accounts', cookies: { admin_session: cookie }, payload: { name: 'Acme' } });
    expect(withoutCsrf.statusCode).toBe(403);
    expect(withoutCsrf.json().error.code).toBe('CSRF_FAILED');
    const wrongCsrf = await app.inject({
      method: 'POST',
      url: '/api/admin/accounts',
      cookies: { admin_session: cookie },
      headers: { 'x-csrf-token': 'x'.repeat(43) },
      payload: { name: 'Acme' },
    });
    expect(wrongCsrf.statusCode).toBe(403);
    const { rows: none } = await asSystem(opened.testApp.deps.database, (tx) => tx.query(`SELECT id FROM accounts`));
    expect(none).toHaveLength(0);

    const created = await app.inject({
      method: 'POST',
      url: '/api/admin/accounts',
      cookies: { admin_session: cookie },
      headers: { 'x-csrf-token': csrfToken },
      payload: { name: 'Acme' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const session = await app.inject({ method: 'GET', url: '/api/admin/session', cookies: { admin_session: cookie } });
    expect(session.json()).toEqual({ session: { expiresAt: '2026-06-01T12:30:00.000Z' }, csrfToken });
    const events = await auditEvents(opened.testApp);
    const started = events.find((entry) => entry.event === 'admin.session_started');
    expect(started?.actor_id).toMatch(/^adms_/);
    expect(events.find((entry) => entry.event === 'account.created')?.actor_id).toBe(started?.actor_id);
  });

  it('refuses a forged, malformed or expired cookie with 401', async () => {
    const opened = await open();
    const { app } = opened.testApp;
    for (const forged of [randomBytes(32).toString('base64url'), 'not-a-session', '']) {
      const response = await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: forged } });
      expect(response.statusCode, forged).toBe(401);
    }
    const { cookie } = await signIn(opened);
    opened.clock.advance(29 * 60 * 1000);
    expect((await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie } })).statusCode).toBe(200);
    opened.clock.advance(60 * 1000 + 1);
    const expired = await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie } });
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.message).toBe('Operator session expired; sign in again');
  });

  it('signs out: the cookie is cleared and refused from then on', async () => {
    const opened = await open();
    const { app } = opened.testApp;
    const { cookie, csrfToken } = await signIn(opened);
    const noCsrf = await app.inject({ method: 'DELETE', url: '/api/admin/session', cookies: { admin_session: cookie } });
    expect(noCsrf.statusCode).toBe(403);
    const out = await app.inject({ method: 'DELETE', url: '/api/admin/session', cookies: { admin_session: cookie }, headers: { 'x-csrf-token': csrfToken } });
    expect(out.statusCode).toBe(204);
    expect(cookieOf(out, 'admin_session')).toMatchObject({ value: '', path: '/api/admin' });
    expect((await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie } })).statusCode).toBe(401);
    expect((await auditEvents(opened.testApp)).map((entry) => entry.event)).toContain('admin.session_ended');
  });

  it('is not fooled by a portal cookie beside it, and refuses it together with a Bearer token', async () => {
    const opened = await open();
    const { app } = opened.testApp;
    const { cookie } = await signIn(opened);
    const signup = await app.inject({ method: 'POST', url: '/auth/signup', payload: { email: 'owner@example.com', password: 'correct horse battery staple' } });
    const access = cookieOf(signup, 'access_token')?.value ?? '';
    // A browser signed in to both sends both cookies to the operator API: the session decides.
    const both = await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie, access_token: access } });
    expect(both.statusCode, both.body).toBe(200);
    // On people's routes the operator cookie plays no part.
    const me = await app.inject({ method: 'GET', url: '/auth/me', cookies: { admin_session: cookie, access_token: access } });
    expect(me.statusCode).toBe(200);
    const mixed = await app.inject({
      method: 'GET',
      url: '/api/admin/accounts',
      cookies: { admin_session: cookie },
      headers: { authorization: `Bearer ${opened.token}` },
    });
    expect(mixed.statusCode).toBe(400);
    expect(mixed.json().error.code).toBe('AMBIGUOUS_CREDENTIALS');
  });

  it('counts sign-in under admin.ip and session requests under admin_session.ip', async () => {
    const opened = await open({ RATE_LIMITS: JSON.stringify({ 'admin.ip': { limit: 2, windowSeconds: 3600 }, 'admin_session.ip': { limit: 5, windowSeconds: 3600 } }) });
    const { app } = opened.testApp;
    const { cookie } = await signIn(opened);
    for (let index = 0; index < 5; index += 1) {
      expect((await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie } })).statusCode).toBe(200);
    }
    expect((await app.inject({ method: 'GET', url: '/api/admin/accounts', cookies: { admin_session: cookie } })).statusCode).toBe(429);
    // The Bearer token still has admin.ip's own allowance (2, one used by the sign-in).
    const bearer = await app.inject({ method: 'GET', url: '/api/admin/accounts', headers: { authorization: `Bearer ${opened.token}` } });
    expect(bearer.statusCode).toBe(200);
    const third = await app.inject({ method: 'POST', url: '/api/admin/session', payload: { token: opened.token } });
    expect(third.statusCode).toBe(429);
  });
});
