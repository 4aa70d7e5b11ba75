import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { resolveDevelopmentSecrets } from '../config/development-secrets.js';
import { AppError } from '../errors/app-error.js';
import {
  CommandFailure,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  Progress,
  UsageError,
  type CliCommand,
  type CliIo,
  type CommandResult,
} from './cli-io.js';
import { accountsCreate, accountsList } from './commands/accounts.js';
import { backup, restore } from './commands/backup.js';
import { creditsGrant } from './commands/credits.js';
import { legacyImport } from './commands/import.js';
import { keysIssue, keysRevoke, keysRotate } from './commands/keys.js';
import { reconcile } from './commands/reconcile.js';
import { auditVerify, creditsVerify } from './commands/verify.js';
import { ExternalCommandError } from './external-command.js';

/** Every command, in the order `bulwark help` lists them. */
export const COMMANDS: readonly CliCommand[] = [
  accountsCreate,
  accountsList,
  keysIssue,
  keysRotate,
  keysRevoke,
  creditsGrant,
  creditsVerify,
  auditVerify,
  reconcile,
  backup,
  restore,
  legacyImport,
];

const GLOBAL_OPTIONS = { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } as const;

function usageOf(command: CliCommand): string {
  return `bulwark ${command.name}${command.usage ? ` ${command.usage}` : ''} [--json]`;
}

function helpText(): string {
  const width = Math.max(...COMMANDS.map((command) => command.name.length));
  return [
    'Usage: bulwark <command> [arguments] [--json]   (or: npm run cli -- <command> ...)',
    '',
    'Commands:',
    ...COMMANDS.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`),
    '',
    'Configuration comes from the environment, as for the service (DATABASE_URL, DATA_DIR, ...).',
    'On the embedded database, stop the service first: one process at a time may open it.',
    'Exit codes: 0 done, 1 failed or found a problem, 2 wrong usage (reconcile: 3 found discrepancies and repaired all). --json prints one JSON document on stdout.',
    '`bulwark help <command>` shows one command.',
  ].join('\n');
}

/** The command named by the first one or two words, and the arguments after it. */
function findCommand(argv: readonly string[]): { command: CliCommand; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS.find((candidate) => candidate.name === name);
    if (command) return { command, rest: argv.slice(words) };
  }
  return undefined;
}

function loadCommandConfig(io: CliIo): Config {
  try {
    return resolveDevelopmentSecrets(loadConfig(io.env)).config;
  } catch (error) {
    if (error instanceof ConfigError) throw new CommandFailure('CONFIGURATION', `Invalid configuration: ${error.reasons.join('; ')}`);
    throw error;
  }
}

interface Failure {
  readonly exitCode: number;
  readonly code: string;
  readonly message: string;
}

function failureOf(error: unknown): Failure {
  if (error instanceof UsageError) return { exitCode: EXIT_USAGE, code: 'USAGE', message: error.message };
  if (error instanceof CommandFailure) return { exitCode: EXIT_FAILURE, code: error.code, message: error.message };
  // A service refused: validation is the caller's mistake (2), anything else a failure (1).
  if (error instanceof AppError) return { exitCode: error.code === 'VALIDATION_FAILED' ? EXIT_USAGE : EXIT_FAILURE, code: error.code, message: error.message };
  if (error instanceof ExternalCommandError) return { exitCode: EXIT_FAILURE, code: 'EXTERNAL_COMMAND', message: error.message };
  return { exitCode: EXIT_FAILURE, code: 'INTERNAL_ERROR', message: error instanceof Error ? error.message : String(error) };
}

/**
 * `bulwark <command> ...`: parses the arguments (node:util parseArgs, strict), reads the
 * configuration from `io.env`, runs the command and prints its result: text for people,
 * or with --json exactly one JSON document on stdout (`{"error":{code,message}}` on
 * failure). Resolves to the exit code; never throws.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const wantsJson = argv.includes('--json');
  const fail = (failure: Failure, command?: CliCommand): number => {
    if (wantsJson) io.stdout.write(`${JSON.stringify({ error: { code: failure.code, message: failure.message } })}\n`);
    io.stderr.write(`bulwark: ${failure.message}\n`);
    if (failure.exitCode === EXIT_USAGE) io.stderr.write(command ? `Usage: ${usageOf(command)}\n` : 'Run `bulwark help` for the commands.\n');
    return failure.exitCode;
  };

  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    const topic = argv[0] === 'help' && argv.length > 1 ? findCommand(argv.slice(1)) : undefined;
    if (argv[0] === 'help' && argv.length > 1 && !topic) return fail({ exitCode: EXIT_USAGE, code: 'USAGE', message: `unknown command: ${argv.slice(1).join(' ')}` });
    (argv.length === 0 ? io.stderr : io.stdout).write(`${topic ? `Usage: ${usageOf(topic.command)}\n  ${topic.command.summary}` : helpText()}\n`);
    return argv.length === 0 ? EXIT_USAGE : EXIT_OK;
  }

  const found = findCommand(argv);
  if (!found) return fail({ exitCode: EXIT_USAGE, code: 'USAGE', message: `unknown command: ${argv.slice(0, 2).join(' ')}` });
  const { command, rest } = found;

  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...command.options, ...GLOBAL_OPTIONS },
      allowPositionals: true,
      strict: true,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (error) {
    return fail({ exitCode: EXIT_USAGE, code: 'USAGE', message: error instanceof Error ? error.message : String(error) }, command);
  }
  if (values.help) {
    io.stdout.write(`Usage: ${usageOf(command)}\n  ${command.summary}\n`);
    return EXIT_OK;
  }
  const [fewest, most] = command.positionals;
  if (positionals.length < fewest || positionals.length > most) {
    const expected = fewest === most ? `${fewest}` : `${fewest} to ${most}`;
    return fail({ exitCode: EXIT_USAGE, code: 'USAGE', message: `${command.name} takes ${expected} argument${most === 1 ? '' : 's'}, got ${positionals.length}` }, command);
  }

  let result: CommandResult;
  try {
    const config = loadCommandConfig(io);
    result = await command.run({ values, positionals, config, io, progress: new Progress(io.stderr) });
  } catch (error) {
    return fail(failureOf(error), command);
  }
  if (wantsJson) io.stdout.write(`${JSON.stringify(result.data)}\n`);
  else io.stdout.write(`${result.lines.join('\n')}\n`);
  return result.exitCode ?? EXIT_OK;
}
