import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Queryable } from '../../src/platform/database/database.js';
import { createScratchDatabase, describeWithPostgres, postgresSetup, type ScratchDatabase } from '../helpers/postgres.js';
import { cli, everyRow, hostileName, runtimeSecrets } from './helpers.js';

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

function asQueryable(client: pg.Client): Queryable {
  return {
    query: async <Row>(text: string, params: readonly unknown[] = []) => {
      const result = await client.query(text, [...params]);
      return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
    },
    exec: async (script: string) => {
      await client.query(script);
    },
  };
}

/** `DROP DATABASE` and create it again, empty: the wipe between backup and restore. */
async function wipe(scratch: ScratchDatabase): Promise<void> {
  await withClient(postgresSetup?.adminUrl ?? '', async (admin) => {
    await admin.query(`DROP DATABASE "${scratch.name}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${scratch.name}"`);
  });
}

/**
 * The operator command line on PostgreSQL (CLI-1), and backup, wipe, restore (OPS-6) with
 * pg_dump / pg_restore run without a shell (OPS-8). Every command runs in this process
 * through runCli, exactly as `bulwark` runs it, against a real scratch database.
 */
describeWithPostgres('bulwark on PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let folder: string;
  let env: Record<string, string>;
  const marker = path.join(tmpdir(), `bulwark-pwn-${randomBytes(4).toString('hex')}`);
  const name = hostileName(marker);
  let accountId: string;
  let keyId: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    folder = mkdtempSync(path.join(tmpdir(), 'bulwark-cli-pg-'));
    env = { NODE_ENV: 'test', DATABASE_URL: scratch.url, DATA_DIR: path.join(folder, 'data'), PATH: process.env.PATH ?? '', ...runtimeSecrets() };
  });
  afterAll(async () => {
    rmSync(folder, { recursive: true, force: true });
    rmSync(marker, { force: true });
    await scratch.drop();
  });

  it('creates and lists accounts, issues, rotates and revokes keys and grants credits, each audited; --json for scripts', async () => {
    const created = await cli(['accounts', 'create', '--name', name, '--email', 'ops@example.com', '--plan', 'STARTER', '--json'], env);
    expect(created.code, created.stderr).toBe(0);
    const account = created.json<{ account: { id: string; name: string; plan: string }; user: { email: string } }>();
    expect(account.account).toMatchObject({ name, plan: 'STARTER' });
    expect(account.user.email).toBe('ops@example.com');
    accountId = account.account.id;

    const issued = await cli(['keys', 'issue', accountId, '--label', 'build server'], env);
    expect(issued.code, issued.stderr).toBe(0);
    const secret = issued.stdout.split('\n').find((line) => line.startsWith(`cust_${accountId}_`));
    expect(secret).toBeDefined();
    keyId = /key (key_[A-Za-z0-9_-]+)/.exec(issued.stdout)?.[1] ?? '';
    const rotated = await cli(['keys', 'rotate', keyId, '--overlap-seconds', '60', '--json'], env);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.json()).toMatchObject({ replaces: keyId, key: { id: expect.stringMatching(/^key_/) } });
    const revoked = await cli(['keys', 'revoke', keyId], env);
    expect(revoked.code, revoked.stderr).toBe(0);

    const granted = await cli(['credits', 'grant', accountId, '250', '--source', 'promotion', '--expires-at', '2099-01-01T00:00:00Z', '--json'], env);
    expect(granted.code, granted.stderr).toBe(0);
    expect(granted.json()).toMatchObject({ grant: { amount: 250, remaining: 250, source: 'promotion', expiresAt: '2099-01-01T00:00:00.000Z' } });

    const listed = await cli(['accounts', 'list', '--json'], env);
    expect(listed.json<{ items: Array<{ id: string; name: string }> }>().items).toEqual([expect.objectContaining({ id: accountId, name })]);
    const text = await cli(['accounts', 'list'], env);
    expect(text.stdout).toContain(accountId);
    expect(text.stdout).toContain('1 account');

    const events = await withClient(scratch.url, async (client) =>
      (await client.query<{ event: string; actor_type: string }>('SELECT event, actor_type FROM audit_log ORDER BY seq')).rows,
    );
    expect(events.map((entry) => entry.event)).toEqual([
      'account.created',
      'user.created',
      'api_key.issued',
      'api_key.rotated',
      'api_key.revoked',
      'credits.granted',
    ]);
    expect(new Set(events.map((entry) => entry.actor_type))).toEqual(new Set(['cli']));
    expect((await cli(['audit', 'verify', '--json'], env)).json()).toEqual({ valid: true, checked: 6 });
    expect((await cli(['credits', 'verify'], env)).code).toBe(0);
  });

  it.each([
    ['an unknown command', ['accounts', 'delete'], /unknown command/],
    ['an unknown option', ['accounts', 'create', '--colour', 'red'], /Unknown option '--colour'/],
    ['an invalid email', ['accounts', 'create', '--email', 'not-an-email'], /--email: must match format "email"/],
    ['an unknown plan', ['accounts', 'create', '--plan', 'GOLD'], /--plan/],
    ['a fractional amount', ['credits', 'grant', 'acct_x', '2.5'], /amount: must be a whole number/],
    ['an amount in exponent form', ['credits', 'grant', 'acct_x', '1e3'], /amount: must be a whole number/],
    ['a zero amount', ['credits', 'grant', 'acct_x', '0'], /amount: must be from 1/],
    ['a missing argument', ['keys', 'issue'], /takes 1 argument, got 0/],
    ['a malformed id', ['keys', 'revoke', 'key;rm -rf /'], /keyId: must be an id/],
    ['an expiry without a zone', ['credits', 'grant', 'acct_x', '5', '--expires-at', '2099-01-01'], /--expires-at/],
  ])('refuses %s with exit 2 and changes nothing', async (_label, argv, message) => {
    const before = await withClient(scratch.url, (client) => everyRow(asQueryable(client)));
    const run = await cli([...argv, '--json'], env);
    expect(run.code).toBe(2);
    expect(run.json<{ error: { code: string; message: string } }>().error.message).toMatch(message);
    expect(run.stderr).toMatch(/Usage: bulwark|bulwark help/);
    expect(await withClient(scratch.url, (client) => everyRow(asQueryable(client)))).toEqual(before);
  });

  it('answers an unknown account or key with exit 1 and its error code', async () => {
    const grant = await cli(['credits', 'grant', 'acct_nobody', '5', '--json'], env);
    expect(grant.code).toBe(1);
    expect(grant.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'Not found' } });
    const revoke = await cli(['keys', 'revoke', 'key_nobody'], env);
    expect(revoke.code).toBe(1);
    expect(revoke.stderr).toContain('API key not found');
  });

  it('backs up, wipes, restores: the same rows, a verifying audit chain, a working database; the hostile name ran nothing', async () => {
    const before = await withClient(scratch.url, (client) => everyRow(asQueryable(client)));
    expect(JSON.stringify(before.accounts)).toContain('$(touch');
    // The backup's own path is full of metacharacters too (a shell would create `relativeMarker` in its working directory).
    const relativeMarker = `pwned-${randomBytes(4).toString('hex')}`;
    const file = path.join(folder, `backup $(touch ${relativeMarker}); echo \`touch ${relativeMarker}\` > ${relativeMarker}.dump`);
    const backedUp = await cli(['backup', file, '--json'], env, { tty: true });
    expect(backedUp.code, backedUp.stderr).toBe(0);
    expect(backedUp.json()).toMatchObject({ engine: 'postgres', file, tables: Object.keys(before).length });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // A progress bar on the (pretend) terminal, naming the tables as pg_dump reaches them.
    expect(backedUp.stderr).toContain('public.audit_log');
    const again = await cli(['backup', file], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists; pass --force');

    await wipe(scratch);
    expect(await withClient(scratch.url, (client) => everyRow(asQueryable(client)))).toEqual({});

    const restored = await cli(['restore', file, '--json'], env);
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.json()).toMatchObject({
      engine: 'postgres',
      summary: { auditChain: { valid: true, checked: 6 }, creditLedger: { valid: true }, schemaVersion: expect.any(Number) },
    });
    expect(await withClient(scratch.url, (client) => everyRow(asQueryable(client)))).toEqual(before);
    for (const directory of [process.cwd(), folder, tmpdir()]) expect(existsSync(path.join(directory, relativeMarker))).toBe(false);
    expect(existsSync(marker)).toBe(false);

    // Into a database that is not empty: refused, nothing changed; with --force, replaced.
    const refused = await cli(['restore', file], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('restore replaces its contents only with --force');
    const forced = await cli(['restore', file, '--force'], env);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(/audit chain valid \(6 entries\)/);
    expect(await withClient(scratch.url, (client) => everyRow(asQueryable(client)))).toEqual(before);

    // The restored database works as the application role: the chain goes on from where it was.
    const issued = await cli(['keys', 'issue', accountId, '--json'], env);
    expect(issued.code, issued.stderr).toBe(0);
    expect((await cli(['audit', 'verify', '--json'], env)).json()).toEqual({ valid: true, checked: 7 });
    expect((await cli(['accounts', 'list', '--json'], env)).json<{ items: Array<{ name: string }> }>().items[0]?.name).toBe(name);
    expect(existsSync(marker)).toBe(false);
  });

  it('audit verify exits 1 naming the first altered entry, credits verify exits 1 naming the account that does not reconcile; both 0 again once put back', async () => {
    const entries = await withClient(scratch.url, async (client) => (await client.query<{ id: string; metadata: unknown }>('SELECT id, metadata FROM audit_log ORDER BY seq')).rows);
    expect(entries.length).toBeGreaterThanOrEqual(4);
    const [second, fourth] = [entries[1]!, entries[3]!];
    // What a tamperer with owner rights does: switch the append-only trigger off, change rows, switch it back on.
    const rewrite = (changes: Array<[id: string, metadata: unknown]>) =>
      withClient(scratch.url, async (client) => {
        await client.query('BEGIN');
        await client.query('ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only');
        for (const [id, metadata] of changes) {
          expect((await client.query('UPDATE audit_log SET metadata = $2 WHERE id = $1', [id, JSON.stringify(metadata)])).rowCount).toBe(1);
        }
        await client.query('ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only');
        await client.query('COMMIT');
      });
    expect(await cli(['audit', 'verify', '--json'], env)).toMatchObject({ code: 0 });

    // Two entries altered: the first of them is named.
    await rewrite([
      [second.id, { edited: 'by hand' }],
      [fourth.id, { edited: 'by hand too' }],
    ]);
    const broken = await cli(['audit', 'verify'], env);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`Audit chain BROKEN at entry ${second.id}: its content does not match its hash: it was altered (1 entries before it verified)`);
    const brokenJson = await cli(['audit', 'verify', '--json'], env);
    expect(brokenJson.code).toBe(1);
    expect(brokenJson.json()).toEqual({ valid: false, brokenAt: second.id, reason: 'hash_mismatch' });
    await rewrite([
      [second.id, second.metadata],
      [fourth.id, fourth.metadata],
    ]);
    expect((await cli(['audit', 'verify', '--json'], env)).json()).toEqual({ valid: true, checked: entries.length });

    // Seven credits gone from the grant that neither the ledger nor any reservation accounts for.
    const ledgerValid = await cli(['credits', 'verify', '--json'], env);
    expect(ledgerValid.code).toBe(0);
    const accounts = ledgerValid.json<{ checked: number }>().checked;
    expect(accounts).toBeGreaterThanOrEqual(1);
    const shift = (by: number) =>
      withClient(scratch.url, async (client) => {
        expect((await client.query('UPDATE credit_grants SET remaining = remaining + $2 WHERE id = (SELECT min(id) FROM credit_grants WHERE account_id = $1)', [accountId, by])).rowCount).toBe(1);
      });
    await shift(-7);
    const unbalanced = await cli(['credits', 'verify'], env);
    expect(unbalanced.code).toBe(1);
    expect(unbalanced.stdout).toContain(`Credit ledger does NOT reconcile for 1 of ${accounts} accounts:`);
    expect(unbalanced.stdout).toContain(`${accountId}: granted != remaining + held + spent + written off; ledger balance != remaining of the grants (granted 250, remaining 243,`);
    const unbalancedJson = await cli(['credits', 'verify', '--json'], env);
    expect(unbalancedJson.code).toBe(1);
    expect(unbalancedJson.json()).toMatchObject({
      valid: false,
      checked: accounts,
      mismatches: [{ accountId, granted: 250, remaining: 243, ledgerRemaining: 250, problems: ['granted != remaining + held + spent + written off', 'ledger balance != remaining of the grants'] }],
    });
    await shift(7);
    expect(await cli(['credits', 'verify'], env)).toMatchObject({ code: 0 });
  });

  it('refuses a file that is not a PostgreSQL backup, before touching the database', async () => {
    const fake = path.join(folder, 'fake.tar.gz');
    writeFileSync(fake, Buffer.from([0x1f, 0x8b, 0x08, 0x00]));
    const run = await cli(['restore', fake, '--force'], env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('embedded-database (PGlite) backup; restore it with DATABASE_URL unset');
  });
});
