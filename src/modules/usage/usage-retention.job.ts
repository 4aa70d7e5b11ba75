import type { ScheduledJob } from '../../platform/jobs/scheduler.js';
import { DEFAULT_RETENTION_DAYS, UsageService, type UsageServiceOptions } from './usage.service.js';

export interface UsageRetentionJobOptions extends Partial<Pick<UsageServiceOptions, 'cleanupBatchSize'>> {
  /** USE-5: reports older than this are deleted (default 90 days). */
  readonly days?: number;
}

/**
 * USE-5's scheduled half: once a day (once across every instance, OPS-5), deletes usage
 * reports older than `days`, in batches, checking the scheduler's stop signal between
 * them; audited as `usage.cleanup` by the system when anything was deleted.
 */
export function usageRetentionJob(options: UsageRetentionJobOptions = {}): ScheduledJob {
  const days = options.days ?? DEFAULT_RETENTION_DAYS;
  return {
    name: 'usage.retention',
    intervalSeconds: 24 * 60 * 60,
    leaseSeconds: 60 * 60,
    async run({ database, clock, logger, signal }) {
      const service = new UsageService({
        database,
        clock,
        ...(options.cleanupBatchSize !== undefined ? { cleanupBatchSize: options.cleanupBatchSize } : {}),
      });
      const result = await service.cleanup(days, undefined, signal);
      logger.info({ deleted: result.deleted, cutoff: result.cutoff }, 'usage retention ran');
    },
  };
}
