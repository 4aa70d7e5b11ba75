import { spawn } from 'node:child_process';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { httpRequest } from './net.mjs';
import { within } from './time.mjs';

const OUTPUT_TAIL_BYTES = 16 * 1024;

/**
 * A server under test running as a child process. Its stdout and stderr are always drained
 * (a full pipe would stall the server) and the last few KiB are kept for error messages.
 */
export class ServerProcess {
  constructor({ name, command, args, env, cwd, host, port }) {
    this.name = name;
    this.host = host;
    this.port = port;
    this.output = '';
    this.exit = undefined;
    this.child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.child.once('error', (error) => {
        this.output += `\n[spawn error] ${error.message}\n`;
        this.exit = { code: null, signal: null, error };
        resolve(this.exit);
      });
    });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (text) => {
        this.output = (this.output + text).slice(-OUTPUT_TAIL_BYTES);
      });
    }
  }

  get pid() {
    return this.child.pid;
  }

  outputTail(lines = 30) {
    return this.output.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Polls `path` until it answers `status`; fails early if the child exits, or after timeoutMs. */
  async waitUntilReady({ path, headers, status = 200, timeoutMs }) {
    const deadline = Date.now() + timeoutMs;
    let lastProblem = 'no attempt yet';
    while (Date.now() < deadline) {
      if (this.exit) {
        throw new Error(
          `${this.name} exited during startup (code ${this.exit.code}, signal ${this.exit.signal}). Output:\n${this.outputTail()}`,
        );
      }
      try {
        const response = await httpRequest({ host: this.host, port: this.port, path, headers, timeoutMs: 1_000 });
        if (response.status === status) return response;
        lastProblem = `answered ${response.status}: ${response.body.slice(0, 200)}`;
      } catch (error) {
        lastProblem = error.message;
      }
      await sleep(100);
    }
    throw new Error(
      `${this.name} did not answer GET ${path} with ${status} within ${timeoutMs} ms (last: ${lastProblem}). Output:\n${this.outputTail()}`,
    );
  }

  /** SIGTERM, then SIGKILL if it has not exited after graceMs. Resolves a description of how it ended. */
  async stop(graceMs) {
    if (this.exit) return { ...this.exit, how: 'had already exited' };
    this.child.kill('SIGTERM');
    const graceful = await within(this.exited, graceMs);
    if (graceful) return { ...graceful, how: 'exited after SIGTERM' };
    this.child.kill('SIGKILL');
    const killed = await within(this.exited, 5_000);
    if (killed) return { ...killed, how: `did not exit within ${graceMs} ms of SIGTERM; killed with SIGKILL` };
    throw new Error(`${this.name} (pid ${this.pid}) survived SIGKILL for 5 s`);
  }
}


/**
 * The real Bulwark server (dist/server.js) as the standalone benchmarks run it: on
 * PostgreSQL, development mode, no jobs, the settings' log level, plus `env`.
 */
/**
 * The environment of a benchmarked Bulwark (bench/run.mjs, credits.mjs, webhooks.mjs): nothing from the caller's
 * shell but PATH, development mode on the run's PostgreSQL database, no scheduled jobs, warn-level logs, a fresh
 * operator token, no Stripe sandbox unless asked (`extra`), and the given rate-limit overrides.
 */
export function bulwarkEnv({ settings, port, dataDir, databaseUrl, adminToken, rateLimits, extra = {} }) {
  return {
    PATH: process.env.PATH ?? '',
    ...(process.env.SYSTEMROOT ? { SYSTEMROOT: process.env.SYSTEMROOT } : {}),
    NODE_ENV: 'development',
    HOST: settings.host,
    PORT: String(port),
    DATA_DIR: dataDir,
    JOBS_ENABLED: 'false',
    LOG_LEVEL: settings.serverLogLevel,
    DATABASE_URL: databaseUrl,
    ADMIN_API_TOKEN: adminToken,
    STRIPE_SANDBOX_START: 'false',
    ...(rateLimits ? { RATE_LIMITS: rateLimits } : {}),
    ...extra,
  };
}

/**
 * Node's flags for a benchmarked Bulwark: none, or with BENCH_CPU_PROF_DIR=<dir> a V8 CPU
 * profile written there when the server stops (for finding where a request's time goes; a
 * profiled run's figures are not comparable with others).
 */
export function bulwarkNodeArgs() {
  return process.env.BENCH_CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF_DIR}`] : [];
}

/** dist/server.js as a benchmarked child process, with bulwarkEnv. */
export function bulwarkServer({ projectDir, settings, port, dataDir, databaseUrl, adminToken, rateLimits, env = {} }) {
  return new ServerProcess({
    name: 'Bulwark',
    command: process.execPath,
    args: [...bulwarkNodeArgs(), path.join(projectDir, 'dist', 'server.js')],
    cwd: projectDir,
    env: bulwarkEnv({ settings, port, dataDir, databaseUrl, adminToken, rateLimits, extra: env }),
    host: settings.host,
    port,
  });
}
