import type { ScheduledJob } from '../../platform/jobs/scheduler.js';
import type { PrivacyService } from './privacy.service.js';

export const ACCOUNT_DELETION_JOB_INTERVAL_SECONDS = 60;

/**
 * GDPR-2's retry (OPS-5: once per interval across every instance): finishes deletions
 * whose request could not (Stripe unreachable, a crash between the steps), each at its
 * own backed-off time. Every step is idempotent, so a run racing a request's own attempt
 * does no harm.
 */
export function accountDeletionJob(privacy: PrivacyService, intervalSeconds = ACCOUNT_DELETION_JOB_INTERVAL_SECONDS): ScheduledJob {
  return {
    name: 'privacy.account_deletions',
    intervalSeconds,
    leaseSeconds: 10 * 60,
    async run({ logger, signal }) {
      const result = await privacy.processDueDeletions({ signal });
      if (result.completed + result.pending > 0) logger.info(result, 'account deletions ran');
    },
  };
}
