import { createHash } from 'node:crypto';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database, Queryable } from '../../platform/database/database.js';
import { newId } from '../../platform/ids.js';
import type { Feature, FeatureKind, Plan, PlanCataloguePort } from '../plans/plan-features.js';
import { MicroBatcher } from '../../platform/batching/micro-batcher.js';
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
  /** The account's plan when it is cached right now (no promise), else undefined; optional. */
  readonly cachedPlanOf?: (accountId: string) => Plan | undefined;
}

export const DEFAULT_LEASE_TTL_SECONDS = 300;

function remainingOf(limit: number | null, used: number): number | null {
  return limit === null ? null : Math.max(0, limit - used);
}

function requestHash(body: unknown): string {
  return createHash('sha256').update(JSON.stringify(body)).digest('hex');
}

export type CountedFeature = Extract<Feature, { kind: 'static' | 'metered' }>;

export function isCounted(feature: Feature | undefined): feature is CountedFeature {
  return feature?.kind === 'static' || feature?.kind === 'metered';
}

interface CounterKey {
  readonly accountId: string;
  readonly feature: string;
  readonly periodStart: Date;
}

interface TrackItem extends CounterKey {
  readonly limit: number | null;
  readonly track: number;
  readonly now: Date;
}

type TrackOutcome = { readonly applied: boolean; readonly used: number } | { readonly error: unknown };

/** Batches of at most this many requests, at most this many batches of each kind in flight per instance. */
const BATCH_LIMITS = { maxBatch: 500, maxConcurrent: 4 } as const;

/** Metered features count from the start of their UTC day or month; static limits from the epoch (they never reset). */
export function countedPeriod(feature: CountedFeature, now: Date): { periodStart: Date; resetsAt: string | undefined } {
  if (feature.kind === 'static') return { periodStart: STATIC_PERIOD_START, resetsAt: undefined };
  const period = periodOf(feature.period, now);
  return { periodStart: period.start, resetsAt: period.resetsAtIso };
}

export function countedAnswer(
  name: string,
  feature: CountedFeature,
  /** When the period ends (ISO 8601), for metered features. */
  resetsAt: string | undefined,
  track: number | undefined,
  applied: boolean,
  used: number,
): EntitlementAnswer {
  const { limit } = feature;
  // A tracked check is allowed if it was recorded; an untracked one asks whether one more unit would fit.
  const allowed = track === undefined ? limit === null || used < limit : applied;
  return {
    feature: name,
    kind: feature.kind,
    limit,
    ...(resetsAt ? { resetsAt } : {}),
    allowed,
    used,
    remaining: remainingOf(limit, used),
  };
}

/**
 * The check-before-work API (TIER-3) and concurrency leases (TIER-4). Counters are exact:
 * a tracked check adds to the period's counter with one conditional upsert that only
 * applies while the result stays within the limit, so concurrent callers can never both
 * take the last unit. The plan comes from the cached catalogue; the counters never do.
 */
export class EntitlementsService {
  private readonly reads: MicroBatcher<CounterKey, number>;
  private readonly tracks: MicroBatcher<TrackItem, TrackOutcome>;

  constructor(private readonly options: EntitlementsOptions) {
    this.reads = new MicroBatcher((keys) => this.readMany(keys), BATCH_LIMITS);
    this.tracks = new MicroBatcher((items) => this.trackMany(items), BATCH_LIMITS);
  }

  /** The feature as the account's plan defines it; undefined when the plan does not name it (denied, TIER-2). */
  async featureOf(accountId: string, name: string): Promise<Feature | undefined> {
    const plan = await this.options.catalogue.planFor(await this.options.planIdOf(accountId));
    return plan.features[name];
  }

