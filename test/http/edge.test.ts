import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

/** Routes that exist only in this test, to exercise the platform around them. */
function testRoutes(app: FastifyInstance): void {
  app.get('/test/boom', async () => {
    const error = new Error('duplicate key value violates unique constraint "accounts_pkey" in SELECT * FROM accounts');
    throw error;
  });
  app.post(
    '/test/strict',
    {
      schema: {
        body: Type.Object({
          amount: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
          email: Type.Optional(Type.String({ format: 'email', maxLength: 254 })),
          events: Type.Optional(Type.Array(Type.Object({ quantity: Type.Integer({ minimum: 1 }) }), { maxItems: 10 })),
        }),
      },
    },
    async (request) => ({ received: request.body }),
  );
  app.get(
    '/test/query',
    { schema: { querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 100 }) }) } },
    async (request) => ({ query: request.query }),
  );
  app.post('/test/large', { bodyLimit: 50 * 1024 * 1024 }, async () => ({ ok: true }));
  app.get('/test/ip', async (request) => ({ ip: request.ip, protocol: request.protocol }));
}

const SECURITY_HEADERS = {
  'strict-transport-security': /max-age=31536000; includeSubDomains/,
  'x-content-type-options': /^nosniff$/,
  'x-frame-options': /^DENY$/,
  'content-security-policy': /default-src 'self'/,
  'referrer-policy': /^no-referrer$/,
};

function expectSecurityHeaders(headers: Record<string, unknown>): void {
  for (const [name, pattern] of Object.entries(SECURITY_HEADERS)) {
    expect(String(headers[name]), name).toMatch(pattern);
  }
}

function jsonBody(size: number): string {
  return JSON.stringify({ amount: 1, padding: 'x'.repeat(size) });
}

