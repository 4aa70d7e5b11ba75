import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

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

describe('npm start on a fresh machine', () => {
  let cwd: string;
  let started: ServerProcess;

  beforeAll(async () => {
    cwd = mkdtempSync(path.join(tmpdir(), 'bulwark-fresh-'));
    // No configuration at all, except an ephemeral port so tests never collide.
    started = await start(cwd, { PORT: '0' });
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
    expect(await ready.json()).toMatchObject({ status: 'ok', checks: { database: 'ok', disk: 'ok' } });
  });

  it('keeps its data and generated secrets under ./data, the secrets readable by the owner only', () => {
    expect(statSync(path.join(cwd, 'data/pglite')).isDirectory()).toBe(true);
    expect(statSync(path.join(cwd, 'data/secrets.json')).mode & 0o777).toBe(0o600);
    // The log says where the secrets are, never what they are.
    expect(started.output()).not.toMatch(/[0-9a-f]{64}/);
  });

  it('shuts down cleanly on SIGTERM with exit code 0', async () => {
    started.child.kill('SIGTERM');
    expect(await started.exited).toBe(0);
    expect(started.output()).toContain('shutdown complete');
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
