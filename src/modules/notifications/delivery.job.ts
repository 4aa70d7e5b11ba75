import type { ScheduledJob } from '../../platform/jobs/scheduler.js';
import type { NotificationService } from './notifications.service.js';

/**
 * OPS-5: email and webhook deliveries that are due, once per interval across every
 * instance (the scheduler's claim). The delivery claims themselves use FOR UPDATE SKIP
 * LOCKED, so a run that overlaps another (a manual deliverDue, a lease that ran out)
 * still sends each delivery once. The lease covers a full run of slow endpoints.
 */
export function notificationDeliveryJob(service: NotificationService, intervalSeconds: number, leaseSeconds: number): ScheduledJob {
  return {
    name: 'notifications.delivery',
    intervalSeconds,
    leaseSeconds: Math.max(intervalSeconds, leaseSeconds),
    async run({ logger, signal }) {
      const result = await service.deliverDue({ signal });
      if (result.delivered + result.retrying + result.dead > 0) logger.info(result, 'notification deliveries ran');
    },
  };
}
