import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import { accountPrincipal } from '../auth/guards.js';
import type { AccountSnapshots } from './account-snapshots.js';
import { effectivePlanId, type ExemptionLookup } from '../plans/exemptions.js';

/** GET /api/account: the calling account, whichever kind of account principal calls. */
export async function accountRoutes(
  app: FastifyInstance,
  deps: {
    accounts: AccountSnapshots;
    exemptions: ExemptionLookup;
    /** The account's current subscription as the billing module stores it (GET /api/billing/subscription), or null. */
    subscriptionOf?: (accountId: string) => Promise<unknown>;
  },
): Promise<void> {
  app.get('/api/account', { schema: { tags: ['account'] }, config: { auth: { allow: ['user', 'apiKey', 'service'] } } }, async (request) => {
    const { accountId } = accountPrincipal(request);
    const account = await deps.accounts.get(accountId);
    if (!account) throw new AppError('NOT_FOUND', 'Not found');
    // Owner and test accounts are on their configured plan without paying (OWN-2).
    const exemption = deps.exemptions.exemptionOf(account.id);
    return {
      account: {
        id: account.id,
        plan: effectivePlanId(account, deps.exemptions),
        status: account.status,
        ...(exemption ? { exempt: true, exemptKind: exemption.kind } : {}),
      },
      subscription: deps.subscriptionOf ? await deps.subscriptionOf(account.id) : null,
    };
  });
}
