import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { LightMyRequestResponse } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/modules/auth/principal.js';
import { ManualClock } from '../../src/platform/clock.js';
import {
  generalRateLimit,
  limitFailedAuthentication,
  machineRateLimit,
  rateLimit,
} from '../../src/platform/rate-limit/hooks.js';
import { byEmail, byIp, byUser } from '../../src/platform/rate-limit/keys.js';
import type { RateLimitedEvent } from '../../src/platform/rate-limit/limiter.js';
import { createRateLimitMetrics } from '../../src/platform/rate-limit/metrics.js';
import { AppError } from '../../src/errors/app-error.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { captureLogger, memoryLimiter } from './helpers.js';

/** Test-only authentication: the principal comes from a header, as the real auth hook would set it. */
function principalFromHeader(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    const header = request.headers['x-test-principal'];
    if (typeof header === 'string') request.principal = JSON.parse(header) as Principal;
  });
}

const apiKey = (accountId: string): Record<string, string> => ({
  'x-test-principal': JSON.stringify({ kind: 'apiKey', accountId, keyId: `key_${accountId}` } satisfies Principal),
});
const user = (userId: string): Record<string, string> => ({
  'x-test-principal': JSON.stringify({
    kind: 'user',
    accountId: `acc_${userId}`,
    userId,
    role: 'owner',
    via: 'bearer',
    sessionId: 'sess_1',
  } satisfies Principal),
});

function login(app: FastifyInstance, remoteAddress: string, email = 'alice@example.com', headers: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: '/test/login',
    remoteAddress,
    headers: { 'content-type': 'application/json', ...headers },
    payload: { email },
  });
}

function expectRateLimitHeaders(response: LightMyRequestResponse, limit: number, remaining: number, windowSeconds: number): void {
  expect(response.headers['ratelimit-limit']).toBe(String(limit));
  expect(response.headers['ratelimit-remaining']).toBe(String(remaining));
  expect(response.headers['ratelimit-policy']).toBe(`${limit};w=${windowSeconds}`);
  expect(Number(response.headers['ratelimit-reset'])).toBeGreaterThan(0);
}

