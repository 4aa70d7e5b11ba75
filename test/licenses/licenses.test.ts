import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyLicense, type LicensePublicKeyDocument } from '../../sdk/src/index.js';
import { asSystem } from '../../src/platform/database/access.js';
import { ManualClock } from '../../src/platform/clock.js';
import { verifyAuditChain } from '../../src/modules/audit/audit.verify.js';
import { LicenseKeyError, readLicenseSigningKey } from '../../src/modules/licenses/license-keys.js';
import { loadConfig } from '../../src/config/config.js';
import { resolveDevelopmentSecrets } from '../../src/config/development-secrets.js';
import { createDependencies } from '../../src/dependencies.js';
import { createTestApp, type TestApp } from '../helpers/app.js';

const RATE_LIMITS = JSON.stringify({ 'admin.ip': { limit: 1_000, windowSeconds: 3600 } });
const DAY_MS = 24 * 60 * 60 * 1000;

/** Replaces one character of a base64url part with another valid one: one changed byte or so of the signed data. */
function alterPart(token: string, partIndex: number, position = 10): string {
  const parts = token.split('.');
  const part = parts[partIndex] ?? '';
  const replacement = part[position] === 'A' ? 'B' : 'A';
  parts[partIndex] = part.slice(0, position) + replacement + part.slice(position + 1);
  return parts.join('.');
}

function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

interface Issued {
  accountId: string;
  key: Record<string, string>;
}

