import { validationError, type FieldProblem } from '../../errors/app-error.js';
import type { Clock } from '../../platform/clock.js';
import { asSystem } from '../../platform/database/access.js';
import { SqlState, sqlStateOf, type Database, type Transaction } from '../../platform/database/database.js';
import type { ActorContext } from '../api-keys/audit-hook.js';
import { recordAudit } from '../audit/audit.service.js';
import type { PlanCatalogue } from './plan-catalogue.js';
import type { Feature, JobPrice, Plan } from './plan-features.js';
import {
  insertPlanIfAbsent,
  jobPriceFromRow,
  lockJobPrice,
  lockPlanRow,
  parseFeatures,
  planFromRow,
  updatePlanRow,
  writeJobPrice,
  type PlanRow,
  type PlanValues,
} from './plans.repository.js';

/** What PUT /api/admin/plans/:id may change; absent fields keep their value. `features` replaces the whole map. */
export interface PlanChanges {
  readonly name?: string;
  readonly priceCents?: number;
  readonly currency?: string;
  readonly interval?: 'month' | 'year';
  readonly requestsPerMinute?: number | null;
  readonly features?: Readonly<Record<string, Feature>>;
  readonly position?: number;
}

export interface JobPriceChanges {
  readonly creditsPerUnit: number;
  readonly unit?: string;
}

/** Fields a new plan must be given (position defaults to the end of the list). */
const REQUIRED_FOR_NEW_PLAN = ['name', 'priceCents', 'currency', 'interval', 'requestsPerMinute', 'features'] as const;

export interface PlanAdminOptions {
  readonly database: Database;
  readonly clock: Clock;
  /** Dropped after each committed change (on PostgreSQL the trigger's NOTIFY does it everywhere as well). */
  readonly catalogue?: PlanCatalogue;
}

/**
 * Operator changes to the catalogue and the price list (TIER-5): each is one transaction
 * with its audit entry (who, when, before, after), and `updated_at` moves. A change that
 * changes nothing is not recorded.
 */
export class PlanAdminService {
  constructor(private readonly options: PlanAdminOptions) {}

  /** Changes a plan, or creates it when absent (then every field but position is required). */
  async putPlan(id: string, changes: PlanChanges, actor: ActorContext): Promise<{ plan: Plan; created: boolean }> {
    const result = await this.retryOnceOnConflict(() =>
      asSystem(this.options.database, async (tx) => {
        const at = this.options.clock.now();
        const before = await lockPlanRow(tx, id);
        if (!before) {
          const values = newPlanValues(changes);
          const row = await insertPlanIfAbsent(tx, id, values, null, at);
          // Another operator created it since our look-up: start again as an update.
          if (!row) throw Object.assign(new Error('plan created concurrently'), { code: SqlState.uniqueViolation });
          const plan = planFromRow(row);
          await this.record(tx, actor, 'plan.created', 'plan', id, { before: null, after: plan });
          return { plan, created: true, changed: true };
        }
        const beforePlan = planFromRow(before);
        const values = mergedValues(before, changes);
        if (sameValues(before, values)) return { plan: beforePlan, created: false, changed: false };
        const after = planFromRow(await updatePlanRow(tx, id, values, at));
        await this.record(tx, actor, 'plan.updated', 'plan', id, { before: beforePlan, after });
        return { plan: after, created: false, changed: true };
      }),
    );
    if (result.changed) this.options.catalogue?.invalidate();
    return { plan: result.plan, created: result.created };
  }

  /** Sets what one unit of a job type costs; a new job type needs its unit. */
  async putJobPrice(jobType: string, changes: JobPriceChanges, actor: ActorContext): Promise<{ jobPrice: JobPrice; created: boolean }> {
    const result = await asSystem(this.options.database, async (tx) => {
      const at = this.options.clock.now();
      const row = await lockJobPrice(tx, jobType);
      const before = row ? jobPriceFromRow(row) : null;
      const unit = changes.unit ?? before?.unit;
      if (unit === undefined) throw validationError([{ field: 'unit', message: 'is required to price a new job type' }]);
      if (before && before.creditsPerUnit === changes.creditsPerUnit && before.unit === unit) {
        return { jobPrice: before, created: false, changed: false };
      }
      // INSERT ... ON CONFLICT: a job type priced concurrently is simply updated.
      const after = await writeJobPrice(tx, jobType, changes.creditsPerUnit, unit, at);
      await this.record(tx, actor, before ? 'pricing.updated' : 'pricing.created', 'job_price', jobType, { before, after });
      return { jobPrice: after, created: before === null, changed: true };
    });
    if (result.changed) this.options.catalogue?.invalidate();
    return { jobPrice: result.jobPrice, created: result.created };
  }

  private async retryOnceOnConflict<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (sqlStateOf(error) !== SqlState.uniqueViolation) throw error;
      return work();
    }
  }

  private async record(
    tx: Transaction,
    actor: ActorContext,
    event: string,
    subjectType: string,
    subjectId: string,
    metadata: Record<string, unknown>,
  ): Promise<void> {
    // Audit entry last: appending holds the audit chain's lock until commit.
    await recordAudit(
      tx,
      { event, actorType: actor.actorType, actorId: actor.actorId, subjectType, subjectId, accountId: null, ip: actor.ip, metadata },
      this.options.clock,
    );
  }
}

function newPlanValues(changes: PlanChanges): PlanValues {
  const missing: FieldProblem[] = REQUIRED_FOR_NEW_PLAN.filter((field) => changes[field] === undefined).map((field) => ({
    field,
    message: 'is required to create a plan',
  }));
  if (missing.length > 0) throw validationError(missing);
  return {
    name: changes.name as string,
    priceCents: changes.priceCents as number,
    currency: changes.currency as string,
    interval: changes.interval as 'month' | 'year',
    requestsPerMinute: changes.requestsPerMinute as number | null,
    features: changes.features as Record<string, Feature>,
    position: changes.position ?? 1000,
  };
}

function mergedValues(before: PlanRow, changes: PlanChanges): PlanValues {
  return {
    name: changes.name ?? before.name,
    priceCents: changes.priceCents ?? Number(before.price_cents),
    currency: changes.currency ?? before.currency,
    interval: changes.interval ?? (before.interval === 'year' ? 'year' : 'month'),
    requestsPerMinute: changes.requestsPerMinute !== undefined ? changes.requestsPerMinute : before.requests_per_minute,
    features: changes.features ?? parseFeatures(before.features),
    position: changes.position ?? before.position,
  };
}

/** Key order in JSON does not matter: compare features canonically. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.keys(value)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}

function sameValues(before: PlanRow, values: PlanValues): boolean {
  return (
    before.name === values.name &&
    Number(before.price_cents) === values.priceCents &&
    before.currency === values.currency &&
    before.interval === values.interval &&
    before.requests_per_minute === values.requestsPerMinute &&
    before.position === values.position &&
    canonical(before.features) === canonical(values.features)
  );
}
