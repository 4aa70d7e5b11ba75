import { Value } from '@sinclair/typebox/value';
import type { Queryable } from '../../platform/database/database.js';
import type { CreditPack, Feature, JobPrice, Plan } from './plan-features.js';
import { FEATURE_NAME_PATTERN, FeatureSchema, MAX_FEATURES_PER_PLAN, type CataloguePlan } from './plan-schemas.js';

export interface PlanRow {
  id: string;
  name: string;
  price_cents: number;
  currency: string;
  interval: string;
  requests_per_minute: number | null;
  features: unknown;
  position: number;
  version: number;
  catalogue_version: number | null;
  created_at: Date | string;
  updated_at: Date | string;
}

interface JobPriceRow {
  job_type: string;
  credits_per_unit: number;
  unit: string;
  updated_at: Date | string;
}

interface CreditPackRow {
  id: string;
  name: string;
  credits: number;
  price_cents: number;
  currency: string;
  updated_at: Date | string;
}

const featureName = new RegExp(FEATURE_NAME_PATTERN);

function iso(value: Date | string): string {
  return new Date(value).toISOString();
}

/**
 * Features as stored, checked again on the way out: writes are validated, but a row
 * edited by hand could hold anything. A malformed feature is left out, so it reads as
 * unknown and is denied (TIER-2: fail closed), and `problems` names it for the log.
 * Features come back sorted by name.
 */
export function parseFeatures(stored: unknown, problems: string[] = []): Record<string, Feature> {
  const features: Record<string, Feature> = {};
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) {
    problems.push('features is not an object');
    return features;
  }
  let count = 0;
  // By name: jsonb keeps its own key order (shortest first), which means nothing to a reader.
  const entries = Object.entries(stored).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, value] of entries) {
    if (!featureName.test(name) || !Value.Check(FeatureSchema, value) || count >= MAX_FEATURES_PER_PLAN) {
      problems.push(`feature ${JSON.stringify(name).slice(0, 80)} is malformed`);
      continue;
    }
    count += 1;
    Object.defineProperty(features, name, { value: value as Feature, enumerable: true, writable: true, configurable: true });
  }
  return features;
}

export function planFromRow(row: PlanRow, problems: string[] = []): Plan {
  const interval = row.interval === 'year' ? 'year' : 'month';
  return {
    id: row.id,
    name: row.name,
    priceCents: Number(row.price_cents),
    currency: row.currency,
    interval,
    requestsPerMinute: row.requests_per_minute,
    features: parseFeatures(row.features, problems),
    updatedAt: iso(row.updated_at),
  };
}

export async function listPlanRows(db: Queryable): Promise<PlanRow[]> {
  const { rows } = await db.query<PlanRow>('SELECT * FROM plans ORDER BY position, id');
  return rows;
}

export async function listJobPrices(db: Queryable): Promise<JobPrice[]> {
  const { rows } = await db.query<JobPriceRow>('SELECT job_type, credits_per_unit, unit, updated_at FROM credit_job_prices ORDER BY job_type');
  return rows.map((row) => ({ jobType: row.job_type, creditsPerUnit: Number(row.credits_per_unit), unit: row.unit, updatedAt: iso(row.updated_at) }));
}

export async function listCreditPacks(db: Queryable): Promise<CreditPack[]> {
  const { rows } = await db.query<CreditPackRow>(
    'SELECT id, name, credits, price_cents, currency, updated_at FROM credit_packs WHERE active ORDER BY position, id',
  );
  return rows.map((row) => ({
    id: row.id,
    name: row.name,
    credits: Number(row.credits),
    priceCents: Number(row.price_cents),
    currency: row.currency,
    updatedAt: iso(row.updated_at),
  }));
}

export async function lockPlanRow(tx: Queryable, id: string): Promise<PlanRow | undefined> {
  const { rows } = await tx.query<PlanRow>('SELECT * FROM plans WHERE id = $1 FOR UPDATE', [id]);
  return rows[0];
}

export interface PlanValues {
  readonly name: string;
  readonly priceCents: number;
  readonly currency: string;
  readonly interval: 'month' | 'year';
  readonly requestsPerMinute: number | null;
  readonly features: Readonly<Record<string, Feature>>;
  readonly position: number;
}

/** Inserts a plan unless one with its id exists; the row when inserted, undefined otherwise. */
export async function insertPlanIfAbsent(
  tx: Queryable,
  id: string,
  values: PlanValues,
  catalogueVersion: number | null,
  at: Date,
): Promise<PlanRow | undefined> {
  const { rows } = await tx.query<PlanRow>(
    `INSERT INTO plans (id, name, price_cents, currency, interval, requests_per_minute, features, position, version,
                        catalogue_version, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, 1, $9, $10, $10)
     ON CONFLICT (id) DO NOTHING
     RETURNING *`,
    [
      id,
      values.name,
      values.priceCents,
      values.currency,
      values.interval,
      values.requestsPerMinute,
      JSON.stringify(values.features),
      values.position,
      catalogueVersion,
      at.toISOString(),
    ],
  );
  return rows[0];
}

export async function updatePlanRow(tx: Queryable, id: string, values: PlanValues, at: Date): Promise<PlanRow> {
  const { rows } = await tx.query<PlanRow>(
    `UPDATE plans SET name = $2, price_cents = $3, currency = $4, interval = $5, requests_per_minute = $6,
                      features = $7::jsonb, position = $8, version = version + 1, updated_at = $9
      WHERE id = $1
      RETURNING *`,
    [
      id,
      values.name,
      values.priceCents,
      values.currency,
      values.interval,
      values.requestsPerMinute,
      JSON.stringify(values.features),
      values.position,
      at.toISOString(),
    ],
  );
  const row = rows[0];
  if (!row) throw new Error(`plan ${id} vanished while locked`);
  return row;
}

export function catalogueValues(plan: CataloguePlan, position: number): PlanValues {
  return {
    name: plan.name,
    priceCents: plan.priceCents,
    currency: plan.currency,
    interval: plan.interval,
    requestsPerMinute: plan.requestsPerMinute,
    features: plan.features as Record<string, Feature>,
    position,
  };
}

export async function lockJobPrice(tx: Queryable, jobType: string): Promise<JobPriceRow | undefined> {
  const { rows } = await tx.query<JobPriceRow>(
    'SELECT job_type, credits_per_unit, unit, updated_at FROM credit_job_prices WHERE job_type = $1 FOR UPDATE',
    [jobType],
  );
  return rows[0];
}

/** Inserts or updates one job price; returns it as read back. */
export async function writeJobPrice(tx: Queryable, jobType: string, creditsPerUnit: number, unit: string, at: Date): Promise<JobPrice> {
  const { rows } = await tx.query<JobPriceRow>(
    `INSERT INTO credit_job_prices (job_type, credits_per_unit, unit, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $4)
     ON CONFLICT (job_type) DO UPDATE SET credits_per_unit = EXCLUDED.credits_per_unit, unit = EXCLUDED.unit,
                                          updated_at = EXCLUDED.updated_at
     RETURNING job_type, credits_per_unit, unit, updated_at`,
    [jobType, creditsPerUnit, unit, at.toISOString()],
  );
  const row = rows[0];
  if (!row) throw new Error('job price write returned nothing');
  return jobPriceFromRow(row);
}

export function jobPriceFromRow(row: JobPriceRow): JobPrice {
  return { jobType: row.job_type, creditsPerUnit: Number(row.credits_per_unit), unit: row.unit, updatedAt: iso(row.updated_at) };
}
