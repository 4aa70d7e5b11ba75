import { afterAll, beforeAll, expect, it } from 'vitest';
import { ManualClock, systemClock } from '../../src/platform/clock.js';
import { JobScheduler } from '../../src/platform/jobs/scheduler.js';
import type { ScheduledJob } from '../../src/platform/jobs/scheduler.js';
import { loadMigrations } from '../../src/platform/database/migrate.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createScratchDatabase, describeWithPostgres, type ScratchDatabase } from '../helpers/postgres.js';

/**
 * OPS-5 and the migration lock, proven the way production runs: two complete app
 * instances, each with its own connection pool, on one real PostgreSQL database.
 */
describeWithPostgres('two instances on one PostgreSQL', () => {
  let scratch: ScratchDatabase;
  let first: TestApp;
  let second: TestApp;
  const clock = new ManualClock('2026-05-01T00:00:00Z');

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    // Both start at the same moment, so both try to migrate the empty database.
    [first, second] = await Promise.all([
      createTestApp({ env: { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '4' }, clock }),
      createTestApp({ env: { DATABASE_URL: scratch.url, DATABASE_POOL_MAX: '4' }, clock }),
    ]);
  });

  afterAll(async () => {
    await first?.close();
    await second?.close();
    await scratch?.drop();
  });

  it('migrates once: exactly one instance applies each migration', async () => {
    const all = loadMigrations().map((migration) => migration.version);
    const applied = [...first.deps.migration.applied, ...second.deps.migration.applied].sort((a, b) => a - b);
    expect(applied).toEqual(all);
    expect([first.deps.migration.applied.length, second.deps.migration.applied.length]).toContain(0);
    const { rows } = await first.deps.database.query<{ count: number }>('SELECT count(*)::int AS count FROM schema_migrations');
    expect(rows[0]?.count).toBe(all.length);
  });

  it('runs a scheduled job once per tick across both instances', async () => {
    const runs: string[] = [];
    const job = (instance: string): ScheduledJob => ({
      name: 'two-instances.count',
      intervalSeconds: 60,
      async run() {
        runs.push(instance);
      },
    });
    first.deps.scheduler.register(job('first'));
    second.deps.scheduler.register(job('second'));
    for (let tick = 1; tick <= 8; tick += 1) {
      clock.advance(60_000);
      const outcomes = await Promise.all([first.deps.scheduler.tick(), second.deps.scheduler.tick()]);
      const mine = outcomes.map((outcome) => outcome['two-instances.count']);
      expect(mine.filter((outcome) => outcome === 'ran')).toHaveLength(1);
      expect(mine.filter((outcome) => outcome === 'claimed-elsewhere')).toHaveLength(1);
      expect(runs).toHaveLength(tick);
    }
    const { rows } = await first.deps.database.query<{ slots: number; total: number }>(
      `SELECT count(DISTINCT slot)::int AS slots, count(*)::int AS total FROM scheduled_job_runs WHERE job_name = 'two-instances.count'`,
    );
    expect(rows[0]).toEqual({ slots: 8, total: 8 });
  });

  it('holds the next slot back while a run is still going on the other instance', async () => {
    let release!: () => void;
    const started: string[] = [];
    const slowJob = (instance: string): ScheduledJob => ({
      name: 'two-instances.slow',
      intervalSeconds: 60,
      leaseSeconds: 600,
      async run() {
        started.push(instance);
        if (instance === 'first') await new Promise<void>((resolve) => (release = resolve));
      },
    });
    first.deps.scheduler.register(slowJob('first'));
    second.deps.scheduler.register(slowJob('second'));

    clock.advance(60_000);
    const firstTick = first.deps.scheduler.tick();
    await expect.poll(() => started).toEqual(['first']);

    clock.advance(60_000); // the next slot begins while the first run is still going
    const blocked = await second.deps.scheduler.tick();
    expect(blocked['two-instances.slow']).toBe('still-running');
    expect(started).toEqual(['first']);

    release();
    await firstTick;
    const after = await second.deps.scheduler.tick();
    expect(after['two-instances.slow']).toBe('ran');
    expect(started).toEqual(['first', 'second']);
  });

  it('with real timers, every run corresponds to exactly one claimed slot', async () => {
    const runs: string[] = [];
    const schedulers = [first, second].map((instance, index) => {
      const scheduler = new JobScheduler({
        database: instance.deps.database,
        clock: systemClock,
        logger: instance.deps.logger,
        instanceId: `timer-${index}`,
        pollIntervalMs: 50,
      });
      scheduler.register({
        name: 'two-instances.timer',
        intervalSeconds: 1,
        async run() {
          runs.push(`timer-${index}`);
        },
      });
      return scheduler;
    });
    for (const scheduler of schedulers) scheduler.start();
    await new Promise((resolve) => setTimeout(resolve, 3_500));
    await Promise.all(schedulers.map((scheduler) => scheduler.stop()));
    const { rows } = await first.deps.database.query<{ slots: number; total: number }>(
      `SELECT count(DISTINCT slot)::int AS slots, count(*)::int AS total FROM scheduled_job_runs WHERE job_name = 'two-instances.timer'`,
    );
    expect(rows[0]?.total).toBe(rows[0]?.slots);
    expect(runs.length).toBe(rows[0]?.total);
    expect(runs.length).toBeGreaterThanOrEqual(2);
  });
});