describe('rate limits on routes (RL-1, RL-3, RL-4)', () => {
  const clock = new ManualClock();
  const { logger } = captureLogger();
  const registry = new Registry();
  const metrics = createRateLimitMetrics(registry);
  const limited: RateLimitedEvent[] = [];
  const { limiter, backend } = memoryLimiter({ clock, logger, metrics, onLimited: (event) => void limited.push(event) });
  let loginsHandled = 0;
  let testApp: TestApp;
  let app: FastifyInstance;

  beforeAll(async () => {
    testApp = await createTestApp({
      beforeReady: (app) => {
        app.post(
          '/test/login',
          {
            preHandler: [
              rateLimit(limiter, 'login.ip', byIp),
              rateLimit(limiter, 'login.account', byEmail((request: FastifyRequest) => (request.body as { email?: unknown }).email)),
            ],
          },
          async () => {
            loginsHandled += 1;
            return { ok: true };
          },
        );
      },
    });
    app = testApp.app;
  });
  afterAll(async () => {
    await testApp.close();
    await backend.close();
  });

  it('answers the 6th login in a minute from one IP with 429, Retry-After and RateLimit headers; it has no effect', async () => {
    const before = loginsHandled;
    for (let i = 0; i < 5; i += 1) {
      const response = await login(app, '203.0.113.10', `user${i}@example.com`);
      expect(response.statusCode).toBe(200);
      // Allowed answers carry the headers too (the per-IP policy is the tighter one).
      expectRateLimitHeaders(response, 5, 4 - i, 60);
    }
    const refused = await login(app, '203.0.113.10', 'user5@example.com');
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['retry-after']).toBe('12');
    expectRateLimitHeaders(refused, 5, 0, 60);
    expect(refused.headers['ratelimit-reset']).toBe('60');
    expect(refused.json()).toEqual({ error: { code: 'RATE_LIMITED', message: 'Too many requests', requestId: refused.headers['x-request-id'] } });
    expect(loginsHandled - before).toBe(5);

    // One unit frees after window / limit = 12 s.
    clock.advance(12_000);
    expect((await login(app, '203.0.113.10', 'user6@example.com')).statusCode).toBe(200);
    expect((await login(app, '203.0.113.10', 'user7@example.com')).statusCode).toBe(429);
    expect(loginsHandled - before).toBe(6);
  });

  it('counts refusals in rate_limit_hits_total{policy} and logs one warning per episode without the IP', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/rate_limit_hits_total\{policy="login.ip"\} 2/);
    const warnings = testApp.logs.lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'rate limit reached');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, policy: 'login.ip', keyKind: 'ip', retryAfterSeconds: 12 });
    expect(typeof warnings[0]?.requestId).toBe('string');
    expect(testApp.logs.text).not.toContain('203.0.113.10');
    expect(limited).toHaveLength(1);
    expect(limited[0]).toMatchObject({ policy: 'login.ip', keyKind: 'ip', key: 'ip:203.0.113.10' });
    expect(limited[0]?.request?.id).toBe(warnings[0]?.requestId);
  });

  it('ignores X-Forwarded-For from a peer that is not a trusted proxy (RL-3)', async () => {
    for (let i = 0; i < 5; i += 1) {
      const response = await login(app, '203.0.113.20', `spoof${i}@example.com`, { 'x-forwarded-for': `198.51.100.${i}` });
      expect(response.statusCode).toBe(200);
    }
    const spoofed = await login(app, '203.0.113.20', 'spoof5@example.com', { 'x-forwarded-for': '198.51.100.99' });
    expect(spoofed.statusCode).toBe(429);
    // Another real peer has its own bucket.
    expect((await login(app, '203.0.113.21', 'spoof6@example.com')).statusCode).toBe(200);
  });

  it('ignores X-Forwarded-For in the default test app: every injected request is 127.0.0.1', async () => {
    clock.advance(60 * 60_000);
    for (let i = 0; i < 5; i += 1) {
      const response = await app.inject({
        method: 'POST',
        url: '/test/login',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `192.0.2.${i}` },
        payload: { email: `local${i}@example.com` },
      });
      expect(response.statusCode).toBe(200);
    }
    const sixth = await app.inject({
      method: 'POST',
      url: '/test/login',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '192.0.2.77' },
      payload: { email: 'local5@example.com' },
    });
    expect(sixth.statusCode).toBe(429);
  });

  it('limits logins per account (normalised email) across IPs, known or not; headers show the tighter policy', async () => {
    clock.advance(60 * 60_000);
    const before = loginsHandled;
    const spellings = ['Target@Example.com', ' target@example.com', 'TARGET@EXAMPLE.COM'];
    for (let i = 0; i < 10; i += 1) {
      const response = await login(app, `198.51.100.${i}`, spellings[i % spellings.length]);
      expect(response.statusCode).toBe(200);
      // From the 7th on, the per-account budget (10/hour) has fewer left than each fresh IP's (5/min).
      expect(response.headers['ratelimit-limit']).toBe(i >= 6 ? '10' : '5');
    }
    const eleventh = await login(app, '198.51.100.200', 'target@example.com');
    expect(eleventh.statusCode).toBe(429);
    expect(eleventh.headers['ratelimit-limit']).toBe('10');
    expect(eleventh.headers['ratelimit-policy']).toBe('10;w=3600');
    expect(Number(eleventh.headers['retry-after'])).toBe(360);
    expect(loginsHandled - before).toBe(10);
    // Another email from the same fresh IP is fine.
    expect((await login(app, '198.51.100.201', 'other@example.com')).statusCode).toBe(200);
  });
});

