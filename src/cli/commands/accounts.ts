import { ACCOUNT_PLANS, AdminAccountsService, CreateAccountBody, type AccountPlan, type AccountView } from '../../modules/accounts/admin-accounts.routes.js';
import { systemClock } from '../../platform/clock.js';
import { withServiceDatabase } from '../cli-database.js';
import { printable, table, type CliCommand } from '../cli-io.js';
import { CLI_ACTOR } from '../cli-actor.js';
import { requireInteger, validateAsRouteBody } from '../cli-validation.js';

/** `bulwark accounts create`: AdminAccountsService.create, audited with the command line as actor. */
export const accountsCreate: CliCommand = {
  name: 'accounts create',
  summary: 'Create an account (and its owner, without a password, when --email is given)',
  usage: `[--name <text>] [--email <address>] [--plan ${ACCOUNT_PLANS.join('|')}]`,
  options: { name: { type: 'string' }, email: { type: 'string' }, plan: { type: 'string' } },
  positionals: [0, 0],
  async run({ values, config, io }) {
    const body: Record<string, unknown> = {};
    for (const field of ['name', 'email', 'plan'] as const) if (values[field] !== undefined) body[field] = values[field];
    validateAsRouteBody(CreateAccountBody, body);
    const created = await withServiceDatabase(config, io, (database) =>
      new AdminAccountsService({ database, clock: systemClock }).create(body as { name?: string; email?: string; plan?: AccountPlan }, CLI_ACTOR),
    );
    const lines = [`Created account ${created.account.id} on ${created.account.plan}${created.account.name ? ` (${printable(created.account.name)})` : ''}`];
    if (created.user) lines.push(`Owner ${created.user.id} <${printable(created.user.email)}> (no password yet: they set one through a password reset)`);
    return { data: created, lines };
  },
};

/** `bulwark accounts list`: every account by id (pages through the service), or the first --limit. */
export const accountsList: CliCommand = {
  name: 'accounts list',
  summary: 'List accounts by id',
  usage: '[--limit <n>] [--after <accountId>]',
  options: { limit: { type: 'string' }, after: { type: 'string' } },
  positionals: [0, 0],
  async run({ values, config, io, progress }) {
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : requireInteger(values.limit as string, '--limit', 1, 1_000_000);
    const after = values.after as string | undefined;
    const items = await withServiceDatabase(config, io, async (database) => {
      const service = new AdminAccountsService({ database, clock: systemClock });
      const found: AccountView[] = [];
      let cursor = after;
      while (found.length < limit) {
        const page = await service.list({ limit: 100, ...(cursor !== undefined ? { cursor } : {}) });
        found.push(...page.items);
        progress.update('reading accounts', found.length);
        if (page.nextCursor === null) break;
        cursor = page.nextCursor;
      }
      progress.done();
      return found.slice(0, limit);
    });
    const last = items[items.length - 1];
    const lines =
      items.length === 0
        ? ['No accounts']
        : table([
            ['ID', 'PLAN', 'STATUS', 'CREATED', 'NAME'],
            ...items.map((account) => [account.id, account.plan, account.status, account.createdAt, printable(account.name)]),
          ]);
    lines.push(`${items.length} account${items.length === 1 ? '' : 's'}`);
    return { data: { items, next: items.length === limit && last ? last.id : null }, lines };
  },
};
