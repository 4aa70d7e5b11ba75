import { createHash } from 'node:crypto';
import { clampPageLimit } from '../../platform/http/pagination.js';
import { AppError, validationError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem, forAccount } from '../../platform/database/access.js';
import { sqlStateOf, SqlState, type Database, type Queryable } from '../../platform/database/database.js';
import { MicroBatcher } from '../../platform/batching/micro-batcher.js';
import { newId } from '../../platform/ids.js';
import { recordAudit } from '../audit/audit.service.js';
import type { JobPricingPort } from '../plans/plan-features.js';
import { spendingOrder } from './allocation.js';
import { InsufficientCreditsError } from './credits.errors.js';

/**
 * Prepaid credits (CRD-1..9). Every amount is a whole number of credits (CRD-5): the
 * smallest unit, a bigint in the database, a safe integer here, a JSON integer at the edge.
 *
 * Concurrency: a reserve locks the account's usable grants (FOR NO KEY UPDATE, in id
 * order, so two transactions always lock in the same order and cannot deadlock), then
 * decrements them; the CHECK (remaining >= 0) makes an overdraft impossible even for a
 * bug. Confirm and release lock the reservation row (by id AND account, CRD-3) and read
 * every amount from the database, never from the caller.
 */

/** The most credits one grant or one reservation may move (API.md: "up to 1,000,000"). */
export const MAX_CREDITS_PER_OPERATION = 1_000_000;
/** CRD-6: a held reservation not confirmed within this time is released by the sweeper (default; CREDIT_RESERVATION_TTL_SECONDS). */
export const RESERVATION_TTL_MS = 15 * 60 * 1000;
/** How many reservations or grants one sweep pass reads at a time. */
export const SWEEP_BATCH_SIZE = 200;

export const GRANT_SOURCES = ['purchase', 'signup_bonus', 'admin', 'promotion', 'refund_reversal'] as const;
export type GrantSource = (typeof GRANT_SOURCES)[number];
export type ReservationStatus = 'held' | 'confirmed' | 'released';
export type LedgerKind = 'grant' | 'hold' | 'spend' | 'release' | 'expiry' | 'refund_reversal';

export interface GrantInput {
  readonly amount: number;
  readonly source: GrantSource;
  readonly expiresAt?: Date | null;
  readonly reference?: string | null;
}

export interface Actor {
  readonly actorType: string;
  readonly actorId: string | null;
  readonly ip?: string | null;
}

export interface GrantView {
  readonly id: string;
  readonly source: GrantSource;
  readonly amount: number;
  readonly remaining: number;
  readonly expiresAt: string | null;
}

export interface ReserveInput {
  readonly jobId: string;
  readonly jobType: string;
  readonly units?: number;
  readonly amount?: number;
  readonly idempotencyKey: string;
}

export interface ReservationView {
  readonly id: string;
  readonly jobId: string;
  readonly jobType: string;
  readonly amount: number;
  readonly status: ReservationStatus;
  readonly expiresAt: string;
}

/** A validated, priced reserve request (prepareReserve). */
export interface PreparedReserve {
  readonly jobId: string;
  readonly jobType: string;
  readonly idempotencyKey: string;
  readonly cost: number;
  readonly hash: string;
}

export interface ReserveResult {
  readonly reservation: ReservationView;
  /** True when the idempotency key had already reserved: nothing more was held. */
  readonly replayed: boolean;
}

export interface Balance {
  /** Spendable now: remaining of the grants that have not expired. */
  readonly balance: number;
  /** Reserved and not yet confirmed or released. */
  readonly held: number;
  /** The grants with credits left that have not expired, in spending order. */
  readonly grants: GrantView[];
}

export interface LedgerEntry {
  readonly id: string;
  readonly kind: LedgerKind;
  readonly amount: number;
  readonly grantId: string | null;
  readonly reservationId: string | null;
  readonly createdAt: string;
}

export interface LedgerPage {
  readonly items: LedgerEntry[];
  readonly nextCursor: string | null;
}

