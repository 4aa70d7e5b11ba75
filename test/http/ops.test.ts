import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { diskCheck, stripeCheck, databaseCheck, type ReadinessCheck } from '../../src/modules/ops/readiness.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createTestPglite } from '../helpers/pglite.js';
import { generateLicenseKeyPem } from '../../src/modules/licenses/license-keys.js';

const opened: TestApp[] = [];
async function open(options: Parameters<typeof createTestApp>[0] = {}): Promise<TestApp> {
  const testApp = await createTestApp(options);
  opened.push(testApp);
  return testApp;
}
afterEach(async () => {
  for (const testApp of opened.splice(0)) await testApp.close();
});

function failing(name: string): ReadinessCheck {
  return {
    name,
    run: async () => {
      throw new Error(`${name} is down: secret internal detail`);
    },
  };
}

describe('GET /health and GET /ready (OPS-1)', () => {
  it('answers 200 {status:"ok"} on /health', async () => {
    const { app } = await open();
    const response = await app.inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ status: 'ok' });
  });

  it('answers 200 on /ready with the database, Stripe and disk checks', async () => {
    const { app } = await open();
    const response = await app.inject({ method: 'GET', url: '/ready' });
    expect(response.statusCode).toBe(200);
    // Under NODE_ENV=test no sandbox is started or configured (STRIPE_SANDBOX_START unset), so Stripe is "skipped".
    expect(response.json()).toEqual({ status: 'ok', checks: { database: 'ok', stripe: 'skipped', disk: 'ok' } });
  });

  it('answers 503 naming the failing check, without its internal detail', async () => {
    const { app, deps, logs } = await open({
      readinessChecks: [{ name: 'database', run: async () => 'ok' }, failing('stripe'), { name: 'disk', run: async () => 'ok' }],
    });
    const response = await app.inject({ method: 'GET', url: '/ready' });
    expect(response.statusCode).toBe(503);
    expect(response.json()).toEqual({ status: 'unavailable', checks: { database: 'ok', stripe: 'failed', disk: 'ok' } });
    expect(response.body).not.toContain('secret internal detail');
    expect(logs.text).toContain('secret internal detail');
    expect(deps.readinessChecks).toHaveLength(3);
  });

  it('fails the disk check when free space is below the minimum', async () => {
    const check = diskCheck(process.cwd(), Number.MAX_SAFE_INTEGER);
    await expect(check.run()).rejects.toThrow(/bytes free/);
    await expect(diskCheck(process.cwd(), 0).run()).resolves.toBe('ok');
  });

  it('fails the database check when the database is closed', async () => {
    const database = await createTestPglite();
    const check = databaseCheck(database);
    await expect(check.run()).resolves.toBe('ok');
    await database.close();
    await expect(check.run()).rejects.toThrow();
  });

  it('checks Stripe reachability over TCP in test and live modes', async () => {
    const server = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const stripe = loadConfig({ STRIPE_MODE: 'test' }).stripe;
    try {
      await expect(stripeCheck(stripe, 1_000, undefined, { host: '127.0.0.1', port }).run()).resolves.toBe('ok');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    await expect(stripeCheck(stripe, 1_000, undefined, { host: '127.0.0.1', port }).run()).rejects.toThrow();
  });

  it('uses the sandbox check in sandbox mode when one is provided', async () => {
    const stripe = loadConfig({}).stripe;
    await expect(stripeCheck(stripe, 1_000, async () => undefined).run()).resolves.toBe('ok');
    await expect(
      stripeCheck(stripe, 1_000, async () => {
        throw new Error('sandbox down');
      }).run(),
    ).rejects.toThrow('sandbox down');
  });

  it('times out a check that hangs and reports it as failed', async () => {
    const { app } = await open({
      env: { READY_CHECK_TIMEOUT_MS: '100' },
      readinessChecks: [{ name: 'database', run: () => new Promise(() => undefined) }],
    });
    const response = await app.inject({ method: 'GET', url: '/ready' });
    expect(response.statusCode).toBe(503);
    expect(response.json().checks).toEqual({ database: 'failed' });
  });
});

