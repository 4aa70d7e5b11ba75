import { AppError } from '../../errors/app-error.js';
import type { ScheduledJob } from '../../platform/jobs/scheduler.js';
import type { ReconciliationService } from './reconciliation.service.js';

/**
 * PAY-8's daily run (RECONCILIATION_INTERVAL_SECONDS, default 86400) through the
 * JobScheduler: once per interval across every instance (OPS-5). A run already in
 * progress (started from the dashboard or `bulwark reconcile`) makes this slot's run a
 * no-op; anything else that fails the run fails the job (retried in the next slot).
 */
export function reconciliationJob(reconciliation: ReconciliationService, intervalSeconds: number): ScheduledJob {
  return {
    name: 'billing.reconciliation',
    intervalSeconds,
    leaseSeconds: Math.min(intervalSeconds, 3_600),
    async run({ logger }) {
      try {
        await reconciliation.run('schedule', { actorType: 'system', actorId: null });
      } catch (error) {
        if (error instanceof AppError && error.code === 'CONFLICT') {
          logger.info('reconciliation already running elsewhere; this slot skips it');
          return;
        }
        throw error;
      }
    },
  };
}