  async check(accountId: string, input: { feature: string; track?: number; idempotencyKey?: string }): Promise<EntitlementAnswer> {
    const cachedPlan = this.options.cachedPlanOf?.(accountId);
    const feature = cachedPlan ? cachedPlan.features[input.feature] : await this.featureOf(accountId, input.feature);
    const now = this.options.clock.now();
    const idempotent = input.idempotencyKey !== undefined && input.track !== undefined;
    // The hot path needs no transaction: a counted feature is one statement (one round
    // trip) that sets the account context itself (entitlement_count, migration 0008), and
    // boolean or unknown features need no database at all.
    if (!idempotent && isCounted(feature)) {
      return this.countedBatched(accountId, input.feature, feature, input.track, now);
    }
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
      case 'metered':
        return this.counted(tx, accountId, name, feature, track, now);
    }
  }

  /**
   * A counted feature inside a transaction (or as one statement on the database).
   * entitlement_count adds `track` only if the total stays within the limit; the row lock
   * taken by its upsert makes concurrent callers apply one after another against the
   * latest total. Without `track` it only reads.
   */
  private async counted(
    tx: Queryable,
    accountId: string,
    name: string,
    feature: CountedFeature,
    track: number | undefined,
    now: Date,
  ): Promise<EntitlementAnswer> {
    const { periodStart, resetsAt } = countedPeriod(feature, now);
    const { rows } = await tx.query<{ applied: boolean; used: number }>(
      'SELECT applied, used FROM entitlement_count($1, $2, $3, $4, $5, $6)',
      [accountId, name, periodStart, track ?? null, feature.limit, now],
    );
    return countedAnswer(name, feature, resetsAt, track, rows[0]?.applied ?? false, rows[0]?.used ?? 0);
  }

  /**
   * The hot path of a counted feature outside any transaction: concurrent checks are
   * coalesced into one statement per batch (entitlement_read_many / entitlement_track_many,
   * migration 0011), so one round trip and one commit serve many requests. The answers are
   * exactly those of `counted`: every batch starts after its requests arrived, and tracks
   * apply one after another under the counter row's lock.
   */
  private async countedBatched(accountId: string, name: string, feature: CountedFeature, track: number | undefined, now: Date): Promise<EntitlementAnswer> {
    const { periodStart, resetsAt } = countedPeriod(feature, now);
    if (track === undefined) {
      const used = await this.reads.submit({ accountId, feature: name, periodStart });
      return countedAnswer(name, feature, resetsAt, undefined, false, used);
    }
    const outcome = await this.tracks.submit({ accountId, feature: name, periodStart, limit: feature.limit, track, now });
    if ('error' in outcome) throw outcome.error;
    return countedAnswer(name, feature, resetsAt, track, outcome.applied, outcome.used);
  }

  private async readMany(keys: readonly CounterKey[]): Promise<number[]> {
    // Requests for the same counter in one batch share one lookup.
    const unique = new Map<string, number>();
    const accounts: string[] = [];
    const features: string[] = [];
    const periods: Date[] = [];
    const positions = keys.map((key) => {
      const id = `${key.accountId}\u0000${key.feature}\u0000${key.periodStart.getTime()}`;
      let position = unique.get(id);
      if (position === undefined) {
        position = accounts.length;
        unique.set(id, position);
        accounts.push(key.accountId);
        features.push(key.feature);
        periods.push(key.periodStart);
      }
      return position;
    });
    const { rows } = await this.options.database.query<{ used: number }>(
      'SELECT used FROM entitlement_read_many($1::text[], $2::text[], $3::timestamptz[])',
      [accounts, features, periods],
    );
    return positions.map((position) => rows[position]?.used ?? 0);
  }

  private async trackMany(items: readonly TrackItem[]): Promise<TrackOutcome[]> {
    try {
      const { rows } = await this.options.database.query<{ position_in_batch: number; applied: boolean; used: number }>(
        'SELECT position_in_batch, applied, used FROM entitlement_track_many($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::bigint[], $6)',
        [items.map((i) => i.accountId), items.map((i) => i.feature), items.map((i) => i.periodStart), items.map((i) => i.limit), items.map((i) => i.track), items[0]?.now ?? new Date(0)],
      );
      const outcomes: TrackOutcome[] = [];
      for (const row of rows) outcomes[row.position_in_batch - 1] = { applied: row.applied, used: row.used };
      if (outcomes.length !== items.length || outcomes.includes(undefined as unknown as TrackOutcome)) throw new Error('entitlement_track_many answered an incomplete batch');
      return outcomes;
    } catch (error) {
      if (items.length === 1) return [{ error }];
      // One bad request must not fail its neighbours: apply them one by one (in order), each on its own.
      const outcomes: TrackOutcome[] = [];
      for (const item of items) {
        try {
          const { rows } = await this.options.database.query<{ applied: boolean; used: number }>(
            'SELECT applied, used FROM entitlement_count($1, $2, $3, $4, $5, $6)',
            [item.accountId, item.feature, item.periodStart, item.track, item.limit, item.now],
          );
          outcomes.push({ applied: rows[0]?.applied ?? false, used: rows[0]?.used ?? 0 });
        } catch (itemError) {
          outcomes.push({ error: itemError });
        }
      }
      return outcomes;
    }
  }

  private async activeLeases(tx: Queryable, accountId: string, feature: string, now: Date): Promise<number> {
    const { rows } = await tx.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM leases WHERE account_id = $1 AND feature = $2 AND released_at IS NULL AND expires_at > $3',
      [accountId, feature, now],
    );
    return rows[0]?.count ?? 0;
  }
}
