import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'sdk/test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Most test files wait on I/O (PostgreSQL, a spawned server, the sandbox, argon2 in the
    // thread pool), so more files than cores run at once: on 2 cores the suite takes about
    // 8 minutes instead of 13. (`--maxWorkers=1` runs them one at a time.)
    maxWorkers: Math.max(3, availableParallelism()),
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests never read the developer's .env or data folder.
    env: { NODE_ENV: 'test' },
  },
});
