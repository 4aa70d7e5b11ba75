import type { ScheduledJob } from '../../platform/jobs/scheduler.js';
import { asSystem } from '../../platform/database/access.js';
import { applyEntitledPlan, auditPlanChange } from '../stripe/webhooks/event-handlers/subscriptions.js';

export interface PastDueJobOptions {
  /** PAST_DUE_GRACE_DAYS. */
  readonly pastDueGraceDays: number;
  /** Default hourly. */
  readonly intervalSeconds?: number;
}

/**
 * PAY-6's scheduled half: a past_due subscription keeps its plan for the grace period,
 * counted from when it became past_due (subscriptions.past_due_since). Webhooks apply the
 * end of the grace when an event arrives after it (a later retry's failure); this job
 * applies it when none does: every account with a past_due subscription whose grace is
 * over gets the plan its subscriptions still give (FREE when none), audited. Once across
 * the instances (the scheduler's claim); each account in its own transaction.
 */
export function pastDueGraceJob(options: PastDueJobOptions): ScheduledJob {
  const graceMs = options.pastDueGraceDays * 86_400_000;
  return {
    name: 'billing.past_due_grace',
    intervalSeconds: options.intervalSeconds ?? 3600,
    async run({ database, clock, logger, signal }) {
      const result = await applyPastDueGrace(database, clock, options.pastDueGraceDays, signal);
      if (result.downgraded > 0) logger.info({ ...result, graceMs }, 'past_due grace periods ended');
    },
  };
}

/** One pass of the job (tests call it with their own clock). */
export async function applyPastDueGrace(
  database: Parameters<typeof asSystem>[0],
  clock: { now(): Date },
  pastDueGraceDays: number,
  signal?: AbortSignal,
): Promise<{ checked: number; downgraded: number }> {
  const now = clock.now();
  const cutoff = new Date(now.getTime() - pastDueGraceDays * 86_400_000);
  const { rows } = await asSystem(database, (tx) =>
    tx.query<{ account_id: string }>(
      `SELECT DISTINCT s.account_id FROM subscriptions s JOIN accounts a ON a.id = s.account_id
       WHERE s.status = 'past_due' AND s.past_due_since <= $1 AND a.plan = s.plan_id
       ORDER BY s.account_id LIMIT 1000`,
      [cutoff],
    ),
  );
  let downgraded = 0;
  for (const { account_id: accountId } of rows) {
    if (signal?.aborted) break;
    const changed = await asSystem(database, async (tx) => {
      const change = await applyEntitledPlan({ pastDueGraceDays }, tx, accountId, now, now);
      if (change) await auditPlanChange({ clock }, tx, accountId, change, { reason: 'past_due_grace_ended' });
      return change ? 1 : 0;
    });
    downgraded += changed;
  }
  return { checked: rows.length, downgraded };
}
