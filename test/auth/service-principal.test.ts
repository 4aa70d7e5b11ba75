import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

const SERVICE_SECRET = 'service-shared-secret-for-tests-0123456789';
const PROVIDER_SECRET = 'supabase-style-jwt-secret-for-tests-0123456789';

async function hsToken(claims: Record<string, unknown>, secret = PROVIDER_SECRET, expiresIn: string | number = '5m') {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(secret));
}

describe('services acting for an external identity provider user (KEY-4, AUTH-7)', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    testApp = await createTestApp({ env: { API_SHARED_SECRET: SERVICE_SECRET, EXTERNAL_JWT_SECRET: PROVIDER_SECRET, EXTERNAL_JWT_ISSUER: 'https://idp.example' } });
  });
  afterAll(async () => testApp.close());

  async function account(headers: Record<string, string>) {
    return testApp.app.inject({ method: 'GET', url: '/api/account', headers });
  }

  it('maps the user token to one account, created on first sight and reused after', async () => {
    const token = await hsToken({ sub: 'user-123', iss: 'https://idp.example', email: 'someone@example.com' });
    const first = await account({ 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${token}` });
    expect(first.statusCode, first.body).toBe(200);
    const second = await account({ 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${await hsToken({ sub: 'user-123', iss: 'https://idp.example' })}` });
    expect(second.json().account.id).toBe(first.json().account.id);
    const other = await account({ 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${await hsToken({ sub: 'user-456', iss: 'https://idp.example' })}` });
    expect(other.json().account.id).not.toBe(first.json().account.id);
  });

  it('answers 403 to a missing or wrong service secret', async () => {
    const token = await hsToken({ sub: 'user-123', iss: 'https://idp.example' });
    expect((await account({ 'x-service-secret': `${SERVICE_SECRET}x`, authorization: `Bearer ${token}` })).statusCode).toBe(403);
    // Without the secret the token is just an unknown Bearer token.
    expect((await account({ authorization: `Bearer ${token}` })).statusCode).toBe(401);
  });

  it.each([
    ['signed with another key', () => hsToken({ sub: 'user-123', iss: 'https://idp.example' }, 'some-other-secret-0123456789-0123456789')],
    ['from another issuer', () => hsToken({ sub: 'user-123', iss: 'https://evil.example' })],
    ['expired', () => hsToken({ sub: 'user-123', iss: 'https://idp.example' }, PROVIDER_SECRET, Math.floor(Date.now() / 1000) - 60)],
    ['without a subject', () => hsToken({ iss: 'https://idp.example' })],
    [
      'with alg none',
      async () =>
        `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'user-123', iss: 'https://idp.example', exp: 9_999_999_999 })).toString('base64url')}.`,
    ],
  ])('refuses a user token %s with 401', async (_label, make) => {
    const response = await account({ 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${await make()}` });
    expect(response.statusCode).toBe(401);
  });

  it('refuses a service call without a user token', async () => {
    expect((await account({ 'x-service-secret': SERVICE_SECRET })).statusCode).toBe(401);
  });
});

describe('external identity provider with a JWKS (RS/ES keys)', () => {
  let testApp: TestApp;
  let jwks: http.Server;
  let privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  let publicPem: string;

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    publicPem = await exportSPKI(pair.publicKey);
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'provider-key', alg: 'ES256', use: 'sig' };
    jwks = http.createServer((_request, response) => response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const port = (jwks.address() as AddressInfo).port;
    testApp = await createTestApp({ env: { API_SHARED_SECRET: SERVICE_SECRET, EXTERNAL_JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json` } });
  });
  afterAll(async () => {
    await testApp.close();
    await new Promise((resolve) => jwks.close(resolve));
  });

  it('accepts a token signed by the provider key and refuses HS256 signed with the public key (algorithm confusion)', async () => {
    const good = await new SignJWT({ sub: 'auth0|abc' }).setProtectedHeader({ alg: 'ES256', kid: 'provider-key' }).setIssuedAt().setExpirationTime('5m').sign(privateKey);
    const ok = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${good}` } });
    expect(ok.statusCode, ok.body).toBe(200);
    const confused = await hsToken({ sub: 'auth0|abc' }, publicPem);
    const refused = await testApp.app.inject({ method: 'GET', url: '/api/account', headers: { 'x-service-secret': SERVICE_SECRET, authorization: `Bearer ${confused}` } });
    expect(refused.statusCode).toBe(401);
  });
});
