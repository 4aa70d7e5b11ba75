import { ConfigError, loadConfig, type Config } from '../config/config.js';

/**
 * The configuration for a command-line tool, or undefined after printing one line per
 * problem to stderr and setting the exit code (the tool then returns without doing anything).
 */
export function loadCliConfig(exitCodeOnError: number): Config | undefined {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const reason of error.reasons) process.stderr.write(`${reason}\n`);
    process.exitCode = exitCodeOnError;
    return undefined;
  }
}