describe('the HTTP edge (development defaults)', () => {
  let testApp: TestApp;
  let app: FastifyInstance;

  beforeAll(async () => {
    testApp = await createTestApp({ beforeReady: testRoutes });
    app = testApp.app;
  });
  afterAll(async () => testApp.close());

  describe('security headers (HTTP-1)', () => {
    it.each([
      ['a normal answer', '/health', 200],
      ['an unknown route', '/no/such/route', 404],
      ['a forced internal error', '/test/boom', 500],
    ])('are on %s', async (_label, url, status) => {
      const response = await app.inject({ method: 'GET', url });
      expect(response.statusCode).toBe(status);
      expectSecurityHeaders(response.headers);
    });

    it('are on refusals made before routing (bad Host, oversized body)', async () => {
      const badHost = await app.inject({ method: 'GET', url: '/health', headers: { host: 'evil.example' } });
      expectSecurityHeaders(badHost.headers);
      const tooLarge = await app.inject({
        method: 'POST',
        url: '/test/strict',
        headers: { 'content-type': 'application/json' },
        payload: jsonBody(2 * 1024 * 1024),
      });
      expect(tooLarge.statusCode).toBe(413);
      expectSecurityHeaders(tooLarge.headers);
    });

    it('are exactly the hardened set (what helmet sends with our settings), and nothing else', async () => {
      const response = await app.inject({ method: 'GET', url: '/health' });
      const names = [
        'content-security-policy',
        'cross-origin-opener-policy',
        'cross-origin-resource-policy',
        'origin-agent-cluster',
        'referrer-policy',
        'strict-transport-security',
        'x-content-type-options',
        'x-dns-prefetch-control',
        'x-download-options',
        'x-frame-options',
        'x-permitted-cross-domain-policies',
        'x-xss-protection',
      ];
      const sent = Object.fromEntries(names.map((name) => [name, response.headers[name]]));
      expect(sent).toEqual({
        'content-security-policy': "default-src 'self';base-uri 'self';form-action 'self';frame-ancestors 'none';object-src 'none'",
        'cross-origin-opener-policy': 'same-origin',
        'cross-origin-resource-policy': 'same-origin',
        'origin-agent-cluster': '?1',
        'referrer-policy': 'no-referrer',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'x-content-type-options': 'nosniff',
        'x-dns-prefetch-control': 'off',
        'x-download-options': 'noopen',
        'x-frame-options': 'DENY',
        'x-permitted-cross-domain-policies': 'none',
        'x-xss-protection': '0',
      });
      expect(response.headers['x-powered-by']).toBeUndefined();
      expect(response.headers['server']).toBeUndefined();
    });

    it('has no HSTS preload outside production', async () => {
      const response = await app.inject({ method: 'GET', url: '/health' });
      expect(response.headers['strict-transport-security']).not.toContain('preload');
    });
  });

  describe('trusted hosts (HTTP-3)', () => {
    it('answers 400 in the envelope for a Host outside ALLOWED_HOSTS', async () => {
      const response = await app.inject({ method: 'GET', url: '/health', headers: { host: 'evil.example' } });
      expect(response.statusCode).toBe(400);
      expect(response.json()).toMatchObject({ error: { code: 'HOST_NOT_ALLOWED', requestId: expect.any(String) } });
    });

    it.each(['localhost:3000', '127.0.0.1', '[::1]:3000', 'LOCALHOST'])('accepts the allowed host %s', async (host) => {
      const response = await app.inject({ method: 'GET', url: '/health', headers: { host } });
      expect(response.statusCode).toBe(200);
    });

    it('is not fooled by X-Forwarded-Host from an untrusted client', async () => {
      const response = await app.inject({
        method: 'GET',
        url: '/health',
        headers: { host: 'evil.example', 'x-forwarded-host': 'localhost' },
      });
      expect(response.statusCode).toBe(400);
    });
  });

  describe('body limits and JSON safety (HTTP-4)', () => {
    it('answers 413 to a 2 MB JSON body', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/test/strict',
        headers: { 'content-type': 'application/json' },
        payload: jsonBody(2 * 1024 * 1024),
      });
      expect(response.statusCode).toBe(413);
      expect(response.json().error.code).toBe('PAYLOAD_TOO_LARGE');
    });

    it('caps a route that asks for more than 10 MB at 10 MB', async () => {
      const response = await app.inject({
        method: 'POST',
        url: '/test/large',
        headers: { 'content-type': 'application/json' },
        payload: jsonBody(11 * 1024 * 1024),
      });
      expect(response.statusCode).toBe(413);
      const accepted = await app.inject({
        method: 'POST',
        url: '/test/large',
        headers: { 'content-type': 'application/json' },
        payload: jsonBody(3 * 1024 * 1024),
      });
      expect(accepted.statusCode).toBe(200);
    });

    it.each([
      ['__proto__', '{"__proto__":{"x":1}}'],
      ['nested __proto__', '{"amount":1,"events":[{"quantity":1,"__proto__":{"polluted":true}}]}'],
      ['escaped __proto__', '{"\\u005f_proto__":{"x":1}}'],
      ['constructor.prototype', '{"constructor":{"prototype":{"x":1}}}'],
    ])('refuses %s with 400 and leaves Object.prototype alone', async (_label, payload) => {
      const response = await app.inject({
        method: 'POST',
        url: '/test/strict',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('INVALID_JSON');
      expect(({} as Record<string, unknown>).x).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('answers 400 to malformed JSON and 415 to a non-JSON content type', async () => {
      const malformed = await app.inject({
        method: 'POST',
        url: '/test/strict',
        headers: { 'content-type': 'application/json' },
        payload: '{"amount":',
      });
      expect(malformed.statusCode).toBe(400);
      expect(malformed.json().error.code).toBe('INVALID_JSON');
      const text = await app.inject({
        method: 'POST',
        url: '/test/strict',
        headers: { 'content-type': 'text/plain' },
        payload: 'amount=1',
      });
      expect(text.statusCode).toBe(415);
      expect(text.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    });
  });

  describe('schema validation (HTTP-5)', () => {
    async function post(payload: unknown) {
      return app.inject({ method: 'POST', url: '/test/strict', payload: payload as Record<string, unknown> });
    }

    it('accepts a valid body', async () => {
      const response = await post({ amount: 5, email: 'a@example.com' });
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ received: { amount: 5, email: 'a@example.com' } });
    });

    it.each([
      ['a string for an integer', { amount: '1' }, 'amount', /must be integer/],
      ['true for an integer', { amount: true }, 'amount', /must be integer/],
      ['a fraction', { amount: 1.5 }, 'amount', /must be integer/],
      ['zero', { amount: 0 }, 'amount', /must be >= 1/],
      ['an absurd amount', { amount: 10_000_000 }, 'amount', /must be <= 1000000/],
      ['a bad email', { amount: 1, email: 'not-an-email' }, 'email', /format "email"/],
      ['a missing field', {}, 'amount', /is required/],
      ['an unknown property', { amount: 1, admin: true }, 'admin', /is not an allowed property/],
      ['a bad batch item', { amount: 1, events: [{ quantity: 1 }, { quantity: 1 }, { quantity: 'x' }] }, 'events[2].quantity', /must be integer/],
      ['an unknown property in a batch item', { amount: 1, events: [{ quantity: 1, extra: 1 }] }, 'events[0].extra', /not an allowed/],
    ])('answers 400 naming the field for %s', async (_label, payload, field, message) => {
      const response = await post(payload);
      expect(response.statusCode).toBe(400);
      const body = response.json();
      expect(body.error.code).toBe('VALIDATION_FAILED');
      expect(body.error.details[0].field).toBe(field);
      expect(body.error.details[0].message).toMatch(message);
      expect(body.error.message).toContain(field);
    });

    it('coerces query strings (text on the wire) but still checks their range', async () => {
      const ok = await app.inject({ method: 'GET', url: '/test/query?limit=10' });
      expect(ok.json()).toEqual({ query: { limit: 10 } });
      const bad = await app.inject({ method: 'GET', url: '/test/query?limit=1000' });
      expect(bad.statusCode).toBe(400);
      expect(bad.json().error.details[0].field).toBe('query.limit');
    });
  });

  describe('errors (HTTP-6)', () => {
    it('answers an unknown route with a JSON 404 in the envelope', async () => {
      const response = await app.inject({ method: 'GET', url: '/no/such/route?x=1' });
      expect(response.statusCode).toBe(404);
      expect(response.headers['content-type']).toMatch(/application\/json/);
      expect(response.json()).toEqual({
        error: { code: 'NOT_FOUND', message: 'No route GET /no/such/route', requestId: expect.any(String) },
      });
    });

    it('answers a forced internal error with 500 "Internal error", a request id and nothing internal', async () => {
      const response = await app.inject({ method: 'GET', url: '/test/boom' });
      expect(response.statusCode).toBe(500);
      const body = response.json();
      expect(body).toEqual({ error: { code: 'INTERNAL_ERROR', message: 'Internal error', requestId: expect.any(String) } });
      expect(body.error.requestId).toBe(response.headers['x-request-id']);
      expect(response.body).not.toMatch(/stack|SELECT|accounts_pkey|\.ts:|at /);
      // The operator still gets the whole story in the log, tied to the same request id.
      const logged = testApp.logs.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
      const entry = logged.find((line) => line.msg === 'unhandled error' && line.requestId === body.error.requestId);
      expect(JSON.stringify(entry)).toContain('accounts_pkey');
    });
  });

  describe('request ids', () => {
    it('keeps a well-formed incoming X-Request-Id and replaces a malformed one', async () => {
      const kept = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'lb-12345678' } });
      expect(kept.headers['x-request-id']).toBe('lb-12345678');
      const replaced = await app.inject({
        method: 'GET',
        url: '/health',
        headers: { 'x-request-id': 'bad id\nwith newline' },
      });
      expect(replaced.headers['x-request-id']).toMatch(/^req_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    });
  });

  describe('client IP without trusted proxies (RL-3)', () => {
    it('ignores X-Forwarded-For and X-Forwarded-Proto from a client that is not a trusted proxy', async () => {
      const response = await app.inject({
        method: 'GET',
        url: '/test/ip',
        headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' },
      });
      expect(response.json()).toEqual({ ip: '127.0.0.1', protocol: 'http' });
    });
  });

  describe('CORS without configured origins (HTTP-2)', () => {
    it('sends no CORS headers to any origin', async () => {
      const response = await app.inject({ method: 'GET', url: '/health', headers: { origin: 'https://evil.example' } });
      expect(response.headers['access-control-allow-origin']).toBeUndefined();
    });
  });
});

