import type { ScheduledJob } from '../../platform/jobs/scheduler.js';
import type { CreditsService } from './credits.service.js';

/**
 * CRD-6's scheduled half (OPS-5: once per interval across every instance): releases held
 * reservations past their expiry and writes off expired grants. A failure of one item is
 * logged with full context and retried on the next run; the job itself fails (and is
 * retried in the next slot) only when the database cannot be read at all.
 */
export function creditSweeperJob(credits: CreditsService, intervalSeconds: number): ScheduledJob {
  return {
    name: 'credits.sweeper',
    intervalSeconds,
    async run({ logger, signal }) {
      const result = await credits.sweep(logger, signal);
      if (result.released + result.expiredGrants + result.failed > 0) logger.info(result, 'credit sweeper ran');
    },
  };
}
