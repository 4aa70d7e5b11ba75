/** What the service answers, as the client hands it on (API.md). Credits are whole numbers. */

import type { License } from './license.js';

export type FeatureKind = 'boolean' | 'static' | 'metered' | 'concurrency';

/** POST /api/entitlements/check: with `track`, `used` and `remaining` are the values after recording. */
export interface EntitlementAnswer {
  readonly allowed: boolean;
  readonly feature: string;
  /** null for a feature the plan does not know (denied). */
  readonly kind: FeatureKind | null;
  /** null means unlimited. */
  readonly limit: number | null;
  readonly used: number;
  readonly remaining: number | null;
  /** Metered features: when the period ends (UTC). */
  readonly resetsAt?: string;
}

export interface Lease {
  readonly id: string;
  readonly expiresAt: string;
}

export type LeaseResult = { readonly allowed: true; readonly lease: Lease } | (EntitlementAnswer & { readonly allowed: false });

export interface UsageEvent {
  /** Unique per account: a replayed event is counted once. The client fills it in when absent. */
  readonly idempotencyKey?: string;
  readonly jobId?: string;
  readonly jobType: string;
  readonly quantity?: number;
  readonly description?: string;
  /** Internal only, never returned; keys must be in the service's allowlist. */
  readonly metadata?: Readonly<Record<string, string | number | boolean>>;
}

export interface UsageReportResult {
  readonly accepted: number;
  readonly duplicates: number;
}

export interface UsageReport {
  readonly id: string;
  readonly jobId: string | null;
  readonly jobType: string;
  readonly creditsUsed: number;
  readonly status: string;
  readonly description: string | null;
  readonly createdAt: string;
}

export interface Page<T> {
  readonly items: readonly T[];
  readonly nextCursor: string | null;
}

export interface PageOptions {
  /** Clamped by the service to 1..100. */
  readonly limit?: number;
  readonly cursor?: string;
}

export interface CreditGrant {
  readonly id: string;
  readonly source: string;
  readonly amount: number;
  readonly remaining: number;
  readonly expiresAt: string | null;
}

export interface CreditBalance {
  /** Spendable now. */
  readonly balance: number;
  /** Reserved and not yet confirmed. */
  readonly held: number;
  readonly grants: readonly CreditGrant[];
}

/** The account's current subscription as the service stored it from Stripe (GET /api/billing/subscription). */
export interface Subscription {
  readonly id: string;
  /** Stripe's status: trialing, active, past_due, canceled, unpaid, incomplete, incomplete_expired, paused. */
  readonly status: string;
  readonly plan: string | null;
  readonly currentPeriodEnd: string | null;
  readonly cancelAtPeriodEnd: boolean;
  readonly trialEnd: string | null;
}

export interface LedgerEntry {
  readonly id: string;
  readonly kind: string;
  /** Signed: + into the spendable balance, - out of it. */
  readonly amount: number;
  readonly grantId: string | null;
  readonly reservationId: string | null;
  readonly createdAt: string;
}

export interface ReserveInput {
  readonly jobId: string;
  readonly jobType: string;
  /** For a priced job type: the count it is priced by (e.g. pages). */
  readonly units?: number;
  /** For an unpriced job type: whole credits. */
  readonly amount?: number;
  /** Per account: a retry returns the first reservation. The client fills it in when absent. */
  readonly idempotencyKey?: string;
}

export interface Reservation {
  readonly id: string;
  readonly jobId: string;
  readonly jobType: string;
  readonly amount: number;
  readonly status: 'held' | 'confirmed' | 'released';
  readonly expiresAt: string;
}

export interface GateInput {
  readonly feature: string;
  readonly track?: number;
  readonly credits?: ReserveInput;
}

export interface GateAnswer {
  readonly allowed: boolean;
  readonly reason?: 'RATE_LIMITED' | 'NOT_ENTITLED' | 'LIMIT_REACHED' | 'INSUFFICIENT_CREDITS';
  /** null only when rate limited (nothing was read). */
  readonly entitlement: EntitlementAnswer | null;
  readonly reservation?: Reservation;
}

/** GET /api/licenses/:accountId: `token` is the signed licence; `license` its payload, unverified until verifyLicense says so. */
export interface IssuedLicense {
  readonly license: License;
  readonly token: string;
}
