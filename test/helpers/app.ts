import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { loadConfig, type Config } from '../../src/config/config.js';
import { resolveDevelopmentSecrets } from '../../src/config/development-secrets.js';
import { buildApp } from '../../src/app.js';
import { createDependencies, type DependencyOverrides, type Dependencies } from '../../src/dependencies.js';
import { createLogger } from '../../src/platform/observability/logger.js';
import { createTestPglite } from './pglite.js';

/** Collects every JSON log line an app writes, for assertions on what is (not) logged. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter((line) => line.length > 0));
    callback();
  }

  get text(): string {
    return this.lines.join('\n');
  }
}

export interface TestApp {
  readonly app: FastifyInstance;
  readonly deps: Dependencies;
  readonly config: Config;
  readonly logs: LogCapture;
  close(): Promise<void>;
}

export interface TestAppOptions extends Omit<DependencyOverrides, 'logger'> {
  /** Environment variables on top of NODE_ENV=test and a temporary DATA_DIR. */
  readonly env?: Record<string, string>;
  /** Lets a test add routes (say, one that throws) before the app is ready. */
  readonly beforeReady?: (app: FastifyInstance) => void | Promise<void>;
}

/**
 * The real app, built the way server.ts builds it, on an in-memory PGlite unless the
 * test passes DATABASE_URL (PostgreSQL) or its own database.
 */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'bulwark-test-'));
  const { config } = resolveDevelopmentSecrets(
    loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, LOG_LEVEL: 'info', JOBS_ENABLED: 'false', ...options.env }),
  );
  const logs = new LogCapture();
  const logger = createLogger(config, logs);
  const database =
    options.database ?? (config.database.kind === 'pglite' ? await createTestPglite() : undefined);
  const deps = await createDependencies(config, { ...options, logger, ...(database ? { database } : {}) });
  const app = await buildApp(deps);
  await options.beforeReady?.(app);
  await app.ready();
  return {
    app,
    deps,
    config,
    logs,
    async close() {
      await app.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
