import { randomBytes } from 'node:crypto';
import { publicTables } from '../../src/cli/backup/database-summary.js';
import { runCli } from '../../src/cli/run.js';
import type { Queryable } from '../../src/platform/database/database.js';

/** What a run of the command line printed and answered. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed, for --json runs. */
  json<T = Record<string, unknown>>(): T;
}

/** Runs `bulwark <argv>` in this process with exactly `env`, capturing both streams. */
export async function cli(argv: readonly string[], env: Record<string, string>, options: { tty?: boolean } = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text), isTTY: options.tty ?? false },
    env,
  });
  return { code, stdout, stderr, json: <T>() => JSON.parse(stdout) as T };
}

/** Secrets for one test run, generated now (never committed). */
export function runtimeSecrets(): Record<string, string> {
  return { API_KEY_PEPPER: randomBytes(32).toString('hex') };
}

/**
 * Every row of every table of the public schema, as PostgreSQL's own text form of the
 * row, in a stable order: two databases with equal snapshots hold the same data.
 */
export async function everyRow(database: Queryable): Promise<Record<string, string[]>> {
  const snapshot: Record<string, string[]> = {};
  for (const table of await publicTables(database)) {
    const name = `"${table.replace(/"/g, '""')}"`;
    const { rows } = await database.query<{ row: string }>(`SELECT (x.*)::text AS row FROM public.${name} AS x ORDER BY 1`);
    snapshot[table] = rows.map((row) => row.row);
  }
  return snapshot;
}

/** An account name made of shell metacharacters that would create `marker` if anything ever ran it through a shell. */
export function hostileName(marker: string): string {
  return `Acme $(touch ${marker}); \`touch ${marker}\` && rm -rf "$HOME/nothing" | cat > ${marker} ' " \\ * ? ~ # <>`;
}