describe('GET /metrics (OPS-2)', () => {
  it('serves Prometheus text with per-route request counts and latency, plus process metrics', async () => {
    const { app } = await open();
    await app.inject({ method: 'GET', url: '/health' });
    await app.inject({ method: 'GET', url: '/health' });
    await app.inject({ method: 'GET', url: '/definitely/not/here/123' });
    const response = await app.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/text\/plain/);
    expect(response.body).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/health",status_code="200"\} 2/);
    expect(response.body).toMatch(/http_request_duration_seconds_count\{method="GET",route="\(unmatched\)",status_code="404"\} 1/);
    expect(response.body).toMatch(/http_request_duration_seconds_bucket\{le="[0-9.]+",method="GET",route="\/health",status_code="200"\}/);
    expect(response.body).toContain('process_cpu_user_seconds_total');
    expect(response.body).not.toContain('/definitely/not/here');
  });

  it('requires the bearer token when METRICS_TOKEN is set', async () => {
    const token = 'metrics-token-for-this-test-only';
    const { app } = await open({ env: { METRICS_TOKEN: token } });
    const missing = await app.inject({ method: 'GET', url: '/metrics' });
    expect(missing.statusCode).toBe(401);
    expect(missing.json().error.code).toBe('UNAUTHENTICATED');
    const wrong = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}x` } });
    expect(wrong.statusCode).toBe(401);
    const right = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } });
    expect(right.statusCode).toBe(200);
    expect(right.body).toContain('http_request_duration_seconds_count');
  });
});

describe('logs (OPS-3)', () => {
  let testApp: TestApp;
  beforeAll(async () => {
    testApp = await createTestApp();
  });
  afterAll(async () => testApp.close());

  it('writes one JSON line per request without credentials, cookies, API keys or sensitive query values', async () => {
    const secrets = ['Bearer abc.def.ghi', 'session=s3cr3t', 'cust_acct_x_supersecret', 'reset-token-value', 'person@example.com'];
    await testApp.app.inject({
      method: 'GET',
      url: '/health?token=reset-token-value&email=person%40example.com&page=2',
      headers: { authorization: secrets[0], cookie: secrets[1], 'x-api-key': secrets[2] },
    });
    const line = testApp.logs.lines.map((text) => JSON.parse(text) as Record<string, unknown>).find((entry) => entry.msg === 'request completed');
    expect(line).toMatchObject({ req: { method: 'GET', route: '/health' }, res: { statusCode: 200 } });
    expect((line?.req as { url: string }).url).toBe('/health?token=[REDACTED]&email=[REDACTED]&page=2');
    for (const secret of secrets) expect(testApp.logs.text).not.toContain(secret);
  });

  it('redacts passwords, emails, tokens and API keys in objects logged by hand', () => {
    testApp.deps.logger.info(
      { password: 'hunter2hunter2', user: { email: 'someone@example.com' }, body: { apiKey: 'cust_x_y', token: 't0k3n' } },
      'something happened',
    );
    const text = testApp.logs.text;
    for (const secret of ['hunter2hunter2', 'someone@example.com', 'cust_x_y', 't0k3n']) expect(text).not.toContain(secret);
    expect(text).toContain('[REDACTED]');
  });
});

describe('production headers and the OpenAPI document', () => {
  it('adds HSTS preload in production', async () => {
    // Production needs a licence key file (LIC-1): one generated for this test.
    const keyFolder = mkdtempSync(path.join(tmpdir(), 'bulwark-license-'));
    const licenseKeyPath = path.join(keyFolder, 'license.pem');
    writeFileSync(licenseKeyPath, generateLicenseKeyPem(), { mode: 0o600 });
    const opening = open({
      env: {
        NODE_ENV: 'production',
        JWT_SECRET: 'j'.repeat(40),
        COOKIE_SECRET: 'c'.repeat(40),
        ADMIN_API_TOKEN: '0123456789abcdef'.repeat(4),
        API_KEY_PEPPER: 'p'.repeat(32),
        AUDIT_PSEUDONYM_KEY: 'q'.repeat(32),
        SMTP_URL: 'smtp://127.0.0.1:1',
        STRIPE_MODE: 'test',
        STRIPE_SECRET_KEY: ['sk', 'test', 'abcdefghijklmnop'].join('_'),
        STRIPE_WEBHOOK_SECRET: ['whsec', 'abcdefghijklmnop'].join('_'),
        ALLOWED_HOSTS: 'billing.example.com',
        DATABASE_URL: 'postgres://unused@127.0.0.1:1/unused',
        TRUST_PROXY: '127.0.0.1',
        LOG_LEVEL: 'info',
        LICENSE_PRIVATE_KEY_PATH: licenseKeyPath,
      },
      database: await createTestPglite(),
    });
    // The key is read once at start-up.
    const { app } = await opening.finally(() => rmSync(keyFolder, { recursive: true, force: true }));
    const response = await app.inject({
      method: 'GET',
      url: '/health',
      headers: { host: 'billing.example.com', 'x-forwarded-proto': 'https' },
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains; preload');
    expect(response.headers['content-security-policy']).toContain('upgrade-insecure-requests');
  });

  it('serves the generated OpenAPI document at /docs/openapi.json', async () => {
    const { app } = await open();
    const response = await app.inject({ method: 'GET', url: '/docs/openapi.json' });
    expect(response.statusCode).toBe(200);
    const document = response.json();
    expect(document.openapi).toMatch(/^3\./);
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(['/health', '/ready', '/metrics']));
  });
});
