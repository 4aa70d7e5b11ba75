import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * CFG-3: scripts/secret-scan.mjs run against throw-away git repositories.
 * Every fake secret here is assembled at run time ('sk_' + 'live_' + ...), so this file
 * never holds a literal one and the scan of this repository stays clean.
 */

const SCRIPT = fileURLToPath(new URL('../../scripts/secret-scan.mjs', import.meta.url));
const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

const scratchRoot = realpathSync(mkdtempSync(path.join(tmpdir(), 'bulwark-secret-scan-')));
afterAll(() => rmSync(scratchRoot, { recursive: true, force: true }));

/** Git and the scan must not see the environment of an outer git process (hooks set GIT_DIR...). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_CEILING_DIRECTORIES: scratchRoot };
  for (const key of Object.keys(env)) {
    if (key.startsWith('GIT_') && key !== 'GIT_CEILING_DIRECTORIES') delete env[key];
  }
  return env;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, env: cleanEnv(), encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function git(cwd: string, ...args: string[]): Promise<void> {
  const result = await run('git', args, cwd);
  if (result.code !== 0) throw new Error(`git ${args.join(' ')} failed: ${result.stderr}`);
}

let repoCount = 0;

/** A new repository with one harmless commit. */
async function createRepo(): Promise<string> {
  repoCount += 1;
  const repo = path.join(scratchRoot, `repo-${repoCount}`);
  mkdirSync(path.join(repo, 'src'), { recursive: true });
  await git(repo, 'init', '-q');
  await git(repo, 'config', 'user.name', 'Secret Scan Test');
  await git(repo, 'config', 'user.email', 'secret-scan@example.invalid');
  await git(repo, 'config', 'commit.gpgsign', 'false');
  writeFileSync(path.join(repo, 'README.md'), '# scratch\n\nNothing to see here.\n');
  writeFileSync(path.join(repo, 'src', 'sum.ts'), 'export const sum = (a: number, b: number): number => a + b;\n');
  await commitAll(repo, 'harmless');
  return repo;
}

async function commitAll(repo: string, message: string): Promise<void> {
  await git(repo, 'add', '-A');
  await git(repo, 'commit', '-q', '-m', message);
}

async function commitFile(repo: string, file: string, content: string): Promise<void> {
  mkdirSync(path.dirname(path.join(repo, file)), { recursive: true });
  writeFileSync(path.join(repo, file), content);
  await commitAll(repo, `add ${file}`);
}

function scan(repo: string, ...args: string[]): Promise<RunResult> {
  return run(process.execPath, [SCRIPT, ...args], repo);
}

function randomAlphanumerics(length: number): string {
  return Array.from(randomBytes(length), (byte) => ALPHANUMERIC[byte % ALPHANUMERIC.length]).join('');
}

function privateKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

describe('scripts/secret-scan.mjs', () => {
  it('passes a repository that holds no secret', async () => {
    const repo = await createRepo();
    const result = await scan(repo);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^secret scan: OK/);
  });

  const cases: { name: string; file: string; line: number; content: () => { text: string; secret: string } }[] = [
    {
      name: 'a Stripe live secret key',
      file: 'src/billing/stripe.ts',
      line: 2,
      content: () => {
        const secret = 'sk_' + 'live_' + randomAlphanumerics(24);
        return { secret, text: `// Stripe client\nexport const stripeKey = '${secret}';\n` };
      },
    },
    {
      name: 'a Stripe restricted test key',
      file: 'config/stripe.json',
      line: 1,
      content: () => {
        const secret = 'rk_' + 'test_' + randomAlphanumerics(32);
        return { secret, text: `{ "key": "${secret}" }\n` };
      },
    },
    {
      name: 'a Stripe webhook secret',
      file: 'docs/webhooks.md',
      line: 3,
      content: () => {
        const secret = 'wh' + 'sec_' + randomAlphanumerics(32);
        return { secret, text: `# Webhooks\n\nSTRIPE_WEBHOOK_SECRET=${secret}\n` };
      },
    },
    {
      name: 'a PEM private key',
      file: 'deploy/signing.pem',
      line: 1,
      content: () => {
        const text = privateKeyPem();
        return { secret: text.split('\n')[1] ?? text, text };
      },
    },
    {
      name: 'a 64-hex admin token in an env-style line',
      file: 'deploy/production.env',
      line: 2,
      content: () => {
        const secret = randomBytes(32).toString('hex');
        return { secret, text: `NODE_ENV=production\nADMIN_API_TOKEN=${secret}\n` };
      },
    },
  ];

  it.each(cases)('fails on $name and names the file', async ({ file, line, content }) => {
    const repo = await createRepo();
    const { text, secret } = content();
    await commitFile(repo, file, text);

    const result = await scan(repo);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('secret scan: FAILED');
    expect(result.stderr).toContain(`${file}:${line}:`);
    // The finding points at the secret without printing it.
    expect(result.stdout + result.stderr).not.toContain(secret);
  });

  it('also catches a secret that is not committed yet, unless --tracked-only', async () => {
    const repo = await createRepo();
    writeFileSync(path.join(repo, 'notes.txt'), `key: ${'sk_' + 'test_' + randomAlphanumerics(24)}\n`);
    const full = await scan(repo);
    expect(full.code).toBe(1);
    expect(full.stderr).toContain('notes.txt:1:');
    const trackedOnly = await scan(repo, '--tracked-only');
    expect(trackedOnly.code).toBe(0);
  });

  it('lets placeholders and look-alikes through', async () => {
    const repo = await createRepo();
    await commitFile(
      repo,
      'docs/configuration.md',
      [
        `STRIPE_SECRET_KEY=${'sk_' + 'live_' + 'x'.repeat(24)}`,
        `STRIPE_WEBHOOK_SECRET=${'wh' + 'sec_' + '.'.repeat(3)}`,
        `const risk = 'risk_${'test_'}${randomAlphanumerics(16)}';`,
        `CHECKSUM_SHA256=${randomBytes(32).toString('hex')}`,
        '',
      ].join('\n'),
    );
    const result = await scan(repo);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it('exits 2 outside a git repository', async () => {
    const folder = path.join(scratchRoot, 'not-a-repo');
    mkdirSync(folder, { recursive: true });
    const result = await scan(folder);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/not a git repository/);
  });
});
