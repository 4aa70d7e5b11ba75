import type { Queryable } from '../../platform/database/database.js';

/**
 * SQL for usage reports (migration 0007). Every function takes the open transaction of
 * the caller's context: forAccount for account work (row-level security shows only that
 * account's rows), asSystem for retention.
 */

export type MetadataValue = string | number | boolean;

/** One event ready to store (already validated and deduplicated within its batch). */
export interface NewUsageEvent {
  /** Position in the request's `events` array, for error messages. */
  readonly index: number;
  readonly id: string;
  readonly idempotencyKey: string;
  readonly jobId: string | null;
  readonly jobType: string;
  readonly quantity: number;
  readonly description: string | null;
  readonly metadata: Readonly<Record<string, MetadataValue>>;
}

/** A report as reads expose it (USE-3): never the metadata. */
export interface UsageReportRow {
  id: string;
  job_id: string | null;
  job_type: string;
  credits_used: number;
  status: string;
  description: string | null;
  created_at: Date | string;
  /** created_at with microseconds, for the page cursor. */
  cursor_at: string;
}

function recordset(events: readonly NewUsageEvent[]): string {
  return JSON.stringify(
    events.map((event) => ({
      idx: event.index,
      id: event.id,
      key: event.idempotencyKey,
      job_id: event.jobId,
      job_type: event.jobType,
      quantity: event.quantity,
      description: event.description,
      metadata: event.metadata,
    })),
  );
}

const RECORD_COLUMNS =
  'idx int, id text, key text, job_id text, job_type text, quantity bigint, description text, metadata jsonb';

/**
 * Stores the events in one statement; an event whose idempotency key the account already
 * used is skipped (ON CONFLICT DO NOTHING, also against a batch another instance is
 * committing at the same moment: the insert waits for it). Rows go in ordered by key, so
 * two batches sharing keys take their row locks in the same order and cannot deadlock.
 * Returns the keys that were stored.
 */
export async function insertUsageEvents(
  tx: Queryable,
  accountId: string,
  events: readonly NewUsageEvent[],
  at: Date,
): Promise<Set<string>> {
  if (events.length === 0) return new Set();
  const { rows } = await tx.query<{ idempotency_key: string }>(
    `INSERT INTO usage_reports (id, account_id, idempotency_key, job_id, job_type, quantity, description, metadata, created_at)
     SELECT e.id, $1, e.key, e.job_id, e.job_type, e.quantity, e.description, coalesce(e.metadata, '{}'::jsonb), $3::timestamptz
       FROM jsonb_to_recordset($2::jsonb) AS e(${RECORD_COLUMNS})
      ORDER BY e.key
     ON CONFLICT ON CONSTRAINT usage_reports_idempotency DO NOTHING
     RETURNING idempotency_key`,
    [accountId, recordset(events), at.toISOString()],
  );
  return new Set(rows.map((row) => row.idempotency_key));
}

/**
 * Of events that were not stored because their key was already used, the first (lowest
 * index) whose stored report differs from it: reusing a key for another event is an
 * error (API.md), a faithful replay is not. undefined when every one is a faithful replay.
 */
export async function firstReusedKey(tx: Queryable, accountId: string, events: readonly NewUsageEvent[]): Promise<number | undefined> {
  if (events.length === 0) return undefined;
  const { rows } = await tx.query<{ idx: number }>(
    `SELECT e.idx
       FROM jsonb_to_recordset($2::jsonb) AS e(${RECORD_COLUMNS})
       JOIN usage_reports u ON u.account_id = $1 AND u.idempotency_key = e.key
      WHERE u.job_id IS DISTINCT FROM e.job_id
         OR u.job_type <> e.job_type
         OR u.quantity <> e.quantity
         OR u.description IS DISTINCT FROM e.description
         OR u.metadata <> coalesce(e.metadata, '{}'::jsonb)
      ORDER BY e.idx
      LIMIT 1`,
    [accountId, recordset(events)],
  );
  return rows[0]?.idx;
}

/** Adds accepted events to the account's count for `day` and returns the day's total, locking the row to commit. */
export async function addDailyCount(
  tx: Queryable,
  accountId: string,
  day: string,
  events: number,
): Promise<{ events: number; anomalyRecorded: boolean }> {
  const { rows } = await tx.query<{ events: number; anomaly_recorded: boolean }>(
    `INSERT INTO usage_daily_counts (account_id, day, events) VALUES ($1, $2::date, $3)
     ON CONFLICT (account_id, day) DO UPDATE SET events = usage_daily_counts.events + excluded.events
     RETURNING events, anomaly_recorded_at IS NOT NULL AS anomaly_recorded`,
    [accountId, day, events],
  );
  const row = rows[0];
  if (!row) throw new Error('usage_daily_counts upsert returned no row');
  return { events: row.events, anomalyRecorded: row.anomaly_recorded };
}

