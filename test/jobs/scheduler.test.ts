import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.js';
import type { Database } from '../../src/platform/database/database.js';
import { JobScheduler, jobLockKey, slotOf, type ScheduledJob } from '../../src/platform/jobs/scheduler.js';
import { createTestPglite } from '../helpers/pglite.js';

const silent = pino({ level: 'silent' });
const MINUTE = 60_000;

function countingJob(name = 'count', runs: string[] = [], instance = 'a'): ScheduledJob & { runs: string[] } {
  return {
    name,
    intervalSeconds: 60,
    runs,
    async run() {
      runs.push(instance);
    },
  };
}

const databases: Database[] = [];
async function database(): Promise<Database> {
  const created = await createTestPglite();
  databases.push(created);
  return created;
}
afterEach(async () => {
  for (const created of databases.splice(0)) await created.close();
});

describe('JobScheduler on the embedded database', () => {
  it('runs a job once per slot, and again in the next slot', async () => {
    const clock = new ManualClock('2026-03-01T00:00:10Z');
    const scheduler = new JobScheduler({ database: await database(), clock, logger: silent, instanceId: 'a' });
    const job = countingJob();
    scheduler.register(job);
    expect(await scheduler.tick()).toEqual({ count: 'ran' });
    expect(await scheduler.tick()).toEqual({ count: 'not-due' });
    clock.advance(30_000);
    expect(await scheduler.tick()).toEqual({ count: 'not-due' });
    clock.advance(30_000);
    expect(await scheduler.tick()).toEqual({ count: 'ran' });
    expect(job.runs).toHaveLength(2);
  });

  it('records a failure with its message and runs again in the next slot', async () => {
    const clock = new ManualClock('2026-03-01T00:00:00Z');
    const db = await database();
    const scheduler = new JobScheduler({ database: db, clock, logger: silent, instanceId: 'a' });
    let attempts = 0;
    scheduler.register({
      name: 'flaky',
      intervalSeconds: 60,
      async run() {
        attempts += 1;
        if (attempts === 1) throw new Error('upstream unavailable');
      },
    });
    expect(await scheduler.tick()).toEqual({ flaky: 'failed' });
    clock.advance(MINUTE);
    expect(await scheduler.tick()).toEqual({ flaky: 'ran' });
    const { rows } = await db.query<{ status: string; error_message: string | null }>(
      'SELECT status, error_message FROM scheduled_job_runs ORDER BY slot',
    );
    expect(rows).toEqual([
      { status: 'failed', error_message: 'upstream unavailable' },
      { status: 'succeeded', error_message: null },
    ]);
  });

  it('refuses duplicate names and bad intervals', async () => {
    const scheduler = new JobScheduler({ database: await database(), clock: new ManualClock(), logger: silent, instanceId: 'a' });
    scheduler.register(countingJob('once'));
    expect(() => scheduler.register(countingJob('once'))).toThrow(/registered twice/);
    expect(() => scheduler.register({ ...countingJob('bad'), intervalSeconds: 0.5 })).toThrow(/positive integer/);
  });

  it('stop() waits for the run in progress and passes an aborted signal to it', async () => {
    const scheduler = new JobScheduler({ database: await database(), clock: new ManualClock(), logger: silent, instanceId: 'a' });
    let release!: () => void;
    let sawAbort = false;
    let finished = false;
    scheduler.register({
      name: 'slow',
      intervalSeconds: 60,
      async run({ signal }) {
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        sawAbort = signal.aborted;
        finished = true;
      },
    });
    const tick = scheduler.tick();
    await expect.poll(() => release !== undefined).toBe(true);
    const stopped = scheduler.stop();
    release();
    await stopped;
    expect(finished).toBe(true);
    expect(sawAbort).toBe(true);
    await expect(tick).resolves.toEqual({ slow: 'ran' });
  });

  it('derives slots and lock keys deterministically', () => {
    expect(slotOf({ intervalSeconds: 60 }, new Date('1970-01-01T00:02:59Z'))).toBe(2);
    expect(jobLockKey('a')).toBe(jobLockKey('a'));
    expect(jobLockKey('a')).not.toBe(jobLockKey('b'));
    expect(Number.isInteger(jobLockKey('a'))).toBe(true);
  });
});