describe('rate limits behind a trusted proxy (RL-3)', () => {
  const clock = new ManualClock();
  const { logger } = captureLogger();
  const { limiter, backend } = memoryLimiter({ clock, logger });
  let testApp: TestApp;

  beforeAll(async () => {
    testApp = await createTestApp({
      env: { TRUST_PROXY: '10.0.0.0/8' },
      beforeReady: (app) => {
        app.post('/test/login', { preHandler: rateLimit(limiter, 'login.ip', byIp) }, async () => ({ ok: true }));
      },
    });
  });
  afterAll(async () => {
    await testApp.close();
    await backend.close();
  });

  it('gives different forwarded clients separate buckets', async () => {
    const { app } = testApp;
    for (let i = 0; i < 5; i += 1) expect((await login(app, '10.0.0.2', 'a@example.com', { 'x-forwarded-for': '198.51.100.1' })).statusCode).toBe(200);
    expect((await login(app, '10.0.0.2', 'a@example.com', { 'x-forwarded-for': '198.51.100.1' })).statusCode).toBe(429);
    expect((await login(app, '10.0.0.2', 'a@example.com', { 'x-forwarded-for': '198.51.100.2' })).statusCode).toBe(200);
    // A client cannot escape by prepending its own entries: the right-most untrusted address counts.
    expect((await login(app, '10.0.0.2', 'a@example.com', { 'x-forwarded-for': '1.2.3.4, 198.51.100.1' })).statusCode).toBe(429);
  });

  it('still ignores X-Forwarded-For from a peer outside TRUST_PROXY', async () => {
    const { app } = testApp;
    for (let i = 0; i < 5; i += 1) {
      expect((await login(app, '192.0.2.9', 'b@example.com', { 'x-forwarded-for': `198.51.100.${50 + i}` })).statusCode).toBe(200);
    }
    expect((await login(app, '192.0.2.9', 'b@example.com', { 'x-forwarded-for': '198.51.100.99' })).statusCode).toBe(429);
  });
});

