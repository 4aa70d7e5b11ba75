/**
 * OWN-1 / OWN-2: owner and test accounts are never charged and get their configured plan
 * without paying. Configuration: OWNER_ACCOUNT_IDS, TEST_ACCOUNT_IDS (comma lists) and
 * EXEMPT_ACCOUNT_PLAN (default ENTERPRISE).
 */

export type ExemptionKind = 'owner' | 'test';

export interface Exemption {
  readonly exempt: true;
  readonly kind: ExemptionKind;
  /** The plan the account gets without payment. */
  readonly plan: string;
}

export interface ExemptionSettings {
  readonly ownerAccountIds: readonly string[];
  readonly testAccountIds: readonly string[];
  /** Default ENTERPRISE. */
  readonly plan: string;
}

/** What the billing, entitlements and account modules ask. */
export interface ExemptionLookup {
  exemptionOf(accountId: string): Exemption | undefined;
}

export class Exemptions implements ExemptionLookup {
  private readonly byAccount = new Map<string, Exemption>();

  constructor(settings: ExemptionSettings) {
    const test: Exemption = Object.freeze({ exempt: true, kind: 'test', plan: settings.plan });
    const owner: Exemption = Object.freeze({ exempt: true, kind: 'owner', plan: settings.plan });
    for (const id of settings.testAccountIds) this.byAccount.set(id, test);
    // An id in both lists is an owner account.
    for (const id of settings.ownerAccountIds) this.byAccount.set(id, owner);
  }

  exemptionOf(accountId: string): Exemption | undefined {
    return this.byAccount.get(accountId);
  }

  isExempt(accountId: string): boolean {
    return this.byAccount.has(accountId);
  }

  get size(): number {
    return this.byAccount.size;
  }
}

/** No exempt accounts (tests, and until configuration is wired). */
export const NO_EXEMPTIONS: ExemptionLookup = { exemptionOf: () => undefined };

/**
 * The plan an account is entitled to: its configured exemption plan when it is an owner
 * or test account (OWN-2), otherwise the plan it carries. Resolve the result with
 * PlanCatalogue.planFor (an unknown id is FREE, TIER-2).
 */
export function effectivePlanId(account: { readonly id: string; readonly plan: string }, exemptions: ExemptionLookup): string {
  return exemptions.exemptionOf(account.id)?.plan ?? account.plan;
}
