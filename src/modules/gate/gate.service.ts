import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { InsufficientCreditsError } from '../credits/credits.errors.js';
import type { CreditsService, ReservationView, ReserveInput } from '../credits/credits.service.js';
import type { EntitlementAnswer, EntitlementsService } from '../entitlements/entitlements.service.js';

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

/** A denial found inside the gate's transaction: thrown to roll everything back, then answered. */
class GateDenial extends Error {
  constructor(
    readonly reason: GateReason,
    readonly entitlement: EntitlementAnswer,
  ) {
    super(reason);
  }
}

/** An unknown feature, a disabled boolean or a limit of 0 is not part of the plan; a used-up limit is reached. */
export function denialReason(answer: EntitlementAnswer): GateReason {
  if (answer.kind === null || answer.kind === 'boolean' || answer.limit === 0) return 'NOT_ENTITLED';
  return 'LIMIT_REACHED';
}

/**
 * The gate (issue 5 item 7): the hot path of a paid action in one call. In ONE transaction
 * acting for the account: claim the reservation's idempotency key, check the entitlement
 * (recording `track` units only if they fit), then hold the credits. Any denial rolls the
 * whole transaction back, so a refused gate changes nothing: at the limit no credits are
 * held, with credits short no usage is recorded.
 *
 * Lock order, the same in every path so that nothing deadlocks: the reservation's key,
 * then the usage counter row, then the account's grants in id order (plain reserves take
 * only the key and the grants; tracked checks only the counter).
 *
 * A retry with the same credits.idempotencyKey answers the first reservation and records
 * nothing again (the key is claimed before anything is tracked).
 */
export class GateService {
  constructor(private readonly options: GateServiceOptions) {}

  async pass(accountId: string, input: GateInput): Promise<GateAnswer> {
    const { entitlements, credits } = this.options;
    // 400s (bad amounts, unknown shapes) before any transaction.
    const request = input.credits ? await credits.prepareReserve(input.credits) : undefined;
    const feature = await entitlements.featureOf(accountId, input.feature);
    const now = this.options.clock.now();
    try {
      return await forAccount(this.options.database, accountId, async (tx): Promise<GateAnswer> => {
        const claim = request ? await credits.claimReservation(tx, accountId, request, now) : undefined;
        if (claim && 'replayed' in claim) {
          const entitlement = await entitlements.answer(tx, accountId, input.feature, feature, undefined, now);
          return { allowed: true, entitlement, reservation: claim.replayed };
        }
        const entitlement = await entitlements.answer(tx, accountId, input.feature, feature, input.track, now);
        if (!entitlement.allowed) throw new GateDenial(denialReason(entitlement), entitlement);
        if (!request || !claim) return { allowed: true, entitlement };
        const reservation = await credits.holdReservation(tx, accountId, request, claim, now);
        return { allowed: true, entitlement, reservation };
      });
    } catch (error) {
      if (error instanceof GateDenial) return { allowed: false, reason: error.reason, entitlement: error.entitlement };
      if (error instanceof InsufficientCreditsError) {
        // Rolled back, the tracked units too: report the entitlement as it now stands.
        const entitlement = await forAccount(this.options.database, accountId, (tx) =>
          entitlements.answer(tx, accountId, input.feature, feature, undefined, now),
        );
        return { allowed: false, reason: 'INSUFFICIENT_CREDITS', entitlement };
      }
      throw error;
    }
  }
}
