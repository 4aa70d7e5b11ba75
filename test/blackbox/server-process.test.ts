import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { gatewayFor } from '../stripe/helpers.js';

/**
 * The service as `npm start` runs it: the compiled dist/server.js in its own process,
 * spoken to over real HTTP, stopped with a real signal.
 */
const root = path.resolve(import.meta.dirname, '../..');
const server = path.join(root, 'dist/server.js');
const migrateCommand = path.join(root, 'dist/cli/migrate.js');
const run = promisify(execFile);

beforeAll(() => {
  // Build exactly as `npm start` does (prestart), so these tests cover the shipped artefact.
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root });
  execFileSync(process.execPath, [path.join(root, 'scripts/copy-assets.mjs')], { cwd: root });
}, 120_000);

/** Starts dist/server.js with exactly `env` (plus PATH) and waits for its "listening" line. */
function start(cwd: string, env: Record<string, string>): Promise<ServerProcess> {
  return startServerProcess({ cwd, env, entry: 'dist' });
}

/** The in-process sandbox's Stripe API, from its start-up log line (its port is ephemeral here). */
function sandboxUrlOf(started: ServerProcess): string {
  const match = /"url":"(http:\/\/127\.0\.0\.1:\d+)","msg":"Stripe sandbox listening"/.exec(started.output());
  if (!match?.[1]) throw new Error(`no sandbox URL in the log:\n${started.output()}`);
  return match[1];
}

