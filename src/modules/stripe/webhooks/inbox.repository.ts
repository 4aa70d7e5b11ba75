import type { Queryable } from '../../../platform/database/database.js';

/**
 * SQL of the webhook inbox, `stripe_events` (migration 0014): one row per Stripe event id,
 * holding ids, type, timestamps and a SHA-256 of the payload only (WH-3, WH-7).
 */

export type InboxStatus = 'received' | 'processed' | 'ignored' | 'refused' | 'failed' | 'dead';
/** Outcomes a processing transaction commits. */
export type FinalStatus = 'processed' | 'ignored' | 'refused';

/** What the inbox keeps of a verified event. */
export interface InboxEvent {
  readonly id: string;
  readonly type: string;
  /** The event's `created`, in Stripe's seconds. */
  readonly createdSeconds: number;
  readonly livemode: boolean;
  readonly payloadSha256: string;
}

export interface InboxRow {
  id: string;
  type: string;
  event_created_at: Date;
  livemode: boolean;
  account_id: string | null;
  status: InboxStatus;
  reason: string | null;
  attempts: number;
  received_at: Date;
  updated_at: Date;
  processed_at: Date | null;
}

/** Terminal for deliveries: a delivery of such an event is a duplicate (200, no effect). */
export const TERMINAL_STATUSES: ReadonlySet<InboxStatus> = new Set(['processed', 'ignored', 'refused', 'dead']);

/**
 * One statement, before any work (stripe_event_lookup, migration 0014; it looks across
 * accounts for these two facts only): the event's inbox status, if it has a row, and the
 * account that owns its Stripe customer - or, for an event naming only a charge
 * (disputes), the account of the payment with that charge.
 */
export async function lookupEvent(
  db: Queryable,
  eventId: string,
  reference: { readonly customerId: string | null; readonly chargeId: string | null },
): Promise<{ status: InboxStatus | null; accountId: string | null }> {
  const { rows } = await db.query<{ status: InboxStatus | null; account_id: string | null }>(
    'SELECT status, account_id FROM stripe_event_lookup($1, $2, $3)',
    [eventId, reference.customerId, reference.chargeId],
  );
  return { status: rows[0]?.status ?? null, accountId: rows[0]?.account_id ?? null };
}

/**
 * Claims a delivered event for processing inside the processing transaction (a system
 * context): inserts its row, or takes over a row whose earlier attempts failed. A
 * concurrent delivery of the same event waits here on the primary key until the first
 * transaction ends; if that one committed, this answers false (a duplicate, WH-3), and if
 * it rolled back, this one proceeds. True when this transaction owns the event.
 */
export async function claimDelivery(tx: Queryable, event: InboxEvent, accountId: string | null, now: Date): Promise<boolean> {
  const { rows } = await tx.query(
    `INSERT INTO stripe_events (id, type, event_created_at, livemode, account_id, payload_sha256, status, attempts, received_at, updated_at)
     VALUES ($1, $2, to_timestamp($3), $4, $5, $6, 'received', 0, $7, $7)
     ON CONFLICT (id) DO UPDATE SET status = 'received', account_id = EXCLUDED.account_id, updated_at = EXCLUDED.updated_at
       WHERE stripe_events.status = 'failed'
     RETURNING id`,
    [event.id, event.type, event.createdSeconds, event.livemode, accountId, event.payloadSha256, now],
  );
  return rows.length === 1;
}

/** Claims a dead event for an operator's replay; false when it is not (or no longer) dead. */
export async function claimReplay(tx: Queryable, eventId: string, accountId: string | null, now: Date): Promise<boolean> {
  const { rows } = await tx.query(
    `UPDATE stripe_events SET status = 'received', account_id = $2, updated_at = $3 WHERE id = $1 AND status = 'dead' RETURNING id`,
    [eventId, accountId, now],
  );
  return rows.length === 1;
}