/** Events in the `days` days before `day` (not counting it), and the earliest of those days with any. */
export async function trailingCounts(
  tx: Queryable,
  accountId: string,
  day: string,
  days: number,
): Promise<{ total: number; firstDay: string | null }> {
  const { rows } = await tx.query<{ total: number; first_day: string | null }>(
    `SELECT coalesce(sum(events), 0)::bigint AS total, to_char(min(day), 'YYYY-MM-DD') AS first_day
       FROM usage_daily_counts
      WHERE account_id = $1 AND day >= $2::date - $3::int AND day < $2::date`,
    [accountId, day, days],
  );
  return { total: rows[0]?.total ?? 0, firstDay: rows[0]?.first_day ?? null };
}

/** Marks the day's anomaly as recorded; false if it already was (once per account and day). */
export async function markAnomalyRecorded(tx: Queryable, accountId: string, day: string, at: Date): Promise<boolean> {
  const result = await tx.query(
    `UPDATE usage_daily_counts SET anomaly_recorded_at = $3::timestamptz
      WHERE account_id = $1 AND day = $2::date AND anomaly_recorded_at IS NULL`,
    [accountId, day, at.toISOString()],
  );
  return result.rowCount > 0;
}

/** A page of the account's reports, newest first, after the (created_at, id) of the cursor. */
export async function listUsageReports(
  tx: Queryable,
  accountId: string,
  options: { readonly limit: number; readonly after?: { readonly at: string; readonly id: string } },
): Promise<UsageReportRow[]> {
  const { rows } = await tx.query<UsageReportRow>(
    `SELECT id, job_id, job_type, credits_used, status, description, created_at,
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS cursor_at
       FROM usage_reports
      WHERE account_id = $1
        AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::text))
      ORDER BY created_at DESC, id DESC
      LIMIT $4`,
    [accountId, options.after?.at ?? null, options.after?.id ?? null, options.limit],
  );
  return rows;
}

/** Deletes up to `batchSize` reports created before `cutoff` (any account: system context). */
export async function deleteReportsBefore(tx: Queryable, cutoff: Date, batchSize: number): Promise<number> {
  const result = await tx.query(
    `DELETE FROM usage_reports
      WHERE id IN (SELECT id FROM usage_reports WHERE created_at < $1::timestamptz ORDER BY created_at LIMIT $2)`,
    [cutoff.toISOString(), batchSize],
  );
  return result.rowCount;
}

/** Deletes daily counts of days before `day` (any account: system context). */
export async function deleteDailyCountsBefore(tx: Queryable, day: string): Promise<number> {
  const result = await tx.query(`DELETE FROM usage_daily_counts WHERE day < $1::date`, [day]);
  return result.rowCount;
}

/** Reports per UTC day from `fromDay` to `toDay` (inclusive): how many and their summed quantity. Days without any are absent. */
export async function dailyReportTotals(
  tx: Queryable,
  accountId: string,
  fromDay: string,
  toDay: string,
): Promise<{ day: string; reports: number; quantity: number }[]> {
  const { rows } = await tx.query<{ day: string; reports: number; quantity: number }>(
    `SELECT to_char((created_at AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day, count(*)::bigint AS reports, sum(quantity)::bigint AS quantity
       FROM usage_reports
      WHERE account_id = $1
        AND created_at >= ($2::date)::timestamp AT TIME ZONE 'UTC'
        AND created_at < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
      GROUP BY 1
      ORDER BY 1`,
    [accountId, fromDay, toDay],
  );
  return rows;
}

/**
 * Entitlement counters whose period starts on a UTC day from `fromDay` to `toDay`: the
 * daily metered features' use per day (a monthly feature's counter shows on the 1st).
 * Static limits count from the epoch and are never in range.
 */
export async function dailyCounters(
  tx: Queryable,
  accountId: string,
  fromDay: string,
  toDay: string,
): Promise<{ day: string; feature: string; used: number }[]> {
  const { rows } = await tx.query<{ day: string; feature: string; used: number }>(
    `SELECT to_char((period_start AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS day, feature, used
       FROM usage_counters
      WHERE account_id = $1
        AND period_start >= ($2::date)::timestamp AT TIME ZONE 'UTC'
        AND period_start < ($3::date + 1)::timestamp AT TIME ZONE 'UTC'
      ORDER BY period_start, feature`,
    [accountId, fromDay, toDay],
  );
  return rows;
}