export interface CreditsServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  /** The server-side job price list (deps.plans: PlanCatalogue implements it). */
  readonly pricing: JobPricingPort;
  /** CRD-6: how long a hold lasts before the sweeper may release it; default 15 minutes. */
  readonly reservationTtlMs?: number;
  /** OPS-2: counts every operation by kind and outcome (credit_operations_total). */
  readonly operations?: OperationCounter;
  /** Told after credits left or came back to an account (credits.low: CreditsLowWatcher.touched); must not throw or block. */
  readonly onBalanceMoved?: (accountId: string) => void;
}

/** The part of a prom-client Counter the credits code uses. */
export interface OperationCounter {
  inc(labels: { operation: string; outcome: string }): void;
}

/** ok, or the error code in lower case (insufficient_credits, conflict, not_found, ...), or error. */
export function outcomeOf(error: unknown): string {
  if (error instanceof AppError) return error.code.toLowerCase();
  if (sqlStateOf(error) === SqlState.insufficientCredits) return 'insufficient_credits';
  return 'error';
}

/** What one sweep did (CRD-6). */
export interface SweepResult {
  /** Held reservations past their expiry that were released. */
  readonly released: number;
  /** Expired grants whose remainder was written off, and how many credits that was. */
  readonly expiredGrants: number;
  readonly writtenOff: number;
  /** Reservations or grants that could not be processed; each was logged and is retried on the next run. */
  readonly failed: number;
}

/** Where the sweeper reports what went wrong, with full context (a pino logger fits). */
export interface SweepLogger {
  error(context: Record<string, unknown>, message: string): void;
}

interface GrantRow {
  id: string;
  source: GrantSource;
  amount: number;
  remaining: number;
  expires_at: Date | null;
  created_at: Date;
}

export interface ReservationRow {
  id: string;
  job_id: string;
  job_type: string;
  amount: number;
  status: ReservationStatus;
  request_hash: string;
  expires_at: Date;
}

const LEDGER_CURSOR = /^[1-9][0-9]{0,15}$/;
const JOB_TYPE = /^[a-z][a-z0-9_.-]{0,63}$/;
/** Printable text: no control characters (Cc) and no unpaired surrogates (Cs). */
const PRINTABLE = /^[^\p{Cc}\p{Cs}]+$/u;


function isWholeCredits(value: unknown, max = MAX_CREDITS_PER_OPERATION): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= max;
}

function requireText(value: unknown, field: string, maxLength: number, pattern: RegExp = PRINTABLE): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > maxLength || !pattern.test(value)) {
    throw validationError([{ field, message: `must be a string of 1 to ${maxLength} printable characters` }]);
  }
  return value;
}

function grantView(row: GrantRow): GrantView {
  return { id: row.id, source: row.source, amount: row.amount, remaining: row.remaining, expiresAt: row.expires_at?.toISOString() ?? null };
}

export function reservationView(row: Omit<ReservationRow, 'request_hash'>): ReservationView {
  return { id: row.id, jobId: row.job_id, jobType: row.job_type, amount: row.amount, status: row.status, expiresAt: row.expires_at.toISOString() };
}

