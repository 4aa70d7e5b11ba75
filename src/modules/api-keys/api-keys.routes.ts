import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { accountPrincipal } from '../auth/guards.js';
import { actorOf } from '../auth/principal.js';
import { MAX_LABEL_LENGTH, MAX_ROTATION_OVERLAP_SECONDS, type ApiKeyService } from './api-keys.service.js';
import type { ActorContext } from './audit-hook.js';

export interface ApiKeyRouteOptions {
  readonly service: ApiKeyService;
}

/** Ids are at most 128 URL-safe characters (API.md). */
export const IdString = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' });
const Nullable = <T extends ReturnType<typeof Type.String>>(schema: T) => Type.Union([schema, Type.Null()]);
// Printable text only: no control characters in something shown back in lists.
const Label = Type.String({ minLength: 1, maxLength: MAX_LABEL_LENGTH, pattern: '^[^\\u0000-\\u001f\\u007f]+$' });

export const ApiKeySchema = Type.Object({
  id: Type.String(),
  prefix: Type.String(),
  label: Nullable(Type.String()),
  createdAt: Type.String({ format: 'date-time' }),
  lastUsedAt: Nullable(Type.String({ format: 'date-time' })),
  expiresAt: Nullable(Type.String({ format: 'date-time' })),
  revokedAt: Nullable(Type.String({ format: 'date-time' })),
});

export const IssuedApiKeySchema = Type.Object({
  key: ApiKeySchema,
  secret: Type.String({ description: 'The whole key for X-API-Key. Shown once; it cannot be read back.' }),
});

export const IssueKeyBody = Type.Object({ label: Type.Optional(Label) });
export const RotateKeyBody = Type.Object({
  label: Type.Optional(Label),
  overlapSeconds: Type.Optional(
    Type.Integer({ minimum: 0, maximum: MAX_ROTATION_OVERLAP_SECONDS, description: 'How long the old key keeps working; default 86400' }),
  ),
});
const KeyParams = Type.Object({ id: IdString });
const AccountParams = Type.Object({ id: IdString });
const ListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ description: 'Clamped to 1..100; default 50' })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 400, pattern: '^[A-Za-z0-9_-]+$' })),
});
const ApiKeyPageSchema = Type.Object({ items: Type.Array(ApiKeySchema), nextCursor: Nullable(Type.String()) });

const OWNER = { auth: { allow: ['user'], ownerOnly: true } } as const;
const ADMIN = { auth: { allow: ['admin'] } } as const;

/** The audit trail's actor for a request. */
export function actorFrom(request: FastifyRequest): ActorContext {
  return { ...actorOf(request.principal), ip: request.ip };
}

/** Optional-body routes: no body at all means `{}`; a body that is present is validated strictly. */
async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

function noStore(reply: FastifyReply): FastifyReply {
  // The answer carries a secret: no cache anywhere may keep it.
  return reply.header('Cache-Control', 'no-store');
}

/**
 * Customer API keys (KEY-1, KEY-2). The account's owner manages its keys; operators
 * issue and revoke for any account. The account always comes from the principal (ACC-2),
 * and a key of another account is 404.
 */
export async function apiKeyRoutes(app: FastifyInstance, options: ApiKeyRouteOptions): Promise<void> {
  const { service } = options;

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/api/keys',
    {
      config: OWNER,
      schema: {
        tags: ['api-keys'],
        summary: "The account's API keys, newest first (no secrets)",
        querystring: ListQuery,
        response: { 200: ApiKeyPageSchema },
      },
    },
    async (request) => {
      const { accountId } = accountPrincipal(request);
      return service.list(accountId, request.query);
    },
  );

  app.post<{ Body: Static<typeof IssueKeyBody> }>(
    '/api/keys',
    {
      config: OWNER,
      preValidation: emptyBodyIsEmptyObject,
      schema: {
        tags: ['api-keys'],
        summary: 'Issue an API key; the secret is in this answer only',
        body: IssueKeyBody,
        response: { 201: IssuedApiKeySchema },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      const issued = await service.issue(accountId, { label: request.body.label ?? null }, actorFrom(request));
      return noStore(reply).status(201).send(issued);
    },
  );

  app.delete<{ Params: Static<typeof KeyParams> }>(
    '/api/keys/:id',
    {
      config: OWNER,
      schema: { tags: ['api-keys'], summary: 'Revoke an API key (every instance refuses it within 1 s)', params: KeyParams },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      await service.revoke(accountId, request.params.id, actorFrom(request));
      return reply.status(204).send();
    },
  );

  app.post<{ Params: Static<typeof KeyParams>; Body: Static<typeof RotateKeyBody> }>(
    '/api/keys/:id/rotate',
    {
      config: OWNER,
      preValidation: emptyBodyIsEmptyObject,
      schema: {
        tags: ['api-keys'],
        summary: 'Replace an API key; the old one keeps working for overlapSeconds (default 24 h)',
        params: KeyParams,
        body: RotateKeyBody,
        response: { 201: IssuedApiKeySchema },
      },
    },
    async (request, reply) => {
      const { accountId } = accountPrincipal(request);
      const issued = await service.rotate(
        accountId,
        request.params.id,
        {
          ...(request.body.label !== undefined ? { label: request.body.label } : {}),
          ...(request.body.overlapSeconds !== undefined ? { overlapSeconds: request.body.overlapSeconds } : {}),
        },
        actorFrom(request),
      );
      return noStore(reply).status(201).send(issued);
    },
  );

  app.post<{ Params: Static<typeof AccountParams>; Body: Static<typeof IssueKeyBody> }>(
    '/api/admin/accounts/:id/keys',
    {
      config: ADMIN,
      preValidation: emptyBodyIsEmptyObject,
      schema: {
        tags: ['admin'],
        summary: "Issue an API key for an account (operator); the secret is in this answer only",
        params: AccountParams,
        body: IssueKeyBody,
        response: { 201: IssuedApiKeySchema },
      },
    },
    async (request, reply) => {
      const issued = await service.issueForAccount(request.params.id, { label: request.body.label ?? null }, actorFrom(request));
      return noStore(reply).status(201).send(issued);
    },
  );

  app.delete<{ Params: Static<typeof KeyParams> }>(
    '/api/admin/keys/:id',
    {
      config: ADMIN,
      schema: { tags: ['admin'], summary: 'Revoke any API key (operator)', params: KeyParams },
    },
    async (request, reply) => {
      await service.revokeById(request.params.id, actorFrom(request));
      return reply.status(204).send();
    },
  );
}
