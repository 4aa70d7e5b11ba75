import { createHash } from 'node:crypto';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import type { Feature, FeatureKind, PlanCataloguePort } from '../plans/plan-features.js';
import { periodOf, STATIC_PERIOD_START } from './periods.js';

export interface EntitlementAnswer {
  allowed: boolean;
  feature: string;
  /** null for a feature the plan does not know (denied, TIER-2). */
  kind: FeatureKind | null;
  /** null means unlimited. */
  limit: number | null;
  used: number;
  remaining: number | null;
  resetsAt?: string;
}

export interface LeaseAnswer {
  readonly lease?: { id: string; expiresAt: string };
  readonly denied?: EntitlementAnswer;
}

export interface EntitlementsOptions {
  readonly database: Database;
  readonly clock: Clock;
  readonly catalogue: PlanCataloguePort;
  /** The plan an account is on, as the catalogue knows it (exempt accounts get theirs). */
  readonly planIdOf: (accountId: string) => Promise<string>;
}

export const DEFAULT_LEASE_TTL_SECONDS = 300;

function remainingOf(limit: number | null, used: number): number | null {
  return limit === null ? null : Math.max(0, limit - used);
}

function requestHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

/**
 * The check-before-work API (TIER-3) and concurrency leases (TIER-4). Counters are exact:
 * a tracked check adds to the period's counter with one conditional upsert that only
 * applies while the result stays within the limit, so concurrent callers can never both
 * take the last unit. The plan comes from the cached catalogue; the counters never do.
 */
export class EntitlementsService {
  constructor(private readonly options: EntitlementsOptions) {}

  /** The feature as the account's plan defines it; undefined when the plan does not name it (denied, TIER-2). */
  async featureOf(accountId: string, name: string): Promise<Feature | undefined> {
    const plan = await this.options.catalogue.planFor(await this.options.planIdOf(accountId));
    return plan.features[name];
  }

  async check(accountId: string, input: { feature: string; track?: number; idempotencyKey?: string }): Promise<EntitlementAnswer> {
    const feature = await this.featureOf(accountId, input.feature);
    const now = this.options.clock.now();
    const idempotent = input.idempotencyKey !== undefined && input.track !== undefined;
    // The hot path needs no transaction: a counted feature is one statement (one round
    // trip) that sets the account context itself (entitlement_count, migration 0008), and
    // boolean or unknown features need no database at all.
    if (!idempotent && feature?.kind !== 'concurrency') {
      return this.answer(this.options.database, accountId, input.feature, feature, input.track, now);
    }
    return forAccount(this.options.database, accountId, async (tx) => {
      if (idempotent) {
        const replay = await this.claimIdempotencyKey(tx, accountId, input, now);
        if (replay) return replay;
        const answer = await this.answer(tx, accountId, input.feature, feature, input.track, now);
        await tx.query('UPDATE entitlement_tracks SET response = $3 WHERE account_id = $1 AND idempotency_key = $2', [
          accountId,
          input.idempotencyKey,
          JSON.stringify(answer),
        ]);
        return answer;
      }
      return this.answer(tx, accountId, input.feature, feature, input.track, now);
    });
  }