describe('the general limit, failed authentications and machine routes (RL-5, KEY-5)', () => {
  const clock = new ManualClock();
  const { logger } = captureLogger();
  const { limiter, backend } = memoryLimiter({
    clock,
    logger,
    overrides: { 'general.ip': { limit: 3 }, 'entitlements.user': { limit: 2 } },
  });
  const planRpm: Record<string, number | null> = { acc_free: 3, acc_enterprise: null, acc_other: 3 };
  let handled = 0;
  let testApp: TestApp;
  let app: FastifyInstance;

  beforeAll(async () => {
    testApp = await createTestApp({
      beforeReady: (app) => {
        // As in production: after the authentication hook (also onRequest), before body parsing.
        principalFromHeader(app);
        app.addHook('onRequest', generalRateLimit(limiter));
        app.get('/test/public', async () => {
          handled += 1;
          return { ok: true };
        });
        app.post('/test/webhook', { config: { rateLimit: { general: false } } }, async () => ({ ok: true }));
        app.get('/test/authenticate', async (request) => {
          if (request.headers['x-test-key'] !== 'right') {
            await limitFailedAuthentication(limiter, request);
            throw new AppError('UNAUTHENTICATED', 'Authentication required');
          }
          return { ok: true };
        });
        app.get(
          '/test/entitlements',
          {
            preHandler: machineRateLimit(limiter, {
              planRequestsPerMinute: async (accountId) => (accountId in planRpm ? (planRpm[accountId] ?? null) : 600),
              userPolicy: 'entitlements.user',
            }),
          },
          async () => {
            handled += 1;
            return { ok: true };
          },
        );
        app.get('/test/billing', { preHandler: rateLimit(limiter, 'billing.user', byUser) }, async () => ({ ok: true }));
      },
    });
    app = testApp.app;
  });
  afterAll(async () => {
    await testApp.close();
    await backend.close();
  });

  it('limits unauthenticated requests per IP, 404s included, but never the probes', async () => {
    const before = handled;
    const peer = '203.0.113.30';
    expect((await app.inject({ method: 'GET', url: '/test/public', remoteAddress: peer })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/no/such/route', remoteAddress: peer })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/test/public', remoteAddress: peer })).statusCode).toBe(200);
    const refused = await app.inject({ method: 'GET', url: '/test/public', remoteAddress: peer });
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['ratelimit-policy']).toBe('3;w=900');
    expect((await app.inject({ method: 'GET', url: '/no/such/route', remoteAddress: peer })).statusCode).toBe(429);
    expect(handled - before).toBe(2);
    for (let i = 0; i < 10; i += 1) {
      expect((await app.inject({ method: 'GET', url: '/health', remoteAddress: peer })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/ready', remoteAddress: peer })).statusCode).toBe(200);
    }
  });

  it('does not apply the general limit to authenticated callers or to routes that opt out', async () => {
    const peer = '203.0.113.31';
    for (let i = 0; i < 10; i += 1) {
      expect((await app.inject({ method: 'GET', url: '/test/public', remoteAddress: peer, headers: apiKey('acc_x') })).statusCode).toBe(200);
      expect((await app.inject({ method: 'POST', url: '/test/webhook', remoteAddress: peer, headers: { 'content-type': 'application/json' }, payload: {} })).statusCode).toBe(200);
    }
  });

  it('counts failed authentications against the general per-IP limit, then answers 429 instead of 401', async () => {
    const peer = '203.0.113.32';
    const statuses = [];
    for (let i = 0; i < 5; i += 1) {
      statuses.push((await app.inject({ method: 'GET', url: '/test/authenticate', remoteAddress: peer, headers: apiKey('acc_x') })).statusCode);
    }
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    // The good credential from the same address still works: only failures count.
    expect((await app.inject({ method: 'GET', url: '/test/authenticate', remoteAddress: peer, headers: { ...apiKey('acc_x'), 'x-test-key': 'right' } })).statusCode).toBe(200);
  });

  it('limits account keys on machine routes per account by the plan, whatever their IP', async () => {
    const before = handled;
    const statuses = [];
    for (let i = 0; i < 4; i += 1) {
      statuses.push((await app.inject({ method: 'GET', url: '/test/entitlements', remoteAddress: `198.51.100.${i}`, headers: apiKey('acc_free') })).statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
    expect(handled - before).toBe(3);
    const refused = await app.inject({ method: 'GET', url: '/test/entitlements', headers: apiKey('acc_free') });
    expect(refused.headers['ratelimit-policy']).toBe('3;w=60');
    expect(refused.headers['retry-after']).toBe('20');
    // Another account on the same plan has its own budget.
    expect((await app.inject({ method: 'GET', url: '/test/entitlements', headers: apiKey('acc_other') })).statusCode).toBe(200);
  });

  it('does not limit an unlimited (ENTERPRISE) plan, and sends no RateLimit headers for it', async () => {
    for (let i = 0; i < 50; i += 1) {
      const response = await app.inject({ method: 'GET', url: '/test/entitlements', headers: apiKey('acc_enterprise') });
      expect(response.statusCode).toBe(200);
      // The app's own general per-IP limit (for callers it has not authenticated) may add
      // its headers; the machine limit (a 60 s window) must not.
      expect(String(response.headers['ratelimit-policy'] ?? '')).not.toMatch(/w=60\b/);
    }
  });

  it('limits people on machine routes by the per-user policy', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i += 1) statuses.push((await app.inject({ method: 'GET', url: '/test/entitlements', headers: user('u_1') })).statusCode);
    expect(statuses).toEqual([200, 200, 429]);
    expect((await app.inject({ method: 'GET', url: '/test/entitlements', headers: user('u_2') })).statusCode).toBe(200);
  });

  it('keys per-user policies by user, so one user cannot spend another user\'s budget', async () => {
    for (let i = 0; i < 10; i += 1) expect((await app.inject({ method: 'GET', url: '/test/billing', headers: user('u_3') })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/test/billing', headers: user('u_3') })).statusCode).toBe(429);
    expect((await app.inject({ method: 'GET', url: '/test/billing', headers: user('u_4') })).statusCode).toBe(200);
  });

  it('fails at registration for a policy that does not exist', () => {
    expect(() => rateLimit(limiter, 'no.such.policy' as 'login.ip', byIp)).toThrow(/unknown rate-limit policy "no.such.policy"/);
  });
});
