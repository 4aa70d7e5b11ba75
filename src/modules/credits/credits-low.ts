import type { Logger } from 'pino';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import type { Notifier } from '../notifications/notifier.js';

export interface CreditsLowOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly notifier: Notifier;
  readonly logger: Logger;
  /** CREDITS_LOW_THRESHOLD: below this balance the account gets one credits.low; 0 turns it off. */
  readonly thresholdCredits: number;
  /** How long a touched account waits before its check, so a burst of spends costs one check. */
  readonly delayMs?: number;
}

export type CreditsLowOutcome = 'off' | 'crossed' | 'still-low' | 'ok';

/**
 * credits.low (OUT-1): after credits leave or come back to an account (a hold, a gate, a
 * release, a grant), the account is checked once shortly afterwards, outside the money
 * path's own transaction (the hot reserve and settle statements stay as they are). The
 * check reads the spendable balance and, in one transaction with the account's row in
 * credit_balance_alerts, queues credits.low the moment the balance is first seen below the
 * threshold; seen at or above it again, the alert re-arms. Two instances checking at once
 * notify once: the row's conditional update is the claim.
 *
 * Each check is a few milliseconds after the change, so a balance that dips and recovers
 * within that window may be missed, and one that is below the threshold is reported with
 * the balance at the check, not at the spend.
 */
export class CreditsLowWatcher {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Set<Promise<unknown>>();
  private closed = false;

  constructor(private readonly options: CreditsLowOptions) {}

  /** Credits moved for this account: check it soon (at most once per delay). */
  readonly touched = (accountId: string): void => {
    if (this.options.thresholdCredits <= 0 || this.closed || this.timers.has(accountId)) return;
    const timer = setTimeout(() => {
      this.timers.delete(accountId);
      const run = this.check(accountId)
        .catch((error: unknown) => this.options.logger.error({ err: error, accountId }, 'credits.low check failed'))
        .finally(() => this.running.delete(run));
      this.running.add(run);
    }, this.options.delayMs ?? 50);
    timer.unref();
    this.timers.set(accountId, timer);
  };

  /** Checks one account now. */
  async check(accountId: string): Promise<CreditsLowOutcome> {
    const threshold = this.options.thresholdCredits;
    if (threshold <= 0) return 'off';
    const now = this.options.clock.now();
    return forAccount(this.options.database, accountId, async (tx) => {
      const { rows } = await tx.query<{ balance: string | number }>(
        `SELECT coalesce(sum(remaining), 0)::bigint AS balance FROM credit_grants
         WHERE account_id = $1 AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2)`,
        [accountId, now],
      );
      const balance = Number(rows[0]?.balance ?? 0);
      if (balance >= threshold) {
        await tx.query(`UPDATE credit_balance_alerts SET low = false, balance = $2, changed_at = $3 WHERE account_id = $1 AND low`, [accountId, balance, now]);
        return 'ok';
      }
      const claimed = await tx.query(
        `INSERT INTO credit_balance_alerts AS a (account_id, low, balance, changed_at) VALUES ($1, true, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET low = true, balance = EXCLUDED.balance, changed_at = EXCLUDED.changed_at WHERE NOT a.low
         RETURNING account_id`,
        [accountId, balance, now],
      );
      if (claimed.rows.length === 0) return 'still-low';
      await this.options.notifier.emit(tx, { type: 'credits.low', accountId, data: { balance, threshold } });
      return 'crossed';
    });
  }

  /** Waits for the checks already due and drops the ones not started (before the database closes). */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.running]);
  }

  /** For tests: runs every pending check now and waits for them. */
  async flush(): Promise<void> {
    const pending = [...this.timers.keys()];
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.running, ...pending.map((accountId) => this.check(accountId))]);
  }
}