/** The request a reservation's idempotency key stands for: everything but the key. */
export function reserveRequestHash(input: { jobId: string; jobType: string; units?: number | undefined; amount?: number | undefined }): string {
  const canonical = JSON.stringify([input.jobId, input.jobType, input.units ?? null, input.amount ?? null]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

async function writeLedger(
  tx: Queryable,
  accountId: string,
  kind: LedgerKind,
  entries: readonly { grantId: string; amount: number }[],
  reservationId: string | null,
  at: Date,
): Promise<void> {
  if (entries.length === 0) return;
  await tx.query(
    `INSERT INTO credit_ledger (account_id, kind, amount, grant_id, reservation_id, created_at)
     SELECT $1, $2, e.amount, e.grant_id, $5, $6 FROM unnest($3::text[], $4::bigint[]) AS e(grant_id, amount)`,
    [accountId, kind, entries.map((entry) => entry.grantId), entries.map((entry) => entry.amount), reservationId, at],
  );
}

export class CreditsService {
  private readonly reserves: MicroBatcher<ReserveItem, ReserveOutcome>;
  private readonly settlements: MicroBatcher<SettleItem, SettleRow>;

  constructor(private readonly options: CreditsServiceOptions) {
    this.reserves = new MicroBatcher((items) => this.reserveMany(items), { ...BATCH_LIMITS, keyOf: (item) => item.accountId });
    this.settlements = new MicroBatcher((items) => this.settleMany(items), { ...BATCH_LIMITS, keyOf: (item) => item.accountId });
  }

  /**
   * Adds a grant (CRD-1): ledger 'grant' and audit 'credits.granted' in the same
   * transaction. An unknown account is 404.
   */
  async grant(accountId: string, input: GrantInput, actor: Actor = { actorType: 'system', actorId: null }): Promise<GrantView> {
    return this.measured('grant', async () => {
      try {
        const grant = await forAccount(this.options.database, accountId, (tx) => this.grantIn(tx, accountId, input, actor));
        this.balanceMoved(accountId);
        return grant;
      } catch (error) {
        if (sqlStateOf(error) === SqlState.foreignKeyViolation) throw new AppError('NOT_FOUND', 'Not found');
        throw error;
      }
    });
  }

  /**
   * A grant inside the caller's open transaction (say, a webhook event's, so that the
   * grant commits or rolls back with the event row: WH-4), which must act for this
   * account (forAccount) or as a system context. Same rules and audit entry as grant();
   * the audit entry is written last, so call it near the end of the transaction.
   */
  async grantIn(tx: Queryable, accountId: string, input: GrantInput, actor: Actor = { actorType: 'system', actorId: null }): Promise<GrantView> {
    const now = this.options.clock.now();
    if (!isWholeCredits(input.amount)) {
      throw validationError([{ field: 'amount', message: `must be a whole number of credits from 1 to ${MAX_CREDITS_PER_OPERATION}` }]);
    }
    if (!(GRANT_SOURCES as readonly string[]).includes(input.source)) {
      throw validationError([{ field: 'source', message: `must be one of ${GRANT_SOURCES.join(', ')}` }]);
    }
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= now.getTime())) {
      throw validationError([{ field: 'expiresAt', message: 'must be in the future' }]);
    }
    const reference = input.reference ?? null;
    if (reference !== null) requireText(reference, 'reference', 256);
    const row = await this.insertGrant(tx, accountId, input.source, input.amount, expiresAt, reference, now, false);
    if (!row) throw new Error('grant insert returned no row');
    await recordAudit(
      tx,
      {
        event: 'credits.granted',
        actorType: actor.actorType,
        actorId: actor.actorId,
        subjectType: 'credit_grant',
        subjectId: row.id,
        accountId,
        ip: actor.ip ?? null,
        metadata: { amount: row.amount, source: row.source, expiresAt: row.expires_at?.toISOString() ?? null, reference },
      },
      this.options.clock,
    );
    return grantView(row);
  }

  /**
   * CRD-7: the signup bonus, at most once per account (the partial unique index; a second
   * or concurrent call inserts nothing). `amount` 0 (SIGNUP_BONUS_CREDITS=0) turns it off.
   * Resolves to the new grant, or null when nothing was granted.
   */
  async signupBonus(accountId: string, amount: number): Promise<GrantView | null> {
    if (amount === 0) return null;
    return forAccount(this.options.database, accountId, (tx) => this.signupBonusIn(tx, accountId, amount));
  }

  /**
   * The signup bonus inside the caller's open transaction (say, the sign-up's own), which
   * must act for this account (forAccount) or as a system context. Idempotent like signupBonus.
   */
  async signupBonusIn(tx: Queryable, accountId: string, amount: number): Promise<GrantView | null> {
    if (amount === 0) return null;
    if (!isWholeCredits(amount)) throw new RangeError(`signup bonus must be 0 to ${MAX_CREDITS_PER_OPERATION} credits; got ${String(amount)}`);
    const now = this.options.clock.now();
    const row = await this.insertGrant(tx, accountId, 'signup_bonus', amount, null, null, now, true);
    if (!row) return null;
    await recordAudit(
      tx,
      {
        event: 'credits.granted',
        actorType: 'system',
        actorId: null,
        subjectType: 'credit_grant',
        subjectId: row.id,
        accountId,
        metadata: { amount, source: 'signup_bonus', expiresAt: null, reference: null },
      },
      this.options.clock,
    );
    return grantView(row);
  }

  /**
   * Holds credits for a job (CRD-2, CRD-4, CRD-8). A priced job type costs
   * units x credits per unit and takes `units` (integer >= 1) and no `amount`; an unpriced
   * one takes an explicit `amount` and no `units`. One transaction: the idempotency key is
   * claimed first (the reservation row itself), then the grants are locked, allocated and
   * decremented. On 402 everything rolls back, the key too, so a retry after a top-up works.
   */
  async reserve(accountId: string, input: ReserveInput): Promise<ReserveResult> {
    return this.measured(
      'reserve',
      async () => {
        const request = await this.prepareReserve(input);
        // Coalesced with concurrent reserves into one statement and one commit (credit_reserve_many).
        const outcome = await this.reserves.submit({ accountId, request });
        if ('error' in outcome) throw outcome.error;
        if (!outcome.replayed) this.balanceMoved(accountId);
        return outcome;
      },
      (result) => (result.replayed ? 'replayed' : 'ok'),
    );
  }

  /** Runs one operation and counts it (OPS-2). */
  async measured<T>(operation: string, work: () => Promise<T>, outcome: (result: T) => string = () => 'ok'): Promise<T> {
    try {
      const result = await work();
      this.options.operations?.inc({ operation, outcome: outcome(result) });
      return result;
    } catch (error) {
      this.options.operations?.inc({ operation, outcome: outcomeOf(error) });
      throw error;
    }
  }

  /**
   * Validates a reserve request and prices it (CRD-4): 400 naming the field for anything
   * that is not a sound request, before anything touches the database.
   */
  async prepareReserve(input: ReserveInput): Promise<PreparedReserve> {
    const jobId = requireText(input.jobId, 'jobId', 128);
    const jobType = requireText(input.jobType, 'jobType', 64, JOB_TYPE);
    const idempotencyKey = requireText(input.idempotencyKey, 'idempotencyKey', 128);
    const cost = await this.costOf(jobType, input.units, input.amount);
    const hash = reserveRequestHash({ jobId, jobType, units: input.units, amount: input.amount });
    return { jobId, jobType, idempotencyKey, cost, hash };
  }

  /** When a hold made now expires (CRD-6). */
  reservationExpiry(now: Date): Date {
    return new Date(now.getTime() + (this.options.reservationTtlMs ?? RESERVATION_TTL_MS));
  }

  async reserveIn(tx: Queryable, accountId: string, request: PreparedReserve, now: Date): Promise<ReserveResult> {
    const expiresAt = this.reservationExpiry(now);
    const { rows } = await tx.query<ReservationRow & { outcome: 'held' | 'replayed' }>(
      'SELECT outcome, id, job_id, job_type, amount, status, request_hash, expires_at FROM credit_reserve($1, $2, $3, $4, $5, $6, $7, $8, $9)',
      [accountId, newId('reservation'), request.jobId, request.jobType, request.cost, request.idempotencyKey, request.hash, now, expiresAt],
    );
    const row = rows[0];
    if (!row) throw new Error('credit_reserve answered no row');
    if (row.outcome === 'replayed' && row.request_hash !== request.hash) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used with a different request');
    }
    return { reservation: reservationView(row), replayed: row.outcome === 'replayed' };
  }

  /** Turns a hold into spend (CRD-2). Confirming again answers the same; a released reservation is 409. */
  async confirm(accountId: string, reservationId: string): Promise<ReservationView> {
    return this.measured('confirm', () => this.settle(accountId, reservationId, 'confirmed'));
  }

  /** Returns a hold to the grants it came from (CRD-2). Releasing again answers the same; a confirmed reservation is 409. */
  async release(accountId: string, reservationId: string): Promise<ReservationView> {
    const released = await this.measured('release', () => this.settle(accountId, reservationId, 'released'));
    this.balanceMoved(accountId);
    return released;
  }

  /** Credits left or came back to the account outside reserve/release/grant (the gate's hold). */
  balanceMoved(accountId: string): void {
    this.options.onBalanceMoved?.(accountId);
  }

  /** GET /api/credits: one consistent snapshot of the balance, what is held and the usable grants. */
  async balance(accountId: string): Promise<Balance> {
    const now = this.options.clock.now();
    return forAccount(
      this.options.database,
      accountId,
      async (tx) => {
        const { rows } = await tx.query<GrantRow>(
          `SELECT id, source, amount, remaining, expires_at, created_at FROM credit_grants
           WHERE account_id = $1 AND remaining > 0 AND (expires_at IS NULL OR expires_at > $2)`,
          [accountId, now],
        );
        const { rows: heldRows } = await tx.query<{ held: number }>(
          `SELECT coalesce(sum(amount), 0)::bigint AS held FROM credit_reservations WHERE account_id = $1 AND status = 'held'`,
          [accountId],
        );
        const ordered = [...rows].sort((a, b) =>
          spendingOrder({ id: a.id, remaining: a.remaining, expiresAt: a.expires_at, createdAt: a.created_at }, {
            id: b.id,
            remaining: b.remaining,
            expiresAt: b.expires_at,
            createdAt: b.created_at,
          }),
        );
        const balance = ordered.reduce((sum, grant) => sum + grant.remaining, 0);
        if (!Number.isSafeInteger(balance)) throw new RangeError('balance exceeds the safe integer range');
        return { balance, held: heldRows[0]?.held ?? 0, grants: ordered.map(grantView) };
      },
      { isolation: 'repeatable read' },
    );
  }

  /** GET /api/credits/ledger: every movement, newest first; `limit` clamped to 1..100. */
  async ledger(accountId: string, query: { readonly limit?: number; readonly cursor?: string }): Promise<LedgerPage> {
    const limit = clampPageLimit(query.limit);
    if (query.cursor !== undefined && !LEDGER_CURSOR.test(query.cursor)) {
      throw validationError([{ field: 'query.cursor', message: 'is not a valid cursor' }]);
    }
    const before = query.cursor ?? null;
    const { rows } = await forAccount(this.options.database, accountId, (tx) =>
      tx.query<{ id: string; kind: LedgerKind; amount: number; grant_id: string | null; reservation_id: string | null; created_at: Date }>(
        `SELECT id::text AS id, kind, amount, grant_id, reservation_id, created_at FROM credit_ledger
         WHERE account_id = $1 AND ($2::bigint IS NULL OR credit_ledger.id < $2::bigint)
         ORDER BY credit_ledger.id DESC LIMIT $3`,
        [accountId, before, limit + 1],
      ),
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      items: page.map((row) => ({
        id: row.id,
        kind: row.kind,
        amount: row.amount,
        grantId: row.grant_id,
        reservationId: row.reservation_id,
        createdAt: row.created_at.toISOString(),
      })),
      nextCursor: rows.length > limit && last ? last.id : null,
    };
  }

  /**
   * CRD-6, run by the credits.sweeper job (once per interval across instances): releases
   * every held reservation past its expiry, then writes off the remainder of every expired
   * grant. Each reservation is released in its own transaction through the same path as
   * POST .../release (row lock, amounts from the database), so a crash or a failure
   * leaves it held and the next run takes it again; a reservation confirmed in the
   * meantime is simply no longer held. Failures are logged with full context, never thrown.
   */
  async sweep(logger: SweepLogger, signal?: AbortSignal): Promise<SweepResult> {
    const now = this.options.clock.now();
    let released = 0;
    let failed = 0;
    const skip = new Set<string>();
    for (;;) {
      if (signal?.aborted) break;
      const { rows } = await asSystem(this.options.database, (tx) =>
        tx.query<{ id: string; account_id: string; expires_at: Date }>(
          `SELECT id, account_id, expires_at FROM credit_reservations
           WHERE status = 'held' AND expires_at <= $1 AND NOT (id = ANY($2::text[]))
           ORDER BY expires_at, id LIMIT $3`,
          [now, [...skip], SWEEP_BATCH_SIZE],
        ),
      );
      for (const row of rows) {
        if (signal?.aborted) break;
        try {
          await this.settle(row.account_id, row.id, 'released', { onlyIfExpiredAt: now });
          released += 1;
        } catch (error) {
          skip.add(row.id);
          if (error instanceof AppError && error.code === 'CONFLICT') continue; // confirmed meanwhile: nothing to release
          failed += 1;
          logger.error(
            { err: error, reservationId: row.id, accountId: row.account_id, expiresAt: row.expires_at.toISOString(), step: 'release' },
            'credit sweeper could not release an expired reservation; it is retried on the next run',
          );
        }
      }
      if (rows.length < SWEEP_BATCH_SIZE) break;
    }
    const expiry = await this.writeOffExpiredGrants(now, logger, signal);
    if (released > 0) this.options.operations?.inc({ operation: 'sweep_release', outcome: 'ok' });
    if (failed > 0) this.options.operations?.inc({ operation: 'sweep_release', outcome: 'error' });
    if (expiry.grants > 0) this.options.operations?.inc({ operation: 'expiry', outcome: 'ok' });
    if (expiry.failed > 0) this.options.operations?.inc({ operation: 'expiry', outcome: 'error' });
    return { released, failed: failed + expiry.failed, expiredGrants: expiry.grants, writtenOff: expiry.credits };
  }

  /**
   * Writes off what is left of grants that have expired (ledger 'expiry', remaining to 0),
   * one account per transaction under the grants' row locks. Credits of an expired grant
   * that are still held are written off later, when their reservation is released.
   */
  private async writeOffExpiredGrants(now: Date, logger: SweepLogger, signal?: AbortSignal): Promise<{ grants: number; credits: number; failed: number }> {
    let grants = 0;
    let credits = 0;
    let failed = 0;
    const skip = new Set<string>();
    for (;;) {
      if (signal?.aborted) break;
      const { rows } = await asSystem(this.options.database, (tx) =>
        tx.query<{ account_id: string }>(
          `SELECT DISTINCT account_id FROM credit_grants
           WHERE remaining > 0 AND expires_at <= $1 AND NOT (account_id = ANY($2::text[]))
           LIMIT $3`,
          [now, [...skip], SWEEP_BATCH_SIZE],
        ),
      );
      for (const { account_id: accountId } of rows) {
        if (signal?.aborted) break;
        skip.add(accountId);
        try {
          const written = await forAccount(this.options.database, accountId, async (tx) => {
            const { rows: expired } = await tx.query<{ id: string; remaining: number }>(
              `SELECT id, remaining FROM credit_grants
               WHERE account_id = $1 AND remaining > 0 AND expires_at <= $2 ORDER BY id FOR NO KEY UPDATE`,
              [accountId, now],
            );
            if (expired.length === 0) return { grants: 0, credits: 0 };
            await tx.query('UPDATE credit_grants SET remaining = 0 WHERE id = ANY($1::text[]) AND account_id = $2', [expired.map((g) => g.id), accountId]);
            await writeLedger(tx, accountId, 'expiry', expired.map((g) => ({ grantId: g.id, amount: -g.remaining })), null, now);
            return { grants: expired.length, credits: expired.reduce((sum, g) => sum + g.remaining, 0) };
          });
          grants += written.grants;
          credits += written.credits;
        } catch (error) {
          failed += 1;
          logger.error({ err: error, accountId, step: 'expire-grants' }, 'credit sweeper could not write off expired grants; retried on the next run');
        }
      }
      if (rows.length < SWEEP_BATCH_SIZE) break;
    }
    return { grants, credits, failed };
  }

  private async costOf(jobType: string, units: unknown, amount: unknown): Promise<number> {
    const price = await this.options.pricing.jobPrice(jobType);
    if (price) {
      if (amount !== undefined) {
        throw validationError([{ field: 'amount', message: `must not be given for job type ${jobType}: its cost comes from the price list (send units)` }]);
      }
      if (!isWholeCredits(units)) {
        throw validationError([{ field: 'units', message: `must be a whole number from 1 to ${MAX_CREDITS_PER_OPERATION} (${price.unit} count)` }]);
      }
      const cost = units * price.creditsPerUnit;
      if (!isWholeCredits(cost)) {
        throw validationError([{ field: 'units', message: `would cost more than ${MAX_CREDITS_PER_OPERATION} credits` }]);
      }
      return cost;
    }
    if (units !== undefined) {
      throw validationError([{ field: 'units', message: `job type ${jobType} has no price: send amount instead` }]);
    }
    if (!isWholeCredits(amount)) {
      throw validationError([{ field: 'amount', message: `must be a whole number of credits from 1 to ${MAX_CREDITS_PER_OPERATION}` }]);
    }
    return amount;
  }

  private async insertGrant(
    tx: Queryable,
    accountId: string,
    source: GrantSource,
    amount: number,
    expiresAt: Date | null,
    reference: string | null,
    now: Date,
    signupBonus: boolean,
  ): Promise<GrantRow | undefined> {
    const { rows } = await tx.query<GrantRow>(
      `INSERT INTO credit_grants (id, account_id, source, amount, remaining, expires_at, reference, created_at)
       VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
       ${signupBonus ? `ON CONFLICT (account_id) WHERE source = 'signup_bonus' DO NOTHING` : ''}
       RETURNING id, source, amount, remaining, expires_at, created_at`,
      [newId('grant'), accountId, source, amount, expiresAt, reference, now],
    );
    const row = rows[0];
    if (row) await writeLedger(tx, accountId, 'grant', [{ grantId: row.id, amount }], null, now);
    return row;
  }

  /**
   * Confirm or release in one statement (credit_settle, migration 0012), under the
   * reservation's row lock (CRD-2, CRD-3): found by id AND account, so a foreign or unknown
   * one is 404 and nothing changes; amounts come from the database only.
   *
   * A release returns each allocation to the grant it came from, even when that grant has
   * expired in the meantime: the credits are then not spendable (balance counts only
   * unexpired grants) and the expiry write-off takes them later, so the ledger still adds up.
   * A held reservation past its expiresAt can still be confirmed until the sweeper releases
   * it; the sweeper passes `sweep` so that the expiry is re-checked under the lock.
   */
  private async settle(
    accountId: string,
    reservationId: string,
    target: 'confirmed' | 'released',
    sweep?: { readonly onlyIfExpiredAt: Date },
  ): Promise<ReservationView> {
    // The sweeper's re-check of the expiry under the lock exists in the single statement only.
    const row = sweep ? await this.settleOne({ accountId, reservationId, target }, sweep.onlyIfExpiredAt) : await this.settlements.submit({ accountId, reservationId, target });
    return settledView(row, target);
  }

  private async settleOne(item: SettleItem, onlyIfExpiredAt: Date | null = null): Promise<SettleRow> {
    const { rows } = await this.options.database.query<SettleRow>(
      'SELECT outcome, id, job_id, job_type, amount, status, expires_at FROM credit_settle($1, $2, $3, $4, $5)',
      [item.accountId, item.reservationId, item.target, this.options.clock.now(), onlyIfExpiredAt],
    );
    const row = rows[0];
    if (!row) throw new Error('credit_settle answered no row');
    return row;
  }

  /**
   * A batch of reserves in one statement (credit_reserve_many, migrations 0012 and 0024):
   * one round trip and one commit for all of them. If the statement fails, each reserve is retried on
   * its own (credit_reserve), so one bad request fails alone.
   */
  private async reserveMany(items: readonly ReserveItem[]): Promise<ReserveOutcome[]> {
    const now = this.options.clock.now();
    const expiresAt = this.reservationExpiry(now);
    try {
      const { rows } = await this.options.database.query<ReservationRow & { position_in_batch: number; outcome: 'held' | 'replayed' | 'insufficient' }>(
        `SELECT position_in_batch, outcome, id, job_id, job_type, amount, status, request_hash, expires_at
         FROM credit_reserve_many($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8, $9)`,
        [
          items.map((item) => item.accountId),
          items.map(() => newId('reservation')),
          items.map((item) => item.request.jobId),
          items.map((item) => item.request.jobType),
          items.map((item) => item.request.cost),
          items.map((item) => item.request.idempotencyKey),
          items.map((item) => item.request.hash),
          now,
          expiresAt,
        ],
      );
      const outcomes: ReserveOutcome[] = [];
      for (const row of rows) {
        const item = items[row.position_in_batch - 1];
        if (!item) throw new Error('credit_reserve_many answered an unknown position');
        outcomes[row.position_in_batch - 1] = reserveOutcome(row, item.request);
      }
      if (outcomes.length !== items.length || outcomes.includes(undefined as unknown as ReserveOutcome)) throw new Error('credit_reserve_many answered an incomplete batch');
      return outcomes;
    } catch {
      // Also for a batch of one: a key claimed concurrently fails the batch (BW409, migration
      // 0024), and credit_reserve answers it as replayed. Any other error repeats there.
      const outcomes: ReserveOutcome[] = [];
      for (const item of items) {
        try {
          outcomes.push(await this.reserveIn(this.options.database, item.accountId, item.request, this.options.clock.now()));
        } catch (itemError) {
          outcomes.push({ error: sqlStateOf(itemError) === SqlState.insufficientCredits ? new InsufficientCreditsError() : itemError });
        }
      }
      return outcomes;
    }
  }

  /** A batch of confirms and releases in one statement (credit_settle_many); on failure, one by one. */
  private async settleMany(items: readonly SettleItem[]): Promise<SettleRow[]> {
    try {
      const { rows } = await this.options.database.query<SettleRow & { position_in_batch: number }>(
        `SELECT position_in_batch, outcome, id, job_id, job_type, amount, status, expires_at
         FROM credit_settle_many($1::text[], $2::text[], $3::text[], $4)`,
        [items.map((item) => item.accountId), items.map((item) => item.reservationId), items.map((item) => item.target), this.options.clock.now()],
      );
      const answers: SettleRow[] = [];
      for (const row of rows) answers[row.position_in_batch - 1] = row;
      if (answers.length !== items.length || answers.includes(undefined as unknown as SettleRow)) throw new Error('credit_settle_many answered an incomplete batch');
      return answers;
    } catch (error) {
      if (items.length === 1) throw error;
      const answers: SettleRow[] = [];
      for (const item of items) answers.push(await this.settleOne(item).catch((itemError: unknown) => ({ outcome: 'error', error: itemError }) as unknown as SettleRow));
      return answers;
    }
  }
}

