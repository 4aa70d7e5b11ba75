import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../../errors/app-error.js';
import { rateLimit } from '../../platform/rate-limit/hooks.js';
import { byUser } from '../../platform/rate-limit/keys.js';
import type { RateLimiter } from '../../platform/rate-limit/limiter.js';
import { clearSessionCookies, type CookiePolicy } from '../auth/cookies.js';
import { MAX_PASSWORD_LENGTH } from '../auth/passwords.js';
import type { DataSubjectPrincipal, PrivacyService } from './privacy.service.js';

export interface PrivacyRouteOptions {
  readonly service: PrivacyService;
  readonly limiter: RateLimiter;
  readonly cookies: CookiePolicy;
}

const DeleteBody = Type.Object({
  password: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_PASSWORD_LENGTH, description: 'Required of people; a trusted service sends none' })),
});
const DeleteResponse = Type.Object({
  accountId: Type.String(),
  status: Type.Union([Type.Literal('deleted'), Type.Literal('pending')], {
    description: 'deleted: finished; pending: the account refuses every credential already, the rest is being finished',
  }),
});

/** People only (a user, or a trusted service's user): an API key cannot export or delete a person. */
const PEOPLE = { auth: { allow: ['user', 'service'] } } as const;
const OWNER = { auth: { allow: ['user', 'service'], ownerOnly: true } } as const;

function dataSubject(request: FastifyRequest): DataSubjectPrincipal {
  const principal = request.principal;
  if (principal?.kind === 'user' || principal?.kind === 'service') {
    return { kind: principal.kind, accountId: principal.accountId, userId: principal.userId };
  }
  throw new AppError('FORBIDDEN', 'These credentials cannot use this route');
}

/** GDPR-1 and GDPR-2 (API.md "Account"). */
export async function privacyRoutes(app: FastifyInstance, options: PrivacyRouteOptions): Promise<void> {
  const { service } = options;
  const exportLimit = rateLimit(options.limiter, 'account_export.user', byUser);
  const deleteLimit = rateLimit(options.limiter, 'account_delete.user', byUser);

  app.get(
    '/api/account/export',
    {
      config: PEOPLE,
      preHandler: exportLimit,
      schema: {
        tags: ['account'],
        summary: 'Download every personal datum held about the caller (GDPR-1)',
        description: 'A JSON file `account-export-<accountId>.json`: user, account, sessions, API key metadata, usage, credits, billing history from Stripe and audit entries. 10 an hour.',
      },
    },
    async (request, reply) => {
      const subject = dataSubject(request);
      const document = await service.exportFor(subject, request.ip);
      return reply
        .header('Content-Type', 'application/json; charset=utf-8')
        .header('Content-Disposition', `attachment; filename="account-export-${subject.accountId}.json"`)
        .header('Cache-Control', 'no-store')
        .send(`${JSON.stringify(document, null, 2)}\n`);
    },
  );

  app.post<{ Body: Static<typeof DeleteBody> }>(
    '/api/account/delete',
    {
      config: OWNER,
      // A service's request may come without a body; a body that is present is validated strictly.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
      preHandler: deleteLimit,
      schema: {
        tags: ['account'],
        summary: 'Delete the account and erase its personal data (GDPR-2)',
        description:
          'People confirm with their password (wrong: 403, nothing changes). Every session and key stops at once; subscriptions are canceled and the Stripe customer deleted; then personal data are erased and anonymised financial records kept. Once an hour.',
        body: DeleteBody,
        response: { 202: DeleteResponse },
      },
    },
    async (request, reply) => {
      const subject = dataSubject(request);
      const status = await service.requestDeletion(subject, request.body.password, request.ip);
      if (subject.kind === 'user') clearSessionCookies(reply, options.cookies);
      return reply.status(202).send({ accountId: subject.accountId, status });
    },
  );
}
