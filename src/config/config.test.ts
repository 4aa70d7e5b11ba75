import { describe, expect, it } from 'vitest';
import { ConfigError, ENVIRONMENT_VARIABLES, loadConfig } from './config.js';

/** A production environment that passes every rule; each test breaks one thing. */
function validProduction(): Record<string, string> {
  return {
    NODE_ENV: 'production',
    JWT_SECRET: 'j'.repeat(16) + 'k'.repeat(16) + 'l'.repeat(8),
    COOKIE_SECRET: 'c'.repeat(40),
    ADMIN_API_TOKEN: '0123456789abcdef'.repeat(4),
    API_KEY_PEPPER: 'p'.repeat(32),
    AUDIT_PSEUDONYM_KEY: 'a'.repeat(16) + 'u'.repeat(16),
    SMTP_URL: 'smtp://mail.internal:587',
    STRIPE_MODE: 'live',
    STRIPE_SECRET_KEY: ['sk', 'live', 'abcdefghijklmnop1234'].join('_'),
    STRIPE_WEBHOOK_SECRET: ['whsec', 'abcdefghijklmnop1234'].join('_'),
    CORS_ORIGINS: 'https://app.example.com',
    ALLOWED_HOSTS: 'billing.example.com',
    DATABASE_URL: 'postgres://bulwark@db.internal:5432/bulwark',
    TRUST_PROXY: '10.0.0.0/8',
    LICENSE_PRIVATE_KEY_PATH: '/run/secrets/license-private-key.pem',
  };
}

function reasonsFor(environment: Record<string, string | undefined>): readonly string[] {
  try {
    loadConfig(environment);
  } catch (error) {
    if (error instanceof ConfigError) return error.reasons;
    throw error;
  }
  return [];
}

describe('loadConfig defaults (development)', () => {
  it('runs with no environment at all: embedded database, sandbox Stripe, local hosts', () => {
    const config = loadConfig({});
    expect(config.env).toBe('development');
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(3000);
    expect(config.database.kind).toBe('pglite');
    expect(config.stripe.mode).toBe('sandbox');
    expect(config.stripe.sandboxPort).toBe(12111);
    expect(config.http.allowedHosts).toEqual(['localhost', '127.0.0.1', '[::1]']);
    expect(config.http.bodyLimitBytes).toBe(1024 * 1024);
    expect(config.http.trustProxy).toEqual({ kind: 'none' });
    expect(config.http.httpsRedirect).toBe(false);
    expect(Object.isFrozen(config.http)).toBe(true);
  });

  it('treats empty strings as unset', () => {
    const config = loadConfig({ PORT: '', DATABASE_URL: '', JWT_SECRET: '' });
    expect(config.port).toBe(3000);
    expect(config.database.kind).toBe('pglite');
    expect(config.secrets.jwt).toBeUndefined();
  });

  it('selects PostgreSQL with its pool settings from DATABASE_URL', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@h/db', DATABASE_POOL_MAX: '4', DATABASE_SSL: 'verify-full' });
    expect(config.database).toMatchObject({ kind: 'postgres', poolMax: 4, ssl: 'verify-full', statementTimeoutMs: 10_000 });
  });

  it('parses TRUST_PROXY as a list of addresses and CIDRs', () => {
    expect(loadConfig({ TRUST_PROXY: '10.0.0.1, 192.168.0.0/16' }).http.trustProxy).toEqual({
      kind: 'addresses',
      addresses: ['10.0.0.1', '192.168.0.0/16'],
    });
  });

  it('parses rotation lists for webhook and signing secrets', () => {
    const config = loadConfig({ STRIPE_WEBHOOK_SECRET: 'whsec_new,whsec_old', JWT_PREVIOUS_SECRETS: 'k0:oldsecret' });
    expect(config.stripe.webhookSecrets).toEqual(['whsec_new', 'whsec_old']);
    expect(config.secrets.previousJwt).toEqual([{ keyId: 'k0', secret: 'oldsecret' }]);
  });

  it('names each bad variable, one line per problem', () => {
    const reasons = reasonsFor({ PORT: 'abc', DATABASE_URL: 'mysql://x', BODY_LIMIT_BYTES: '99999999999', DEBUG: 'maybe' });
    expect(reasons).toHaveLength(4);
    expect(reasons.find((reason) => reason.startsWith('PORT:'))).toBeDefined();
    expect(reasons.find((reason) => reason.startsWith('DATABASE_URL:'))).toContain('postgres://');
    expect(reasons.find((reason) => reason.startsWith('BODY_LIMIT_BYTES:'))).toBeDefined();
    expect(reasons.find((reason) => reason.startsWith('DEBUG:'))).toBeDefined();
  });

  it('refuses a malformed JWT_PREVIOUS_SECRETS entry', () => {
    expect(reasonsFor({ JWT_PREVIOUS_SECRETS: 'no-colon-here' })).toEqual([
      'JWT_PREVIOUS_SECRETS[0]: must be "<keyId>:<secret>"',
    ]);
  });
});