describe('signed licences (LIC-1, LIC-2)', () => {
  let testApp: TestApp;
  let admin: Record<string, string>;
  let first: Issued;
  let second: Issued;
  const clock = new ManualClock('2026-05-01T08:00:00Z');

  async function accountWithKey(name: string, plan?: string): Promise<Issued> {
    const created = await testApp.app.inject({ method: 'POST', url: '/api/admin/accounts', headers: admin, payload: { name, ...(plan ? { plan } : {}) } });
    expect(created.statusCode, created.body).toBe(201);
    const accountId = created.json().account.id as string;
    const issued = await testApp.app.inject({ method: 'POST', url: `/api/admin/accounts/${accountId}/keys`, headers: admin, payload: {} });
    expect(issued.statusCode, issued.body).toBe(201);
    return { accountId, key: { 'x-api-key': issued.json().secret as string } };
  }

  async function publicKey(): Promise<LicensePublicKeyDocument> {
    const response = await testApp.app.inject({ method: 'GET', url: '/api/licenses/public-key' });
    expect(response.statusCode, response.body).toBe(200);
    return response.json();
  }

  beforeAll(async () => {
    testApp = await createTestApp({ clock, env: { RATE_LIMITS, LICENSE_VALIDITY_DAYS: '14' } });
    admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
    first = await accountWithKey('licensed', 'PRO');
    second = await accountWithKey('another');
  });
  afterAll(async () => testApp.close());

  it('issues a licence to the account\u2019s own key: plan, features and limits from the catalogue, issue and expiry times, audited', async () => {
    const response = await testApp.app.inject({ method: 'GET', url: `/api/licenses/${first.accountId}`, headers: first.key });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const { license, token } = response.json();
    expect(license).toMatchObject({
      v: 1,
      accountId: first.accountId,
      plan: 'PRO',
      features: { priority_support: expect.any(Boolean), sso: expect.any(Boolean) },
      limits: {
        api_calls_per_day: { kind: 'metered', limit: 10_000, period: 'day' },
        concurrent_builds: { kind: 'concurrency', limit: 10 },
        private_repos: { kind: 'static', limit: 50 },
        team_members: { kind: 'static', limit: 10 },
        marketplace_agents: { kind: 'static', limit: 25 },
      },
      issuedAt: '2026-05-01T08:00:00.000Z',
      expiresAt: new Date(Date.parse('2026-05-01T08:00:00Z') + 14 * DAY_MS).toISOString(),
    });
    expect(license.id).toMatch(/^lic_/);

    // The token carries exactly the payload shown next to it.
    const verified = await verifyLicense(token, await publicKey(), { now: clock.now() });
    expect(verified).toEqual({ valid: true, license, keyId: testApp.deps.licenseKey.publicKey.keyId });

    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ event: string; actor_type: string; subject_id: string; metadata: Record<string, unknown> }>(
        `SELECT event, actor_type, subject_id, metadata FROM audit_log WHERE account_id = $1 AND event = 'license.issued'`,
        [first.accountId],
      ),
    );
    expect(rows).toEqual([
      { event: 'license.issued', actor_type: 'api_key', subject_id: license.id, metadata: expect.objectContaining({ plan: 'PRO', expiresAt: license.expiresAt }) },
    ]);
    expect(await verifyAuditChain(testApp.deps.database)).toMatchObject({ valid: true });
  });

  it('publishes the verification key as PEM and JWK without a principal; each form verifies on its own', async () => {
    const document = await publicKey();
    expect(document.algorithm).toBe('EdDSA');
    expect(document.pem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(document.jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: document.keyId, alg: 'EdDSA', use: 'sig' });
    expect(JSON.stringify(document)).not.toMatch(/PRIVATE|"d":/);
    const { token } = (await testApp.app.inject({ method: 'GET', url: `/api/licenses/${first.accountId}`, headers: first.key })).json();
    for (const key of [document.pem, document.jwk, document]) {
      expect(await verifyLicense(token, key, { now: clock.now() })).toMatchObject({ valid: true });
    }
  });

  it('fails offline verification for one changed byte, a wrong key, a past expiry, an algorithm switch and another account', async () => {
    const { token, license } = (await testApp.app.inject({ method: 'GET', url: `/api/licenses/${first.accountId}`, headers: first.key })).json();
    const key = await publicKey();
    const now = clock.now();
    expect(await verifyLicense(token, key, { now })).toMatchObject({ valid: true });

    expect(await verifyLicense(alterPart(token, 1), key, { now })).toEqual({ valid: false, reason: 'bad_signature' });
    expect(await verifyLicense(alterPart(token, 2), key, { now })).toEqual({ valid: false, reason: 'bad_signature' });
    // A payload re-encoded with a better plan keeps the old signature: refused.
    const [header, payload, signature] = token.split('.');
    const upgraded = { ...JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')), plan: 'ENTERPRISE' };
    expect(await verifyLicense(`${header}.${base64urlJson(upgraded)}.${signature}`, key, { now })).toEqual({ valid: false, reason: 'bad_signature' });

    const stranger = generateKeyPairSync('ed25519').publicKey;
    expect(await verifyLicense(token, stranger.export({ format: 'pem', type: 'spki' }).toString(), { now })).toEqual({ valid: false, reason: 'bad_signature' });
    expect(await verifyLicense(token, stranger.export({ format: 'jwk' }) as { kty: string }, { now })).toEqual({ valid: false, reason: 'bad_signature' });

    const expiry = new Date(license.expiresAt);
    expect(await verifyLicense(token, key, { now: new Date(expiry.getTime() - 1) })).toMatchObject({ valid: true });
    expect(await verifyLicense(token, key, { now: expiry })).toEqual({ valid: false, reason: 'expired' });
    expect(await verifyLicense(token, key, { now: new Date(Date.parse(license.issuedAt) - 60_000) })).toEqual({ valid: false, reason: 'not_yet_valid' });

    const switched = `${base64urlJson({ alg: 'RS256', typ: 'bulwark-license+jws', kid: key.keyId })}.${payload}.${signature}`;
    expect(await verifyLicense(switched, key, { now })).toEqual({ valid: false, reason: 'algorithm_mismatch' });
    const unsigned = `${base64urlJson({ alg: 'none', typ: 'bulwark-license+jws' })}.${payload}.${signature}`;
    expect(await verifyLicense(unsigned, key, { now })).toEqual({ valid: false, reason: 'algorithm_mismatch' });

    expect(await verifyLicense(token, key, { now, accountId: second.accountId })).toEqual({ valid: false, reason: 'wrong_account' });
    for (const garbage of ['', 'a.b', `${header}.${payload}`, `${header}.${payload}.${signature}.x`, '%%%.%%%.%%%']) {
      expect(await verifyLicense(garbage, key, { now })).toEqual({ valid: false, reason: 'malformed' });
    }
  });

  it('answers another account\u2019s key with 404 and refuses users and anonymous callers; the operator gets any account', async () => {
    const foreign = await testApp.app.inject({ method: 'GET', url: `/api/licenses/${first.accountId}`, headers: second.key });
    expect(foreign.statusCode).toBe(404);
    const unknownForKey = await testApp.app.inject({ method: 'GET', url: '/api/licenses/acct_doesnotexist', headers: second.key });
    expect(unknownForKey.statusCode).toBe(404);
    expect(unknownForKey.json().error.message).toBe(foreign.json().error.message);

    const anonymous = await testApp.app.inject({ method: 'GET', url: `/api/licenses/${first.accountId}` });
    expect(anonymous.statusCode).toBe(401);
    const signup = await testApp.app.inject({ method: 'POST', url: '/auth/signup', payload: { email: 'licence-user@example.com', password: 'a sturdy passphrase 42' } });
    expect(signup.statusCode, signup.body).toBe(201);
    const accessToken = /access_token=([^;]+)/.exec([signup.headers['set-cookie']].flat().join('\n'))?.[1];
    const user = await testApp.app.inject({
      method: 'GET',
      url: `/api/licenses/${signup.json().account.id}`,
      headers: { authorization: `Bearer ${accessToken}` },
    });
    expect(user.statusCode).toBe(403);

    const byOperator = await testApp.app.inject({ method: 'GET', url: `/api/licenses/${second.accountId}`, headers: admin });
    expect(byOperator.statusCode, byOperator.body).toBe(200);
    expect(byOperator.json().license).toMatchObject({ accountId: second.accountId, plan: 'FREE', limits: { api_calls_per_day: { limit: 100 } } });
    const unknownForOperator = await testApp.app.inject({ method: 'GET', url: '/api/licenses/acct_doesnotexist', headers: admin });
    expect(unknownForOperator.statusCode).toBe(404);
    const { rows } = await asSystem(testApp.deps.database, (tx) =>
      tx.query<{ actor_type: string }>(`SELECT actor_type FROM audit_log WHERE account_id = $1 AND event = 'license.issued'`, [second.accountId]),
    );
    expect(rows).toEqual([{ actor_type: 'admin' }]);
  });

  it('issues nothing for a suspended account', async () => {
    const suspended = await accountWithKey('suspended');
    const patch = await testApp.app.inject({ method: 'PATCH', url: `/api/admin/accounts/${suspended.accountId}`, headers: admin, payload: { status: 'suspended' } });
    expect(patch.statusCode).toBe(200);
    const byOperator = await testApp.app.inject({ method: 'GET', url: `/api/licenses/${suspended.accountId}`, headers: admin });
    expect(byOperator.statusCode).toBe(403);
    expect(byOperator.json().error.code).toBe('ACCOUNT_SUSPENDED');
    const byKey = await testApp.app.inject({ method: 'GET', url: `/api/licenses/${suspended.accountId}`, headers: suspended.key });
    expect(byKey.statusCode).toBe(403);
  });
});