/** One reserve waiting for its batch. */
interface ReserveItem {
  readonly accountId: string;
  readonly request: PreparedReserve;
}

type ReserveOutcome = ReserveResult | { readonly error: unknown };

/** One confirm or release waiting for its batch. */
interface SettleItem {
  readonly accountId: string;
  readonly reservationId: string;
  readonly target: 'confirmed' | 'released';
}

type SettleRow = Omit<ReservationRow, 'request_hash'> & { outcome: string; error?: unknown };

/**
 * Batches of at most this many, one in flight per instance and kind (keyed by account, so
 * that a larger maxConcurrent would still run one batch at a time per account). Measured
 * on 1,000 accounts (bench/credits.mjs): 1,750 pairs/s with 4 batches in flight, 2,000 with
 * 2, 2,250 with 1: fewer, larger batches cost PostgreSQL less per item (one commit, one
 * pass of each statement), and a batch only ever waits for short transactions on its rows.
 */
const BATCH_LIMITS = { maxBatch: 200, maxConcurrent: 1 } as const;

function reserveOutcome(row: ReservationRow & { outcome: 'held' | 'replayed' | 'insufficient' }, request: PreparedReserve): ReserveOutcome {
  if (row.outcome === 'insufficient') return { error: new InsufficientCreditsError() };
  if (row.outcome === 'replayed' && row.request_hash !== request.hash) {
    return { error: new AppError('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used with a different request') };
  }
  return { reservation: reservationView(row), replayed: row.outcome === 'replayed' };
}

/** A settle row as the answer to one confirm or release: the view, or the error it stands for. */
function settledView(row: SettleRow, target: 'confirmed' | 'released'): ReservationView {
  switch (row.outcome) {
    case 'settled':
    case 'unchanged':
      return reservationView(row);
    case 'conflict':
      throw new AppError('CONFLICT', target === 'confirmed' ? 'The reservation was released' : 'The reservation was confirmed');
    case 'not_expired':
      throw new AppError('CONFLICT', 'The reservation has not expired');
    case 'error':
      throw row.error;
    default:
      throw new AppError('NOT_FOUND', 'Not found');
  }
}