describe('production lockdown (CFG-2)', () => {
  it('accepts a complete, strong production configuration', () => {
    const config = loadConfig(validProduction());
    expect(config.isProduction).toBe(true);
    expect(config.http.httpsRedirect).toBe(true);
  });

  it('lists every reason at once for an empty production environment', () => {
    const reasons = reasonsFor({ NODE_ENV: 'production' });
    expect(reasons).toEqual(
      expect.arrayContaining([
        'JWT_SECRET is missing',
        'COOKIE_SECRET is missing',
        'ADMIN_API_TOKEN is missing',
        'API_KEY_PEPPER is missing',
        'AUDIT_PSEUDONYM_KEY is missing',
        'STRIPE_SECRET_KEY is missing',
        'STRIPE_WEBHOOK_SECRET is missing',
        expect.stringContaining('ALLOWED_HOSTS is empty'),
        expect.stringContaining('DATABASE_URL is missing'),
        expect.stringContaining('SMTP_URL is missing'),
        expect.stringContaining('LICENSE_PRIVATE_KEY_PATH is missing'),
      ]),
    );
    expect(reasons).toHaveLength(11);
  });

  const refusals: Array<[string, Record<string, string>, RegExp]> = [
    ['debug is on', { DEBUG: 'true' }, /^DEBUG must be off/],
    ['the log level is debug', { LOG_LEVEL: 'debug' }, /^LOG_LEVEL=debug/],
    ['the JWT secret is missing', { JWT_SECRET: '' }, /^JWT_SECRET is missing$/],
    ['the JWT secret is short', { JWT_SECRET: 'x'.repeat(31) }, /^JWT_SECRET is shorter than 32 bytes$/],
    ['a previous JWT secret is short', { JWT_PREVIOUS_SECRETS: 'old:short' }, /^JWT_PREVIOUS_SECRETS \(old\) is shorter/],
    ['the cookie secret is missing', { COOKIE_SECRET: '' }, /^COOKIE_SECRET is missing$/],
    ['the cookie secret is short', { COOKIE_SECRET: 'short' }, /^COOKIE_SECRET is shorter than 32 bytes$/],
    ['the admin token is missing', { ADMIN_API_TOKEN: '' }, /^ADMIN_API_TOKEN is missing$/],
    ['the admin token is not hex', { ADMIN_API_TOKEN: 'z'.repeat(64) }, /^ADMIN_API_TOKEN must be at least 64 hexadecimal/],
    ['the admin token is 63 hex characters', { ADMIN_API_TOKEN: '0123456789abcdef'.repeat(4).slice(1) }, /^ADMIN_API_TOKEN must be at least 64/],
    ['the admin token is one repeated character', { ADMIN_API_TOKEN: 'a'.repeat(64) }, /^ADMIN_API_TOKEN has too little variety/],
    ['the API key pepper is missing', { API_KEY_PEPPER: '' }, /^API_KEY_PEPPER is missing$/],
    ['the API key pepper is short', { API_KEY_PEPPER: 'short' }, /^API_KEY_PEPPER is shorter than 32 bytes$/],
    ['there is no licence signing key (LIC-1)', { LICENSE_PRIVATE_KEY_PATH: '' }, /^LICENSE_PRIVATE_KEY_PATH is missing/],
    ['the audit pseudonym key is missing', { AUDIT_PSEUDONYM_KEY: '' }, /^AUDIT_PSEUDONYM_KEY is missing$/],
    ['the audit pseudonym key is short', { AUDIT_PSEUDONYM_KEY: 'short' }, /^AUDIT_PSEUDONYM_KEY is shorter than 32 bytes$/],
    ['the service secret is short', { API_SHARED_SECRET: 's'.repeat(20), EXTERNAL_JWT_SECRET: 'e'.repeat(40) }, /^API_SHARED_SECRET is shorter/],
    ['a service secret has no identity provider', { API_SHARED_SECRET: 's'.repeat(40) }, /neither EXTERNAL_JWT_SECRET nor EXTERNAL_JWT_JWKS_URL/],
    ['the external JWT secret is short', { EXTERNAL_JWT_SECRET: 'e'.repeat(10) }, /^EXTERNAL_JWT_SECRET is shorter/],
    ['there is no mail server', { SMTP_URL: '' }, /^SMTP_URL is missing/],
    ['the Stripe key is missing', { STRIPE_SECRET_KEY: '' }, /^STRIPE_SECRET_KEY is missing$/],
    ['a test Stripe key is used in live mode', { STRIPE_SECRET_KEY: ['sk', 'test', 'abcdefghijkl'].join('_') }, /is a test key but STRIPE_MODE=live/],
    ['a live Stripe key is used in test mode', { STRIPE_MODE: 'test' }, /is a live key but STRIPE_MODE=test/],
    ['the Stripe key is not a Stripe key', { STRIPE_SECRET_KEY: 'pk_live_abcdef' }, /is not a Stripe secret or restricted key/],
    ['the Stripe sandbox is asked for', { STRIPE_MODE: 'sandbox' }, /^STRIPE_MODE=sandbox is for development/],
    ['the webhook secret is missing', { STRIPE_WEBHOOK_SECRET: '' }, /^STRIPE_WEBHOOK_SECRET is missing$/],
    ['the Stripe API URL is plain HTTP', { STRIPE_API_URL: 'http://stripe-proxy.internal' }, /^STRIPE_API_URL must be an https/],
    ['CORS has a wildcard', { CORS_ORIGINS: '*' }, /^CORS_ORIGINS contains a wildcard/],
    ['CORS has a wildcard subdomain', { CORS_ORIGINS: 'https://*.example.com' }, /^CORS_ORIGINS contains a wildcard/],
    ['ALLOWED_HOSTS is empty', { ALLOWED_HOSTS: '' }, /^ALLOWED_HOSTS is empty/],
    ['ALLOWED_HOSTS has a wildcard', { ALLOWED_HOSTS: '*' }, /^ALLOWED_HOSTS contains a wildcard/],
    ['the database is the embedded one', { DATABASE_URL: '' }, /^DATABASE_URL is missing: the embedded database/],
    ['TRUST_PROXY is a hop count', { TRUST_PROXY: '1' }, /^TRUST_PROXY is a hop count/],
    ['TRUST_PROXY trusts everyone', { TRUST_PROXY: 'true' }, /^TRUST_PROXY trusts every address/],
  ];

  it.each(refusals)('refuses to start when %s', (_case, change, expected) => {
    const reasons = reasonsFor({ ...validProduction(), ...change });
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatch(expected);
  });

  it('applies none of the production rules outside production', () => {
    expect(reasonsFor({ DEBUG: 'true', TRUST_PROXY: '2', CORS_ORIGINS: '*', STRIPE_MODE: 'live' })).toEqual([]);
  });
});

describe('.env.example (CFG-1)', () => {
  it('lists every variable the service reads, each with a comment, and nothing else', async () => {
    const { readFileSync } = await import('node:fs');
    const text = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const lines = text.split('\n');
    const listed = lines.flatMap((line, index) => {
      const match = /^([A-Z][A-Z0-9_]*)=/.exec(line);
      return match?.[1] ? [{ name: match[1], comment: lines[index - 1] ?? '' }] : [];
    });
    expect(listed.map((entry) => entry.name).sort()).toEqual([...ENVIRONMENT_VARIABLES].sort());
    for (const entry of listed) expect(entry.comment, entry.name).toMatch(/^#/);
  });
});