describe('the HTTP edge with proxies, CORS origins and HTTPS enforcement', () => {
  let testApp: TestApp;
  let app: FastifyInstance;

  beforeAll(async () => {
    testApp = await createTestApp({
      env: {
        TRUST_PROXY: '127.0.0.1/32',
        CORS_ORIGINS: 'https://app.example.com',
        HTTPS_REDIRECT: 'true',
        ALLOWED_HOSTS: 'billing.example.com,localhost',
      },
      beforeReady: testRoutes,
    });
    app = testApp.app;
  });
  afterAll(async () => testApp.close());

  const viaProxy = { host: 'billing.example.com', 'x-forwarded-proto': 'https' };

  it('takes the client IP from X-Forwarded-For only through the trusted proxy (RL-3)', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/test/ip',
      headers: { ...viaProxy, 'x-forwarded-for': '198.51.100.7, 203.0.113.9' },
    });
    // The right-most address not belonging to a trusted proxy is the client.
    expect(response.json()).toEqual({ ip: '203.0.113.9', protocol: 'https' });
  });

  it('does not trust a forwarded address from outside the proxy list', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/test/ip',
      remoteAddress: '192.0.2.50',
      headers: { host: 'billing.example.com', 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' },
    });
    // Not via a trusted proxy: the forwarded protocol is ignored, so the request is plain HTTP and redirected.
    expect(response.statusCode).toBe(301);
  });

  it('redirects plain-HTTP GETs to HTTPS behind the trusted proxy (HTTP-7)', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/test/ip?a=1',
      headers: { host: 'billing.example.com', 'x-forwarded-proto': 'http' },
    });
    expect(response.statusCode).toBe(301);
    expect(response.headers.location).toBe('https://billing.example.com/test/ip?a=1');
  });

  it('refuses plain-HTTP writes instead of redirecting them', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/test/strict',
      headers: { host: 'billing.example.com', 'x-forwarded-proto': 'http' },
      payload: { amount: 1 },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.code).toBe('HTTPS_REQUIRED');
  });

  it('lets probes reach /health over plain HTTP', async () => {
    const response = await app.inject({ method: 'GET', url: '/health', headers: { host: 'localhost' } });
    expect(response.statusCode).toBe(200);
  });

  it('allows a configured origin with credentials and explicit methods and headers (HTTP-2)', async () => {
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/test/strict',
      headers: {
        ...viaProxy,
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type,x-csrf-token',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(preflight.headers['access-control-allow-credentials']).toBe('true');
    expect(preflight.headers['access-control-allow-methods']).toBe('GET, HEAD, POST, PUT, PATCH, DELETE');
    expect(String(preflight.headers['access-control-allow-headers'])).toContain('X-CSRF-Token');
  });

  it('gives an unlisted origin no CORS headers', async () => {
    const response = await app.inject({
      method: 'GET',
      url: '/health',
      headers: { ...viaProxy, origin: 'https://evil.example' },
    });
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    expect(response.headers['access-control-allow-credentials']).toBeUndefined();
  });
});
