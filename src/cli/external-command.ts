import { execFile } from 'node:child_process';
import path from 'node:path';

/**
 * OPS-8: the only external programs Bulwark runs, run without a shell (execFile), each
 * argument checked against an allowlist first. Every option is passed in its
 * `--name=value` form, so a value can never be read as another option, and every value
 * must match a pattern: a database name that would make pg_dump parse a connection
 * string (`dbname=x host=elsewhere`), an unknown flag, a relative path (which could
 * start with `-`) or a control character is refused before anything runs. Whatever the
 * data holds (an account named `$(rm -rf ~)`) is never part of an argument.
 */
export type ExternalProgram = 'pg_dump' | 'pg_restore';

/** A value pattern: anchored, no NUL, no line breaks. */
const ABSOLUTE_PATH = /^\/[^\0\n\r]{0,4095}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Fa-f:.]{2,45}|\/[A-Za-z0-9._/-]{0,1023})$/;
const PORT = /^[1-9][0-9]{0,4}$/;
/** Role and database names: identifiers, never anything pg_dump could read as a connection string. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$/;
/** Role names may also carry @ (user@server on some hosted services). */
const ROLE = /^[A-Za-z_][A-Za-z0-9_$.@-]{0,62}$/;
const MILLISECONDS = /^[1-9][0-9]{0,8}$/;

type Rule = { readonly kind: 'flag' } | { readonly kind: 'value'; readonly pattern: RegExp };

const CONNECTION: Readonly<Record<string, Rule>> = {
  '--host': { kind: 'value', pattern: HOST },
  '--port': { kind: 'value', pattern: PORT },
  '--username': { kind: 'value', pattern: ROLE },
  '--dbname': { kind: 'value', pattern: IDENTIFIER },
  '--no-password': { kind: 'flag' },
  '--verbose': { kind: 'flag' },
};

const ALLOWED: Readonly<Record<ExternalProgram, { readonly options: Readonly<Record<string, Rule>>; readonly positional: RegExp | undefined }>> = {
  pg_dump: {
    options: {
      ...CONNECTION,
      '--format': { kind: 'value', pattern: /^custom$/ },
      '--file': { kind: 'value', pattern: ABSOLUTE_PATH },
      '--lock-wait-timeout': { kind: 'value', pattern: MILLISECONDS },
    },
    positional: undefined,
  },
  pg_restore: {
    options: {
      ...CONNECTION,
      '--no-owner': { kind: 'flag' },
      '--single-transaction': { kind: 'flag' },
      '--exit-on-error': { kind: 'flag' },
      '--clean': { kind: 'flag' },
      '--if-exists': { kind: 'flag' },
      // Prints the archive's table of contents and restores nothing.
      '--list': { kind: 'flag' },
    },
    // The archive to restore: an absolute path, so it never starts with '-'.
    positional: ABSOLUTE_PATH,
  },
};

/** Environment variables a child may receive; nothing else of ours (secrets!) is passed on. */
const ALLOWED_ENVIRONMENT = new Set(['PATH', 'PGPASSWORD', 'PGSSLMODE', 'PGSSLROOTCERT', 'PGCONNECT_TIMEOUT', 'PGAPPNAME', 'LC_ALL']);

export class ExternalCommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null = null,
    readonly stderr = '',
  ) {
    super(message);
    this.name = 'ExternalCommandError';
  }
}

/** Throws ExternalCommandError naming the first argument the allowlist refuses. */
export function validateArguments(program: ExternalProgram, args: readonly string[]): void {
  const allowed = ALLOWED[program];
  let positionals = 0;
  for (const arg of args) {
    if (typeof arg !== 'string' || /[\0\n\r]/.test(arg)) throw new ExternalCommandError(`${program}: an argument contains a control character`);
    if (arg.startsWith('-')) {
      const separator = arg.indexOf('=');
      const name = separator === -1 ? arg : arg.slice(0, separator);
      const rule = allowed.options[name];
      if (!rule) throw new ExternalCommandError(`${program}: option ${name} is not allowed`);
      if (rule.kind === 'flag' && separator !== -1) throw new ExternalCommandError(`${program}: ${name} takes no value`);
      if (rule.kind === 'value' && (separator === -1 || !rule.pattern.test(arg.slice(separator + 1)))) {
        throw new ExternalCommandError(`${program}: ${name} has a value that is not allowed`);
      }
      continue;
    }
    positionals += 1;
    if (!allowed.positional || positionals > 1 || !allowed.positional.test(arg)) {
      throw new ExternalCommandError(`${program}: argument ${JSON.stringify(arg.slice(0, 80))} is not allowed`);
    }
  }
}

export interface ExternalCommandOptions {
  /** PG_BIN_DIR: run the program from this directory; otherwise it is looked up on `env.PATH`. */
  readonly binDir?: string | undefined;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Called with each complete line the program writes to stderr (progress). */
  readonly onStderrLine?: (line: string) => void;
}

/**
 * Runs an allowlisted program with validated arguments, without a shell, and resolves
 * with its output once it exits 0; anything else rejects with ExternalCommandError.
 */
export function runExternalCommand(program: ExternalProgram, args: readonly string[], options: ExternalCommandOptions): Promise<{ stdout: string; stderr: string }> {
  validateArguments(program, args);
  if (options.binDir !== undefined && !ABSOLUTE_PATH.test(options.binDir)) {
    return Promise.reject(new ExternalCommandError('PG_BIN_DIR must be an absolute path'));
  }
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.env)) {
    if (value === undefined) continue;
    if (!ALLOWED_ENVIRONMENT.has(name)) return Promise.reject(new ExternalCommandError(`${program}: environment variable ${name} is not allowed`));
    env[name] = value;
  }
  const file = options.binDir === undefined ? program : path.join(options.binDir, program);
  return new Promise((resolve, reject) => {
    let pending = '';
    const child = execFile(
      file,
      [...args],
      { shell: false, env, windowsHide: true, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (pending !== '') options.onStderrLine?.(pending);
        if (!error) {
          resolve({ stdout, stderr });
          return;
        }
        const code = typeof error.code === 'number' ? error.code : null;
        const reason =
          error.code === 'ENOENT'
            ? `${program} was not found${options.binDir ? ` in ${options.binDir}` : ' on PATH'}; install the PostgreSQL client tools or set PG_BIN_DIR`
            : `${program} failed${code === null ? '' : ` with exit code ${code}`}`;
        reject(new ExternalCommandError(reason, code, stderr));
      },
    );
    child.stderr?.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) options.onStderrLine?.(line);
    });
  });
}
