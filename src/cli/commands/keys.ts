import type { Config } from '../../config/config.js';
import { ApiKeyService, type IssuedApiKey } from '../../modules/api-keys/api-keys.service.js';
import { IssueKeyBody, RotateKeyBody } from '../../modules/api-keys/api-keys.routes.js';
import { auditRecorder } from '../../modules/api-keys/audit-hook.js';
import { systemClock } from '../../platform/clock.js';
import type { Database } from '../../platform/database/database.js';
import { CLI_ACTOR } from '../cli-actor.js';
import { withServiceDatabase } from '../cli-database.js';
import { CommandFailure, printable, type CliCommand, type CliIo } from '../cli-io.js';
import { requireId, requireInteger, validateAsRouteBody } from '../cli-validation.js';

function withKeys<T>(config: Config, io: CliIo, work: (service: ApiKeyService) => Promise<T>): Promise<T> {
  const pepper = config.secrets.apiKeyPepper;
  if (!pepper) throw new CommandFailure('CONFIGURATION', 'API_KEY_PEPPER is not set: keys issued now would not verify on the service');
  return withServiceDatabase(config, io, (database: Database) =>
    work(new ApiKeyService({ database, clock: systemClock, pepper, audit: auditRecorder(systemClock) })),
  );
}

function issuedLines(verb: string, issued: IssuedApiKey): string[] {
  return [
    `${verb} key ${issued.key.id} (${issued.key.prefix}${issued.key.label ? `, ${printable(issued.key.label)}` : ''})`,
    'Secret (shown this once; send it in X-API-Key):',
    issued.secret,
  ];
}

/** `bulwark keys issue <accountId>`: the operator issue, audited; the secret is printed once. */
export const keysIssue: CliCommand = {
  name: 'keys issue',
  summary: 'Issue an API key for an account; prints the secret once',
  usage: '<accountId> [--label <text>]',
  options: { label: { type: 'string' } },
  positionals: [1, 1],
  async run({ values, positionals, config, io }) {
    const accountId = requireId(positionals[0], 'accountId');
    const body = values.label === undefined ? {} : { label: values.label };
    validateAsRouteBody(IssueKeyBody, body);
    const issued = await withKeys(config, io, (service) => service.issueForAccount(accountId, { label: (values.label as string | undefined) ?? null }, CLI_ACTOR));
    return { data: issued, lines: issuedLines('Issued', issued) };
  },
};

/** `bulwark keys rotate <keyId>`: a replacement now, the old key working for the overlap (default 24 h). */
export const keysRotate: CliCommand = {
  name: 'keys rotate',
  summary: 'Replace an API key; the old one keeps working for --overlap-seconds (default 86400)',
  usage: '<keyId> [--overlap-seconds <n>] [--label <text>]',
  options: { label: { type: 'string' }, 'overlap-seconds': { type: 'string' } },
  positionals: [1, 1],
  async run({ values, positionals, config, io }) {
    const keyId = requireId(positionals[0], 'keyId');
    const body: { label?: string; overlapSeconds?: number } = {};
    if (values.label !== undefined) body.label = values.label as string;
    if (values['overlap-seconds'] !== undefined) body.overlapSeconds = requireInteger(values['overlap-seconds'] as string, '--overlap-seconds', 0, Number.MAX_SAFE_INTEGER);
    validateAsRouteBody(RotateKeyBody, body);
    const issued = await withKeys(config, io, (service) => service.rotateById(keyId, body, CLI_ACTOR));
    return { data: { ...issued, replaces: keyId }, lines: [...issuedLines('Rotated into', issued), `The old key ${keyId} stops working at the end of the overlap.`] };
  },
};

/** `bulwark keys revoke <keyId>`: every instance refuses the key within a second. */
export const keysRevoke: CliCommand = {
  name: 'keys revoke',
  summary: 'Revoke an API key (every instance refuses it within 1 s)',
  usage: '<keyId>',
  options: {},
  positionals: [1, 1],
  async run({ positionals, config, io }) {
    const keyId = requireId(positionals[0], 'keyId');
    await withKeys(config, io, (service) => service.revokeById(keyId, CLI_ACTOR));
    return { data: { revoked: keyId }, lines: [`Revoked key ${keyId}`] };
  },
};
