/**
 * Which grants a hold takes its credits from (CRD-1): a pure function, no I/O.
 *
 * - grants that have expired at `now` (expiresAt <= now) or have nothing left are skipped;
 * - the soonest-expiring grant is spent first, grants without expiry last;
 * - ties go to the older grant (createdAt), then to the smaller id, so the result is
 *   deterministic whatever order the grants come in;
 * - a grant never gives more than its remaining, and the allocations sum to `amount`
 *   exactly, or the answer is `{insufficient: true}` and nothing is allocated.
 *
 * Amounts are whole credits (safe integers); anything else is a programming error.
 */
export interface AllocatableGrant {
  readonly id: string;
  readonly remaining: number;
  readonly expiresAt: Date | null;
  readonly createdAt?: Date;
}

export interface Allocation {
  readonly grantId: string;
  readonly amount: number;
}

export type AllocationResult = { readonly allocations: readonly Allocation[] } | { readonly insufficient: true };

function assertWholeCredits(value: number, what: string, allowZero: boolean): void {
  if (!Number.isSafeInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(`${what} must be a ${allowZero ? 'non-negative' : 'positive'} safe integer; got ${String(value)}`);
  }
}

/** Spending order: soonest expiry first (none last), then oldest, then smallest id. */
export function spendingOrder(a: AllocatableGrant, b: AllocatableGrant): number {
  const aExpiry = a.expiresAt === null ? Number.POSITIVE_INFINITY : a.expiresAt.getTime();
  const bExpiry = b.expiresAt === null ? Number.POSITIVE_INFINITY : b.expiresAt.getTime();
  if (aExpiry !== bExpiry) return aExpiry < bExpiry ? -1 : 1;
  const aCreated = a.createdAt?.getTime() ?? 0;
  const bCreated = b.createdAt?.getTime() ?? 0;
  if (aCreated !== bCreated) return aCreated < bCreated ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function isUsable(grant: AllocatableGrant, now: Date): boolean {
  return grant.remaining > 0 && (grant.expiresAt === null || grant.expiresAt.getTime() > now.getTime());
}

export function allocate(grants: readonly AllocatableGrant[], amount: number, now: Date): AllocationResult {
  assertWholeCredits(amount, 'amount', false);
  for (const grant of grants) assertWholeCredits(grant.remaining, `remaining of ${grant.id}`, true);
  const usable = grants.filter((grant) => isUsable(grant, now)).sort(spendingOrder);
  const allocations: Allocation[] = [];
  let left = amount;
  for (const grant of usable) {
    if (left === 0) break;
    const take = Math.min(grant.remaining, left);
    allocations.push({ grantId: grant.id, amount: take });
    left -= take;
  }
  return left === 0 ? { allocations } : { insufficient: true };
}
