import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance, preHandlerHookHandler } from 'fastify';
import { accountPrincipal } from '../auth/guards.js';
import type { EntitlementsService } from './entitlements.service.js';

const FeatureName = Type.String({ minLength: 1, maxLength: 64, pattern: '^[a-z][a-z0-9_]*$' });
export const CheckBody = Type.Object({
  feature: FeatureName,
  track: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
  idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
});
// Nullable fields as JSON Schema type lists rather than unions: the response serializer
// writes a type list with typeof checks, while a union (anyOf) makes it run a schema
// validator per branch on every answer of this hot route.
function nullableInteger(description?: string) {
  return Type.Unsafe<number | null>({ type: ['integer', 'null'], ...(description ? { description } : {}) });
}
const FEATURE_KINDS = ['boolean', 'static', 'metered', 'concurrency'] as const;
export const EntitlementAnswerSchema = Type.Object({
  allowed: Type.Boolean(),
  feature: Type.String(),
  kind: Type.Unsafe<(typeof FEATURE_KINDS)[number] | null>({
    type: ['string', 'null'],
    enum: [...FEATURE_KINDS, null],
    description: 'null for a feature the plan does not know (denied)',
  }),
  limit: nullableInteger('null means unlimited'),
  used: Type.Integer(),
  remaining: nullableInteger(),
  resetsAt: Type.Optional(Type.String({ format: 'date-time', description: 'Metered features: when the period ends (UTC)' })),
});
const LeaseBody = Type.Object({
  feature: FeatureName,
  ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400 })),
});
const LeaseParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128 }) });

const ACCOUNT_PRINCIPALS = { allow: ['user', 'apiKey', 'service'] } as const;

export interface EntitlementRouteOptions {
  readonly entitlements: EntitlementsService;
  /** RL-5: machine routes are limited per account by the plan (per user for people). */
  readonly rateLimit?: preHandlerHookHandler;
}

/** POST /api/entitlements/check, POST /api/leases, DELETE /api/leases/:id (API.md). */
export async function entitlementRoutes(app: FastifyInstance, options: EntitlementRouteOptions): Promise<void> {
  const preHandler = options.rateLimit ? [options.rateLimit] : [];
  app.post(
    '/api/entitlements/check',
    { schema: { tags: ['entitlements'], body: CheckBody, response: { 200: EntitlementAnswerSchema } }, config: { auth: ACCOUNT_PRINCIPALS }, preHandler },
    async (request) => {
      const { accountId } = accountPrincipal(request);
      return options.entitlements.check(accountId, request.body as Static<typeof CheckBody>);
    },
  );

  app.post('/api/leases', { schema: { tags: ['entitlements'], body: LeaseBody }, config: { auth: ACCOUNT_PRINCIPALS }, preHandler }, async (request, reply) => {
    const { accountId } = accountPrincipal(request);
    const result = await options.entitlements.acquireLease(accountId, request.body as Static<typeof LeaseBody>);
    if (result.lease) return reply.status(201).send({ lease: result.lease });
    return reply.status(200).send(result.denied);
  });

  app.delete('/api/leases/:id', { schema: { tags: ['entitlements'], params: LeaseParams }, config: { auth: ACCOUNT_PRINCIPALS }, preHandler }, async (request, reply) => {
    const { accountId } = accountPrincipal(request);
    await options.entitlements.releaseLease(accountId, (request.params as Static<typeof LeaseParams>).id);
    return reply.status(204).send();
  });
}
