import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import { sqlStateOf, SqlState, type Database } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import { reservationView, type CreditsService, type PreparedReserve, type ReservationRow, type ReservationView, type ReserveInput } from '../credits/credits.service.js';
import { countedAnswer, countedPeriod, isCounted, type CountedFeature, type EntitlementAnswer, type EntitlementsService } from '../entitlements/entitlements.service.js';

/** Why a gate said no. RATE_LIMITED is decided by the route, before the service runs. */
export type GateReason = 'RATE_LIMITED' | 'NOT_ENTITLED' | 'LIMIT_REACHED' | 'INSUFFICIENT_CREDITS';

export interface GateInput {
  readonly feature: string;
  readonly track?: number;
  readonly credits?: ReserveInput;
}

export interface GateAnswer {
  readonly allowed: boolean;
  readonly reason?: GateReason;
  /** The entitlement as it stands after this call (null only when rate limited: nothing was read). */
  readonly entitlement: EntitlementAnswer | null;
  readonly reservation?: ReservationView;
}

export interface GateServiceOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly entitlements: EntitlementsService;
  readonly credits: CreditsService;
}

/** An unknown feature, a disabled boolean or a limit of 0 is not part of the plan; a used-up limit is reached. */
export function denialReason(answer: EntitlementAnswer): GateReason {
  if (answer.kind === null || answer.kind === 'boolean' || answer.limit === 0) return 'NOT_ENTITLED';
  return 'LIMIT_REACHED';
}

/** gate_pass's row: the outcome, the counter, and the reservation's columns (null when there is none). */
type GateRow = { outcome: 'allowed' | 'limit' | 'insufficient' | 'replayed'; applied: boolean | null; used: number | null } & {
  [K in keyof ReservationRow]: ReservationRow[K] | null;
};

/**
 * The gate (issue 5 item 7): the hot path of a paid action in one call, all or nothing.
 *
 * For a counted feature (static or metered) it is ONE statement, gate_pass (migration
 * 0013): look up a retried idempotency key, check and track the entitlement, reserve the
 * credits; a denial after the track rolls the track back. Locks are held only while
 * PostgreSQL runs it. (Coalescing gates into one statement per batch was tried and
 * measured slower: every gate needs its own subtransaction for all-or-nothing, and more
 * than 64 of them in one transaction overflow PostgreSQL's subtransaction cache.) Boolean, unknown and concurrency features record nothing, so their
 * gate is a read of the entitlement followed by the reserve's one statement.
 *
 * A retry with the same credits.idempotencyKey answers the first reservation and records
 * nothing again (also when two attempts race: the loser's track is rolled back).
 */
export class GateService {
  constructor(private readonly options: GateServiceOptions) {}

  async pass(accountId: string, input: GateInput): Promise<GateAnswer> {
    const answer = await this.options.credits.measured('gate', () => this.passNow(accountId, input), (result) => (result.allowed ? 'ok' : (result.reason ?? 'denied').toLowerCase()));
    if (answer.reservation) this.options.credits.balanceMoved(accountId);
    return answer;
  }

  private async passNow(accountId: string, input: GateInput): Promise<GateAnswer> {
    const { entitlements, credits } = this.options;
    // 400s (bad amounts, unknown shapes) before anything touches the database.
    const request = input.credits ? await credits.prepareReserve(input.credits) : undefined;
    const feature = await entitlements.featureOf(accountId, input.feature);
    const now = this.options.clock.now();
    if (isCounted(feature)) return this.passCounted(accountId, input, feature, request, now);

    const entitlement = await forAccount(this.options.database, accountId, (tx) => entitlements.answer(tx, accountId, input.feature, feature, undefined, now));
    if (!entitlement.allowed) return { allowed: false, reason: denialReason(entitlement), entitlement };
    if (!request) return { allowed: true, entitlement };
    try {
      const { reservation } = await credits.reserveIn(this.options.database, accountId, request, now);
      return { allowed: true, entitlement, reservation };
    } catch (error) {
      if (sqlStateOf(error) === SqlState.insufficientCredits) return { allowed: false, reason: 'INSUFFICIENT_CREDITS', entitlement };
      throw error;
    }
  }

  private async passCounted(
    accountId: string,
    input: GateInput,
    feature: CountedFeature,
    request: PreparedReserve | undefined,
    now: Date,
  ): Promise<GateAnswer> {
    const { periodStart, resetsAt } = countedPeriod(feature, now);
    const { rows } = await this.options.database.query<GateRow>(
      `SELECT outcome, applied, used, id, job_id, job_type, amount, status, request_hash, expires_at
       FROM gate_pass($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
        accountId,
        input.feature,
        periodStart,
        input.track ?? null,
        feature.limit,
        now,
        request ? newId('reservation') : null,
        request?.jobId ?? null,
        request?.jobType ?? null,
        request?.cost ?? null,
        request?.idempotencyKey ?? null,
        request?.hash ?? null,
        request ? this.options.credits.reservationExpiry(now) : null,
      ],
    );
    const row = rows[0];
    if (!row) throw new Error('gate_pass answered no row');
    const answerWith = (track: number | undefined) => countedAnswer(input.feature, feature, resetsAt, track, row.applied ?? false, row.used ?? 0);
    switch (row.outcome) {
      case 'allowed': {
        const entitlement = answerWith(input.track);
        return row.id ? { allowed: true, entitlement, reservation: reservationView(row as ReservationRow) } : { allowed: true, entitlement };
      }
      case 'limit': {
        const entitlement = answerWith(input.track);
        return { allowed: false, reason: denialReason(entitlement), entitlement };
      }
      case 'insufficient':
        return { allowed: false, reason: 'INSUFFICIENT_CREDITS', entitlement: answerWith(undefined) };
      case 'replayed': {
        if (row.request_hash !== request?.hash) throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used with a different request');
        const entitlement = await this.options.entitlements.check(accountId, { feature: input.feature });
        return { allowed: true, entitlement, reservation: reservationView(row as ReservationRow) };
      }
    }
  }

}
