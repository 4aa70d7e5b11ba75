import { CreditsService, GRANT_SOURCES, MAX_CREDITS_PER_OPERATION, type GrantSource } from '../../modules/credits/credits.service.js';
import { PlanCatalogue } from '../../modules/plans/plan-catalogue.js';
import { systemClock } from '../../platform/clock.js';
import { CLI_ACTOR } from '../cli-actor.js';
import { withServiceDatabase } from '../cli-database.js';
import { UsageError, type CliCommand } from '../cli-io.js';
import { requireId, requireInteger } from '../cli-validation.js';

/** The sources an operator may grant from (the signup bonus is the service's alone). */
const OPERATOR_SOURCES = GRANT_SOURCES.filter((source) => source !== 'signup_bonus');
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/;

/** `bulwark credits grant <accountId> <amount>`: CreditsService.grant, ledger and audit in one transaction. */
export const creditsGrant: CliCommand = {
  name: 'credits grant',
  summary: 'Grant whole credits to an account (audited)',
  usage: `<accountId> <amount> [--source ${OPERATOR_SOURCES.join('|')}] [--expires-at <ISO 8601 time>] [--reference <text>]`,
  options: { source: { type: 'string' }, 'expires-at': { type: 'string' }, reference: { type: 'string' } },
  positionals: [2, 2],
  async run({ values, positionals, config, io }) {
    const accountId = requireId(positionals[0], 'accountId');
    const amount = requireInteger(positionals[1], 'amount', 1, MAX_CREDITS_PER_OPERATION);
    const source = (values.source as string | undefined) ?? 'admin';
    if (!(OPERATOR_SOURCES as readonly string[]).includes(source)) throw new UsageError(`--source: must be one of ${OPERATOR_SOURCES.join(', ')}`);
    const expiresAtText = values['expires-at'] as string | undefined;
    if (expiresAtText !== undefined && (!ISO_TIME.test(expiresAtText) || Number.isNaN(Date.parse(expiresAtText)))) {
      throw new UsageError('--expires-at: must be an ISO 8601 time with a zone, e.g. 2027-01-01T00:00:00Z');
    }
    const reference = values.reference as string | undefined;
    const grant = await withServiceDatabase(config, io, (database) =>
      new CreditsService({ database, clock: systemClock, pricing: new PlanCatalogue(database, undefined) }).grant(
        accountId,
        {
          amount,
          source: source as GrantSource,
          ...(expiresAtText !== undefined ? { expiresAt: new Date(expiresAtText) } : {}),
          ...(reference !== undefined ? { reference } : {}),
        },
        CLI_ACTOR,
      ),
    );
    return {
      data: { grant },
      lines: [`Granted ${grant.amount} credits to ${accountId} (${grant.source}, grant ${grant.id}${grant.expiresAt ? `, expires ${grant.expiresAt}` : ''})`],
    };
  },
};
