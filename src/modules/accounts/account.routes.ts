import type { FastifyInstance } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import { forAccount } from '../../platform/database/access.js';
import type { Database } from '../../platform/database/database.js';
import { accountPrincipal } from '../auth/guards.js';
import { findAccount } from './accounts.repository.js';

/** GET /api/account: the calling account, whichever kind of account principal calls. */
export async function accountRoutes(app: FastifyInstance, deps: { database: Database }): Promise<void> {
  app.get('/api/account', { schema: { tags: ['account'] }, config: { auth: { allow: ['user', 'apiKey', 'service'] } } }, async (request) => {
    const { accountId } = accountPrincipal(request);
    const account = await forAccount(deps.database, accountId, (tx) => findAccount(tx, accountId));
    if (!account) throw new AppError('NOT_FOUND', 'Not found');
    // Subscriptions arrive with the billing module; until then there is none.
    return { account: { id: account.id, plan: account.plan, status: account.status }, subscription: null };
  });
}
