import { performance } from 'node:perf_hooks';
import type { Database } from '../../platform/database/database.js';
import type { FeedLogger, RevocationFeed } from '../api-keys/revocation-feed.js';
import {
  FALLBACK_PLAN_ID,
  type CreditPack,
  type JobPrice,
  type JobPricingPort,
  type Plan,
  type PlanCataloguePort,
} from './plan-features.js';
import { listCreditPacks, listJobPrices, listPlanRows, planFromRow } from './plans.repository.js';

/** The NOTIFY channel migration 0006's triggers announce catalogue and price changes on. */
export const PLAN_CHANNEL = 'bulwark_plans';

/**
 * Used when the plans table has no FREE row (seedCatalogue never ran): a plan that grants
 * nothing, so every feature is denied (fail closed) rather than an error on every check.
 */
export const EMPTY_FREE_PLAN: Plan = Object.freeze({
  id: FALLBACK_PLAN_ID,
  name: 'Free',
  priceCents: 0,
  currency: 'usd',
  interval: 'month',
  requestsPerMinute: 600,
  features: Object.freeze({}),
  updatedAt: new Date(0).toISOString(),
});

/** Everything the catalogue serves, read together. */
export interface CatalogueSnapshot {
  /** In price-list order (position, then id). */
  readonly plans: readonly Plan[];
  readonly byId: ReadonlyMap<string, Plan>;
  readonly jobPrices: readonly JobPrice[];
  readonly creditPacks: readonly CreditPack[];
}

export interface PlanCatalogueOptions {
  /** Even with a live feed, a cached catalogue is re-read after this long (default 60 s). */
  readonly ttlMs?: number;
  /** Told about rows whose features could not be read (they are left out, so denied). */
  readonly logger?: Pick<FeedLogger, 'warn'>;
}

/**
 * The plan catalogue and price list (TIER-1, TIER-2, CRD-4), cached whole per instance.
 *
 * The cache follows the same rules as account snapshots: migration 0006's triggers NOTIFY
 * `bulwark_plans` on every change (through the service or by hand), each PostgreSQL
 * instance LISTENs with a PostgresRevocationFeed and drops the catalogue, and the cache
 * is used only while the feed `isLive()`; a read that overlaps an announcement is not
 * kept. With a LocalRevocationFeed (PGlite: one process) the writers in this module call
 * `invalidate()` after committing. Without a feed nothing is cached.
 */
/** `planId`'s plan in a catalogue; an unknown id gives FREE (TIER-2), and a missing FREE a plan granting nothing. */
function planIn({ byId }: CatalogueSnapshot, planId: string): Plan {
  return byId.get(planId) ?? byId.get(FALLBACK_PLAN_ID) ?? EMPTY_FREE_PLAN;
}

export class PlanCatalogue implements PlanCataloguePort, JobPricingPort {
  private cached: { snapshot: CatalogueSnapshot; storedAtMs: number } | undefined;
  private loading: { promise: Promise<CatalogueSnapshot>; epoch: number } | undefined;
  private epoch = 0;
  private readonly ttlMs: number;
  /** How many times the catalogue was read from the database (for tests and metrics). */
  loads = 0;

  constructor(
    private readonly database: Database,
    private readonly feed: RevocationFeed | undefined,
    private readonly options: PlanCatalogueOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 60_000;
    feed?.start({ onKeyChanged: () => this.invalidate(), onReset: () => this.invalidate() });
  }

  /** The plan for `planId`; an unknown id gives FREE (TIER-2), and a missing FREE a plan granting nothing. */
  async planFor(planId: string): Promise<Plan> {
    return planIn(await this.snapshot(), planId);
  }

  /**
   * What `planFor` would answer, if it can answer from the cache right now (feed live,
   * catalogue fresh); undefined otherwise. Lets hot paths skip a promise.
   */
  cachedPlanFor(planId: string): Plan | undefined {
    const snapshot = this.fresh();
    return snapshot ? planIn(snapshot, planId) : undefined;
  }

  /** The plan for `planId` if it exists, without the FREE fallback (operator views). */
  async find(planId: string): Promise<Plan | undefined> {
    return (await this.snapshot()).byId.get(planId);
  }

  /** Every plan, in price-list order. */
  async list(): Promise<readonly Plan[]> {
    return (await this.snapshot()).plans;
  }

  /** What one unit of `jobType` costs; undefined for a job type without a price. */
  async jobPrice(jobType: string): Promise<JobPrice | undefined> {
    return (await this.snapshot()).jobPrices.find((price) => price.jobType === jobType);
  }

  async snapshot(): Promise<CatalogueSnapshot> {
    const fresh = this.fresh();
    if (fresh) return fresh;
    const live = this.feed?.isLive() ?? false;
    const startedAtMs = performance.now();
    // Callers arriving while a read is under way share it, unless a change was announced since it began.
    if (live && this.loading && this.loading.epoch === this.epoch) return this.loading.promise;
    const epochAtLookup = this.epoch;
    const promise = this.load();
    if (live) this.loading = { promise, epoch: epochAtLookup };
    try {
      const snapshot = await promise;
      // A change announced while we read may not be in what we read: then do not keep it.
      if (live && this.feed?.isLive() && epochAtLookup === this.epoch) this.cached = { snapshot, storedAtMs: startedAtMs };
      return snapshot;
    } finally {
      if (this.loading?.promise === promise) this.loading = undefined;
    }
  }

  /** The cached catalogue if it may be used right now (feed live, within the TTL). */
  private fresh(): CatalogueSnapshot | undefined {
    if (!this.cached || !(this.feed?.isLive() ?? false) || performance.now() - this.cached.storedAtMs >= this.ttlMs) return undefined;
    return this.cached.snapshot;
  }

  /** True while the cache may be used (its change feed is live). */
  get cacheLive(): boolean {
    return this.feed?.isLive() ?? false;
  }

  /** Drops the cached catalogue (the feed calls this; so do local writers after committing). */
  invalidate(): void {
    this.epoch += 1;
    this.cached = undefined;
  }

  async close(): Promise<void> {
    await this.feed?.close();
  }

  private async load(): Promise<CatalogueSnapshot> {
    this.loads += 1;
    // One snapshot of all three tables, so a plan and a price changed together are seen together.
    const { rows, jobPrices, creditPacks } = await this.database.transaction(
      async (tx) => ({ rows: await listPlanRows(tx), jobPrices: await listJobPrices(tx), creditPacks: await listCreditPacks(tx) }),
      { isolation: 'repeatable read' },
    );
    const plans = rows.map((row) => {
      const problems: string[] = [];
      const plan = planFromRow(row, problems);
      if (problems.length > 0) this.options.logger?.warn({ planId: row.id, problems }, 'plan has malformed features; they are denied');
      return Object.freeze(plan);
    });
    return { plans, byId: new Map(plans.map((plan) => [plan.id, plan])), jobPrices, creditPacks };
  }
}