  async acquireLease(accountId: string, input: { feature: string; ttlSeconds?: number }): Promise<LeaseAnswer> {
    const feature = await this.featureOf(accountId, input.feature);
    const now = this.options.clock.now();
    if (!feature || feature.kind !== 'concurrency') {
      const denied = await forAccount(this.options.database, accountId, (tx) => this.answer(tx, accountId, input.feature, feature, undefined, now));
      return { denied: { ...denied, allowed: false } };
    }
    const ttlSeconds = input.ttlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    return forAccount(this.options.database, accountId, async (tx) => {
      // One acquirer at a time per account and feature: count and insert under the lock.
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [accountId, input.feature]);
      const used = await this.activeLeases(tx, accountId, input.feature, now);
      if (feature.limit !== null && used >= feature.limit) {
        return { denied: { allowed: false, feature: input.feature, kind: 'concurrency', limit: feature.limit, used, remaining: 0 } };
      }
      const id = newId('lease');
      const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
      await tx.query('INSERT INTO leases (id, account_id, feature, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)', [
        id,
        accountId,
        input.feature,
        now,
        expiresAt,
      ]);
      return { lease: { id, expiresAt: expiresAt.toISOString() } };
    });
  }

  /** Releases a lease of this account; a foreign or unknown lease is 404 (ACC-2). Releasing twice is harmless. */
  async releaseLease(accountId: string, leaseId: string): Promise<void> {
    const now = this.options.clock.now();
    const found = await forAccount(this.options.database, accountId, async (tx) => {
      const { rows } = await tx.query<{ released_at: Date | null }>(
        'SELECT released_at FROM leases WHERE id = $1 AND account_id = $2 FOR UPDATE',
        [leaseId, accountId],
      );
      const lease = rows[0];
      if (!lease) return false;
      if (!lease.released_at) await tx.query('UPDATE leases SET released_at = $2 WHERE id = $1', [leaseId, now]);
      return true;
    });
    if (!found) throw new AppError('NOT_FOUND', 'Not found');
  }

  private async claimIdempotencyKey(
    tx: Queryable,
    accountId: string,
    input: { feature: string; track?: number; idempotencyKey?: string },
    now: Date,
  ): Promise<EntitlementAnswer | undefined> {
    const hash = requestHash({ feature: input.feature, track: input.track });
    // A concurrent retry with the same key waits here for the first to commit, then sees its answer.
    const inserted = await tx.query(
      `INSERT INTO entitlement_tracks (account_id, idempotency_key, request_hash, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING 1`,
      [accountId, input.idempotencyKey, hash, now],
    );
    if (inserted.rowCount > 0) return undefined;
    const { rows } = await tx.query<{ request_hash: string; response: EntitlementAnswer | null }>(
      'SELECT request_hash, response FROM entitlement_tracks WHERE account_id = $1 AND idempotency_key = $2',
      [accountId, input.idempotencyKey],
    );
    const previous = rows[0];
    if (!previous || previous.request_hash !== hash) {
      throw new AppError('IDEMPOTENCY_KEY_REUSED', 'This idempotency key was used with a different request');
    }
    if (!previous.response) throw new AppError('CONFLICT', 'A request with this idempotency key is still running');
    return previous.response;
  }

  /**
   * The answer for one feature inside the caller's transaction (or on the database for a
   * single statement), tracking `track` units of a counted feature only if they fit. The
   * gate uses it to check and track in the same transaction as its credit reservation.
   */
  async answer(
    tx: Queryable,
    accountId: string,
    name: string,
    feature: Feature | undefined,
    track: number | undefined,
    now: Date,
  ): Promise<EntitlementAnswer> {
    if (!feature) return { allowed: false, feature: name, kind: null, limit: 0, used: 0, remaining: 0 };
    switch (feature.kind) {
      case 'boolean':
        return { allowed: feature.enabled, feature: name, kind: 'boolean', limit: null, used: 0, remaining: null };
      case 'concurrency': {
        const used = await this.activeLeases(tx, accountId, name, now);
        const allowed = feature.limit === null || used < feature.limit;
        return { allowed, feature: name, kind: 'concurrency', limit: feature.limit, used, remaining: remainingOf(feature.limit, used) };
      }
      case 'static':
        return this.counted(tx, accountId, name, feature.kind, feature.limit, STATIC_PERIOD_START, undefined, track, now);
      case 'metered': {
        const period = periodOf(feature.period, now);
        return this.counted(tx, accountId, name, feature.kind, feature.limit, period.start, period.resetsAt, track, now);
      }
    }
  }

  private async counted(
    tx: Queryable,
    accountId: string,
    name: string,
    kind: 'static' | 'metered',
    limit: number | null,
    periodStart: Date,
    resetsAt: Date | undefined,
    track: number | undefined,
    now: Date,
  ): Promise<EntitlementAnswer> {
    const base = { feature: name, kind, limit, ...(resetsAt ? { resetsAt: resetsAt.toISOString() } : {}) };
    // entitlement_count adds `track` only if the total stays within the limit; the row lock
    // taken by its upsert makes concurrent callers apply one after another against the
    // latest total. Without `track` it only reads.
    const { rows } = await tx.query<{ applied: boolean; used: number }>(
      'SELECT applied, used FROM entitlement_count($1, $2, $3, $4, $5, $6)',
      [accountId, name, periodStart, track ?? null, limit, now],
    );
    const applied = rows[0]?.applied ?? false;
    const used = rows[0]?.used ?? 0;
    // A tracked check is allowed if it was recorded; an untracked one asks whether one more unit would fit.
    const allowed = track === undefined ? limit === null || used < limit : applied;
    return { ...base, allowed, used, remaining: remainingOf(limit, used) };
  }

  private async activeLeases(tx: Queryable, accountId: string, feature: string, now: Date): Promise<number> {
    const { rows } = await tx.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM leases WHERE account_id = $1 AND feature = $2 AND released_at IS NULL AND expires_at > $3',
      [accountId, feature, now],
    );
    return rows[0]?.count ?? 0;
  }
}
