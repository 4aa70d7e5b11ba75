import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import { accountPrincipal } from '../auth/guards.js';
import type { AccountSnapshots } from './account-snapshots.js';

/** GET /api/account: the calling account, whichever kind of account principal calls. */
export async function accountRoutes(app: FastifyInstance, deps: { accounts: AccountSnapshots }): Promise<void> {
  app.get('/api/account', { schema: { tags: ['account'] }, config: { auth: { allow: ['user', 'apiKey', 'service'] } } }, async (request) => {
    const { accountId } = accountPrincipal(request);
    const account = await deps.accounts.get(accountId);
    if (!account) throw new AppError('NOT_FOUND', 'Not found');
    // Subscriptions arrive with the billing module; until then there is none.
    return { account: { id: account.id, plan: account.plan, status: account.status }, subscription: null };
  });
}