/** Records the outcome in the claiming transaction, so it commits with the event's effect (WH-4). */
export async function finishEvent(tx: Queryable, eventId: string, status: FinalStatus, reason: string | null, now: Date): Promise<void> {
  await tx.query(
    `UPDATE stripe_events SET status = $2, reason = $3, attempts = attempts + 1, processed_at = $4, updated_at = $4 WHERE id = $1`,
    [eventId, status, reason, now],
  );
}

/**
 * Counts a failed attempt, in its own transaction after the processing one rolled back:
 * `failed`, or `dead` once `maxAttempts` attempts have failed. Undefined when another
 * delivery processed the event in the meantime (nothing to count).
 */
export async function recordFailure(
  tx: Queryable,
  event: InboxEvent,
  accountId: string | null,
  code: string,
  maxAttempts: number,
  now: Date,
): Promise<{ status: 'failed' | 'dead'; attempts: number } | undefined> {
  const { rows } = await tx.query<{ status: 'failed' | 'dead'; attempts: number }>(
    `INSERT INTO stripe_events (id, type, event_created_at, livemode, account_id, payload_sha256, status, reason, attempts, received_at, updated_at)
     VALUES ($1, $2, to_timestamp($3), $4, $5, $6, CASE WHEN $8::int <= 1 THEN 'dead' ELSE 'failed' END, $7, 1, $9, $9)
     ON CONFLICT (id) DO UPDATE SET
       attempts = stripe_events.attempts + 1,
       reason = EXCLUDED.reason,
       account_id = EXCLUDED.account_id,
       updated_at = EXCLUDED.updated_at,
       status = CASE WHEN stripe_events.attempts + 1 >= $8::int THEN 'dead' ELSE 'failed' END
       WHERE stripe_events.status = 'failed'
     RETURNING status, attempts`,
    [event.id, event.type, event.createdSeconds, event.livemode, accountId, event.payloadSha256, code, maxAttempts, now],
  );
  return rows[0];
}

/** A failed replay: the event stays dead, with the attempt and its error code counted. */
export async function recordReplayFailure(tx: Queryable, eventId: string, code: string, now: Date): Promise<void> {
  await tx.query(`UPDATE stripe_events SET attempts = attempts + 1, reason = $2, updated_at = $3 WHERE id = $1 AND status = 'dead'`, [eventId, code, now]);
}

export async function findEvent(tx: Queryable, eventId: string): Promise<InboxRow | undefined> {
  const { rows } = await tx.query<InboxRow>(
    `SELECT id, type, event_created_at, livemode, account_id, status, reason, attempts, received_at, updated_at, processed_at
     FROM stripe_events WHERE id = $1`,
    [eventId],
  );
  return rows[0];
}

/** The dead-letter list, by event id (keyset pagination: `afterId` is the previous page's last id). */
export async function listDeadEvents(tx: Queryable, options: { readonly limit: number; readonly afterId: string | null }): Promise<InboxRow[]> {
  const { rows } = await tx.query<InboxRow>(
    `SELECT id, type, event_created_at, livemode, account_id, status, reason, attempts, received_at, updated_at, processed_at
     FROM stripe_events WHERE status = 'dead' AND ($1::text IS NULL OR id > $1) ORDER BY id LIMIT $2`,
    [options.afterId, options.limit],
  );
  return rows;
}

/**
 * Turns the processing transaction, which claimed the event as a system context, into
 * one acting for the event's account: from here on row-level security shows and accepts
 * only that account's rows (ACC-3), the event's row included (it carries the account).
 */
export async function actForAccount(tx: Queryable, accountId: string): Promise<void> {
  await tx.query(`SELECT set_config('app.system', '', true), set_config('app.account_id', $1, true)`, [accountId]);
}

/** A transaction-scoped advisory lock on a Stripe object id (serialises handlers of one object). */
export async function lockStripeObject(tx: Queryable, objectId: string): Promise<void> {
  await tx.query(`SELECT pg_advisory_xact_lock(hashtextextended('stripe:' || $1, 0))`, [objectId]);
}
