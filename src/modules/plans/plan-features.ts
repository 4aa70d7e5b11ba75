/**
 * What a plan grants, feature by feature (TIER-1). A limit of null means unlimited.
 * The catalogue (plans module) answers these; entitlements enforce them.
 */
export type Feature =
  | { readonly kind: 'boolean'; readonly enabled: boolean }
  | { readonly kind: 'static'; readonly limit: number | null }
  | { readonly kind: 'metered'; readonly limit: number | null; readonly period: 'day' | 'month' }
  | { readonly kind: 'concurrency'; readonly limit: number | null };

export type FeatureKind = Feature['kind'];

export interface Plan {
  readonly id: string;
  readonly name: string;
  readonly priceCents: number;
  readonly currency: string;
  readonly interval: 'month' | 'year';
  /** Requests per minute for account keys and services on machine routes (RL-5); null = unlimited. */
  readonly requestsPerMinute: number | null;
  readonly features: Readonly<Record<string, Feature>>;
  readonly updatedAt: string;
}

/** The plan an account's plan id resolves to: an unknown plan acts as FREE (TIER-2). */
export const FALLBACK_PLAN_ID = 'FREE';

/** What the entitlements module needs from the catalogue. */
export interface PlanCataloguePort {
  /** The plan for a plan id; an unknown id gives the FREE plan (TIER-2). */
  planFor(planId: string): Promise<Plan>;
}

/** What one unit of a job costs in credits (CRD-4), from the server-side pricing table. */
export interface JobPrice {
  readonly jobType: string;
  readonly creditsPerUnit: number;
  readonly unit: string;
  readonly updatedAt: string;
}

/** What the credits module needs from the price list: an unpriced job type is undefined. */
export interface JobPricingPort {
  jobPrice(jobType: string): Promise<JobPrice | undefined>;
}

/** A one-time credit pack sold through checkout (PAY-2). */
export interface CreditPack {
  readonly id: string;
  readonly name: string;
  readonly credits: number;
  readonly priceCents: number;
  readonly currency: string;
  readonly updatedAt: string;
}