describe('npm start on a fresh machine', () => {
  let cwd: string;
  let started: ServerProcess;

  beforeAll(async () => {
    cwd = mkdtempSync(path.join(tmpdir(), 'bulwark-fresh-'));
    // No configuration at all, except ephemeral ports (service and sandbox) so tests never collide.
    started = await start(cwd, { PORT: '0', STRIPE_SANDBOX_PORT: '0' });
  }, 60_000);

  afterAll(async () => {
    if (started.child.exitCode === null) started.child.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  });

  it('serves GET /health and GET /ready with 200 on the embedded database', async () => {
    expect(started.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${started.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(health.headers.get('x-frame-options')).toBe('DENY');
    const ready = await fetch(`${started.url}/ready`);
    expect(ready.status).toBe(200);
    // The Stripe sandbox runs inside the process and answers its health check.
    expect(await ready.json()).toEqual({ status: 'ok', checks: { database: 'ok', stripe: 'ok', disk: 'ok' } });
  });

  it('serves the portal and the dashboard from dist/ with no extra build step (UI-1)', async () => {
    for (const [url, script] of [
      ['/portal', '/web/portal.js'],
      ['/admin', '/web/admin.js'],
    ]) {
      const page = await fetch(`${started.url}${url}`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain(`src="${script}"`);
      const module = await fetch(`${started.url}${script}`);
      expect(module.status).toBe(200);
      expect(module.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(await module.text()).toMatch(/^\/\/ The /);
    }
    expect((await fetch(`${started.url}/web/lib/chart.js`)).status).toBe(200);
  });

  it('keeps its data and generated secrets under ./data, the secrets readable by the owner only', () => {
    expect(statSync(path.join(cwd, 'data/pglite')).isDirectory()).toBe(true);
    expect(statSync(path.join(cwd, 'data/secrets.json')).mode & 0o777).toBe(0o600);
    // The log says where the secrets are, never what they are.
    expect(started.output()).not.toMatch(/[0-9a-f]{64}/);
  });

  let sandboxState: { customer: string; session: string } | undefined;

  it('runs the Stripe sandbox: the official client talks to its port, the hosted page and pay route are on the service port', async () => {
    const gateway = gatewayFor(sandboxUrlOf(started));
    const customer = await gateway.createCustomer('acct_restart', { email: 'restart@example.com' });
    const product = await gateway.ensureProduct({ id: 'bulwark_plan_RESTART', name: 'Restart' });
    const price = await gateway.ensurePrice({ lookupKey: 'restart_month', productId: product.id, unitAmount: 1200, currency: 'eur', recurring: { interval: 'month' } });
    const session = await gateway.createCheckoutSession('chk_restart', { mode: 'subscription', customer: customer.id, line_items: [{ price: price.id }], success_url: 'http://localhost:3000/done' });
    expect(session.url).toBe(`${started.url}/sandbox/checkout/${session.id}`);
    const page = await fetch(session.url as string);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('12.00 EUR');
    const paid = await fetch(`${started.url}/sandbox/checkout/${session.id}/pay`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ card: '4242 4242 4242 4242' }),
    });
    expect(await paid.json()).toMatchObject({ status: 'complete', outcome: 'succeeded' });
    sandboxState = { customer: customer.id, session: session.id };
  });

  it('shuts down cleanly on SIGTERM with exit code 0', async () => {
    started.child.kill('SIGTERM');
    expect(await started.exited).toBe(0);
    expect(started.output()).toContain('shutdown complete');
  });

  it('keeps the sandbox state across a restart of the service', async () => {
    if (!sandboxState) throw new Error('the sandbox test above did not run');
    const again = await start(cwd, { PORT: '0', STRIPE_SANDBOX_PORT: '0' });
    try {
      const gateway = gatewayFor(sandboxUrlOf(again));
      expect(await gateway.retrieveCustomer(sandboxState.customer)).toMatchObject({ id: sandboxState.customer, email: 'restart@example.com' });
      const completed = await gateway.retrieveCheckoutSession(sandboxState.session);
      expect(completed.status).toBe('complete');
      expect((await gateway.retrieveSubscription(completed.subscription as string)).status).toBe('active');
      expect(statSync(path.join(cwd, 'data/stripe-sandbox.json')).mode & 0o777).toBe(0o600);
    } finally {
      again.child.kill('SIGTERM');
      await again.exited;
    }
  });
});

describe('production start-up refusal (CFG-2)', () => {
  it('exits non-zero with an empty production environment and prints every reason, one per line', async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'bulwark-prod-'));
    try {
      const result = await run(process.execPath, [server], { cwd, env: { PATH: process.env.PATH ?? '', NODE_ENV: 'production' } }).then(
        () => ({ code: 0, stderr: '' }),
        (error: { code: number; stderr: string }) => error,
      );
      expect(result.code).toBe(1);
      const lines = result.stderr.split('\n').filter((line) => line.startsWith('  - '));
      expect(lines).toEqual([
        '  - JWT_SECRET is missing',
        '  - COOKIE_SECRET is missing',
        '  - ADMIN_API_TOKEN is missing',
        '  - API_KEY_PEPPER is missing',
        expect.stringContaining('LICENSE_PRIVATE_KEY_PATH is missing'),
        '  - AUDIT_PSEUDONYM_KEY is missing',
        expect.stringContaining('SMTP_URL is missing'),
        '  - STRIPE_SECRET_KEY is missing',
        '  - STRIPE_WEBHOOK_SECRET is missing',
        expect.stringContaining('ALLOWED_HOSTS is empty'),
        expect.stringContaining('DATABASE_URL is missing'),
      ]);
      // It refused before touching the disk.
      expect(() => statSync(path.join(cwd, 'data'))).toThrow();
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('also names debug, wildcard CORS, a hop-count TRUST_PROXY and a test key in live mode', async () => {
    const env = {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'production',
      DEBUG: 'true',
      CORS_ORIGINS: '*',
      TRUST_PROXY: '1',
      STRIPE_MODE: 'live',
      STRIPE_SECRET_KEY: ['sk', 'test', 'abcdefghijklmnop'].join('_'),
    };
    const result = await run(process.execPath, [server], { env }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result.code).toBe(1);
    for (const expected of ['DEBUG must be off', 'CORS_ORIGINS contains a wildcard', 'TRUST_PROXY is a hop count', 'is a test key but STRIPE_MODE=live']) {
      expect(result.stderr).toContain(expected);
    }
  });
});

describeWithPostgres('npm run migrate', () => {
  let scratch: ScratchDatabase;
  beforeAll(async () => {
    scratch = await createScratchDatabase();
  });
  afterAll(async () => scratch.drop());

  it('applies pending migrations once, then has nothing to apply', async () => {
    const env = { PATH: process.env.PATH ?? '', DATABASE_URL: scratch.url };
    const first = await run(process.execPath, [migrateCommand], { env });
    expect(first.stdout).toMatch(/^Applied migrations 1(, \d+)*; schema is at version \d+/);
    const second = await run(process.execPath, [migrateCommand], { env });
    expect(second.stdout).toMatch(/^Nothing to apply; schema is at version \d+/);
  });
});

describeWithPostgres('npx bulwark (the built command line, CLI-1)', () => {
  const bin = path.join(root, 'dist/cli/main.js');
  let scratch: ScratchDatabase;
  beforeAll(async () => {
    scratch = await createScratchDatabase();
  });
  afterAll(async () => scratch.drop());

  it('is the package bin, executable, and runs a command from the process environment with exit codes 0 and 2', async () => {
    const manifest = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
    expect(manifest.bin.bulwark).toBe('dist/cli/main.js');
    expect(statSync(bin).mode & 0o111).not.toBe(0);
    const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'test', DATABASE_URL: scratch.url };
    // Run as a bin is run: the file itself, through its #! line.
    const created = await run(bin, ['accounts', 'create', '--name', 'Built', '--json'], { env });
    expect(JSON.parse(created.stdout)).toMatchObject({ account: { name: 'Built', plan: 'FREE' } });
    const usage = await run(bin, ['accounts', 'create', '--bogus'], { env }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("Unknown option '--bogus'");
  });
});
