import type { Config } from '../../config/config.js';
import { CommandFailure } from '../cli-io.js';

type PostgresSettings = Extract<Config['database'], { kind: 'postgres' }>;

/**
 * DATABASE_URL as pg_dump / pg_restore arguments and environment: host, port, user and
 * database as separate `--name=value` arguments (validated by the external-command
 * allowlist), the password only in PGPASSWORD (never on a command line, where `ps` would
 * show it), TLS from DATABASE_SSL.
 */
export function postgresConnection(settings: PostgresSettings): { args: string[]; env: Record<string, string> } {
  let url: URL;
  try {
    url = new URL(settings.url);
  } catch {
    throw new CommandFailure('CONFIGURATION', 'DATABASE_URL is not a valid URL');
  }
  const args: string[] = [];
  const env: Record<string, string> = {
    PGCONNECT_TIMEOUT: String(Math.max(1, Math.ceil(settings.connectTimeoutMs / 1000))),
    PGAPPNAME: 'bulwark-cli',
  };
  const host = url.searchParams.get('host') ?? url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host !== '') args.push(`--host=${host}`);
  if (url.port !== '') args.push(`--port=${url.port}`);
  const username = decodeURIComponent(url.username);
  if (username !== '') args.push(`--username=${username}`);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '') throw new CommandFailure('CONFIGURATION', 'DATABASE_URL names no database');
  args.push(`--dbname=${database}`, '--no-password');
  const password = decodeURIComponent(url.password);
  if (password !== '') env.PGPASSWORD = password;
  if (settings.ssl !== 'disable') env.PGSSLMODE = settings.ssl;
  if (settings.ssl === 'verify-full' && settings.sslCaPath !== undefined) env.PGSSLROOTCERT = settings.sslCaPath;
  return { args, env };
}
