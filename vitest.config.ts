import { availableParallelism } from 'node:os';
import { configDefaults, defineConfig } from 'vitest/config';

/**
 * Tests that compare timings of two code paths (AUTH-6) need a process that nothing else
 * competes with: they run in their own pass, alone, after the rest (`npm test` runs both
 * passes; `npm run test:timing` only this one).
 */
const TIMING_TESTS = ['test/auth/login-timing.test.ts'];
const timingPass = process.env.BULWARK_TEST_PASS === 'timing';

export default defineConfig({
  test: {
    include: timingPass ? TIMING_TESTS : ['src/**/*.test.ts', 'test/**/*.test.ts', 'sdk/test/**/*.test.ts'],
    exclude: timingPass ? configDefaults.exclude : [...configDefaults.exclude, ...TIMING_TESTS],
    globalSetup: ['test/global-setup.ts'],
    // Most test files wait on I/O (PostgreSQL, a spawned server, the sandbox, argon2 in the
    // thread pool), so more files than cores run at once: on 2 cores the suite takes about
    // 8 minutes instead of 13. (`--maxWorkers=1` runs them one at a time.)
    maxWorkers: timingPass ? 1 : Math.max(3, availableParallelism()),
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Tests never read the developer's .env or data folder.
    env: { NODE_ENV: 'test' },
  },
});
