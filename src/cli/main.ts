#!/usr/bin/env node
import { environment } from '../config/config.js';
import { runCli } from './run.js';

/**
 * `npx bulwark <command>` / `npm run cli -- <command>`: the operator command line (CLI-1).
 * Everything happens in runCli; this file only connects it to the process.
 */
runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: environment() }).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bulwark: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