describe('licence keys from LICENSE_PRIVATE_KEY_PATH', () => {
  const folders: string[] = [];
  function keyFile(pem: string): string {
    const folder = mkdtempSync(path.join(tmpdir(), 'bulwark-license-'));
    folders.push(folder);
    const file = path.join(folder, 'license.pem');
    writeFileSync(file, pem, { mode: 0o600 });
    return file;
  }
  afterAll(() => {
    for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  });

  it('signs with an RSA key as RS256, and the licence of an exempt account carries its configured plan', async () => {
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const testApp = await createTestApp({ env: { RATE_LIMITS, LICENSE_PRIVATE_KEY_PATH: keyFile(pem), OWNER_ACCOUNT_IDS: 'acct_owner_licence' } });
    try {
      await asSystem(testApp.deps.database, (tx) =>
        tx.query(`INSERT INTO accounts (id, name, plan, status, created_at, updated_at) VALUES ('acct_owner_licence', NULL, 'FREE', 'active', now(), now())`),
      );
      const admin = { authorization: `Bearer ${testApp.config.secrets.adminApiToken}` };
      const key = (await testApp.app.inject({ method: 'GET', url: '/api/licenses/public-key' })).json();
      expect(key).toMatchObject({ algorithm: 'RS256', jwk: { kty: 'RSA', alg: 'RS256' } });
      const response = await testApp.app.inject({ method: 'GET', url: '/api/licenses/acct_owner_licence', headers: admin });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json().license).toMatchObject({ plan: 'ENTERPRISE' });
      expect(await verifyLicense(response.json().token, key.pem)).toMatchObject({ valid: true, license: { plan: 'ENTERPRISE' } });
      expect(await verifyLicense(response.json().token, key.jwk)).toMatchObject({ valid: true });
      expect(await verifyLicense(alterPart(response.json().token, 1), key.pem)).toEqual({ valid: false, reason: 'bad_signature' });
    } finally {
      await testApp.close();
    }
  });

  it.each([
    ['an RSA key under 2048 bits', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), /at least 2048 bits/],
    ['an EC key', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), /ec key cannot sign licences/],
    ['a file that is no key', () => 'not a key', /not a readable unencrypted PEM private key/],
  ])('refuses %s, naming the file', (_label, pem, message) => {
    const file = keyFile(pem());
    const read = () => readLicenseSigningKey({ privateKeyPath: file, privateKeyPem: undefined });
    expect(read).toThrow(LicenseKeyError);
    expect(read).toThrow(message);
    expect(read).toThrow(file);
  });

  it('refuses to start when the key file is missing, before opening anything', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-license-start-'));
    folders.push(dataDir);
    const { config } = resolveDevelopmentSecrets(loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, LICENSE_PRIVATE_KEY_PATH: '/nonexistent/license.pem' }));
    await expect(createDependencies(config)).rejects.toThrow(/LICENSE_PRIVATE_KEY_PATH \/nonexistent\/license.pem: cannot be read \(ENOENT\)/);
    // The embedded database was never created.
    expect(readdirSync(dataDir)).toEqual([]);
  });
});
