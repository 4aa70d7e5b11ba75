import type { ParseArgsConfig } from 'node:util';
import type { Config } from '../config/config.js';

/** Exit codes of `bulwark <command>`: 0 done, 1 failed (or found a problem), 2 wrong usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface OutputStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
}

/** What a command may touch of the outside world: given by main.ts, or by a test. */
export interface CliIo {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** The environment the configuration is read from (main.ts: the process's). */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Wrong arguments: exit 2 with the message and the command's usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** The command ran and failed (or found a problem): exit 1 with a code for --json callers. */
export class CommandFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CommandFailure';
  }
}

/** What a command answers: `data` for --json, `lines` for people; exitCode 1 for "ran, found a problem". */
export interface CommandResult {
  readonly data: object;
  readonly lines: readonly string[];
  readonly exitCode?: number;
}

export type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
export type OptionValues = Readonly<Record<string, string | boolean | undefined>>;

export interface CommandInput {
  readonly values: OptionValues;
  readonly positionals: readonly string[];
  readonly config: Config;
  readonly io: CliIo;
  readonly progress: Progress;
}

export interface CliCommand {
  /** `accounts create`, `backup`. */
  readonly name: string;
  readonly summary: string;
  /** Arguments and options after the name, for the usage line. */
  readonly usage: string;
  readonly options: OptionsConfig;
  /** How many positional arguments the command takes: [at least, at most]. */
  readonly positionals: readonly [number, number];
  run(input: CommandInput): Promise<CommandResult>;
}

/**
 * Text from the database shown in a terminal: control characters (an account named
 * with ANSI escapes) are shown escaped, never interpreted.
 */
export function printable(text: string | null | undefined): string {
  if (text === null || text === undefined) return '-';
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (character) => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Columns padded to their widest cell. */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, index) => (widths[index] = Math.max(widths[index] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0))).join('  '));
}

/**
 * A progress indicator on stderr for long work, drawn only when stderr is a terminal
 * (never in logs, pipes or --json output): `[#####.....] 5/10 label`, or a label with the
 * elapsed seconds when the total is unknown. `done()` clears it.
 */
export class Progress {
  private active = false;
  private readonly startedAtMs = performance.now();

  constructor(private readonly stream: OutputStream) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  update(label: string, done?: number, total?: number): void {
    if (!this.enabled) return;
    const seconds = ((performance.now() - this.startedAtMs) / 1000).toFixed(1);
    let text: string;
    if (done !== undefined && total !== undefined && total > 0) {
      const width = 24;
      const filled = Math.min(width, Math.round((done / total) * width));
      text = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${printable(label)}`;
    } else {
      text = `${printable(label)} (${seconds}s)`;
    }
    this.stream.write(`\r\u001b[2K${text.slice(0, 200)}`);
    this.active = true;
  }

  done(): void {
    if (this.active) this.stream.write('\r\u001b[2K');
    this.active = false;
  }
}
