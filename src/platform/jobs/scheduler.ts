import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import type { Database } from '../database/database.js';

export interface JobContext {
  readonly database: Database;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Aborted when the scheduler stops; long jobs should check it between batches. */
  readonly signal: AbortSignal;
}

export interface ScheduledJob {
  /** Unique, stable name: it keys the run history and the advisory lock. */
  readonly name: string;
  readonly intervalSeconds: number;
  /** How long a run may take before another instance may assume it died. Default: the interval. */
  readonly leaseSeconds?: number;
  run(context: JobContext): Promise<void>;
}

export type TickOutcome = 'ran' | 'failed' | 'claimed-elsewhere' | 'still-running' | 'not-due';

export interface SchedulerOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly instanceId: string;
  /** How often the timer looks for due jobs. */
  readonly pollIntervalMs?: number;
}

/** Stable 32-bit key for pg_advisory_xact_lock from a job name (FNV-1a). */
export function jobLockKey(name: string): number {
  let hash = 0x811c9dc5;
  for (const character of `bulwark.job.${name}`) {
    hash ^= character.codePointAt(0) ?? 0;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}

export function slotOf(job: Pick<ScheduledJob, 'intervalSeconds'>, at: Date): number {
  return Math.floor(at.getTime() / (job.intervalSeconds * 1000));
}

/**
 * Runs each registered job once per time slot (floor(now / interval)) across all
 * instances sharing the database. A run is claimed by inserting (job, slot) into
 * scheduled_job_runs, which is unique; the claim is made under a per-job advisory lock
 * so that a run still in progress elsewhere (within its lease) holds the next slot back.
 */
export class JobScheduler {
  private readonly jobs = new Map<string, ScheduledJob>();
  private readonly lastSlotTried = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<unknown> = Promise.resolve();
  private readonly abort = new AbortController();

  constructor(private readonly options: SchedulerOptions) {}

  register(job: ScheduledJob): void {
    if (this.jobs.has(job.name)) throw new Error(`Job ${job.name} is registered twice`);
    if (!Number.isInteger(job.intervalSeconds) || job.intervalSeconds < 1) {
      throw new Error(`Job ${job.name}: intervalSeconds must be a positive integer`);
    }
    this.jobs.set(job.name, job);
  }

  get registeredJobs(): readonly string[] {
    return [...this.jobs.keys()];
  }

  /** Looks at every job once; runs those that are due and that this instance claims. */
  async tick(): Promise<Record<string, TickOutcome>> {
    const run = this.inFlight.then(() => this.tickAll());
    this.inFlight = run.catch(() => undefined);
    return run;
  }

  start(): void {
    if (this.timer || this.jobs.size === 0) return;
    const pollIntervalMs = this.options.pollIntervalMs ?? 1_000;
    this.timer = setInterval(() => {
      this.tick().catch((error: unknown) => this.options.logger.error({ err: error }, 'job scheduler tick failed'));
    }, pollIntervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress to finish. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.abort.abort();
    await this.inFlight;
  }

  private async tickAll(): Promise<Record<string, TickOutcome>> {
    const outcomes: Record<string, TickOutcome> = {};
    for (const job of this.jobs.values()) {
      if (this.abort.signal.aborted) break;
      outcomes[job.name] = await this.tickJob(job);
    }
    return outcomes;
  }

  private async tickJob(job: ScheduledJob): Promise<TickOutcome> {
    const { database, clock, logger, instanceId } = this.options;
    const now = clock.now();
    const slot = slotOf(job, now);
    if (this.lastSlotTried.get(job.name) === slot) return 'not-due';

    const leaseSeconds = job.leaseSeconds ?? job.intervalSeconds;
    const claim = await database.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [jobLockKey(job.name)]);
      const running = await tx.query(
        `SELECT 1 FROM scheduled_job_runs
          WHERE job_name = $1 AND status = 'running' AND lease_expires_at > $2 AND slot <> $3
          LIMIT 1`,
        [job.name, now, slot],
      );
      if (running.rowCount > 0) return 'still-running' as const;
      const inserted = await tx.query<{ id: number }>(
        `INSERT INTO scheduled_job_runs (job_name, slot, instance_id, status, started_at, lease_expires_at)
         VALUES ($1, $2, $3, 'running', $4, $5)
         ON CONFLICT ON CONSTRAINT scheduled_job_runs_once_per_slot DO NOTHING
         RETURNING id`,
        [job.name, slot, instanceId, now, new Date(now.getTime() + leaseSeconds * 1000)],
      );
      const row = inserted.rows[0];
      return row ? row.id : ('claimed-elsewhere' as const);
    });
    if (claim === 'still-running') return claim; // try again on the next poll within this slot
    this.lastSlotTried.set(job.name, slot);
    if (claim === 'claimed-elsewhere') return claim;

    const jobLogger = logger.child({ job: job.name, slot });
    try {
      await job.run({ database, clock, logger: jobLogger, signal: this.abort.signal });
      await database.query(
        `UPDATE scheduled_job_runs SET status = 'succeeded', finished_at = $2 WHERE id = $1`,
        [claim, clock.now()],
      );
      return 'ran';
    } catch (error) {
      jobLogger.error({ err: error }, 'scheduled job failed');
      const message = error instanceof Error ? error.message.slice(0, 500) : 'unknown error';
      await database.query(
        `UPDATE scheduled_job_runs SET status = 'failed', finished_at = $2, error_message = $3 WHERE id = $1`,
        [claim, clock.now(), message],
      );
      return 'failed';
    }
  }
}

/** Keeps the run history bounded. */
export function pruneJobRunsJob(retentionDays = 30): ScheduledJob {
  return {
    name: 'scheduled-job-runs.prune',
    intervalSeconds: 24 * 60 * 60,
    async run({ database, clock, logger }) {
      const cutoff = new Date(clock.now().getTime() - retentionDays * 24 * 60 * 60 * 1000);
      const result = await database.query(`DELETE FROM scheduled_job_runs WHERE started_at < $1 AND status <> 'running'`, [cutoff]);
      logger.info({ deleted: result.rowCount }, 'pruned scheduled job runs');
    },
  };
}
